# SPDX-License-Identifier: Apache-2.0
"""The truth: exact integer arithmetic of MLG generation in PyTorch (int64).

No HDL imports here. ``golden.arith`` holds the bit-level identities (odd code
mapping, slicing, recombination, requantization); ``golden.generate`` the
whole-layer integer generation; ``golden.codes`` the code files.
"""
