# SPDX-License-Identifier: Apache-2.0
"""Amaranth components (no torch): the recombination unit and the generator datapath."""
