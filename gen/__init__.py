# SPDX-License-Identifier: Apache-2.0
"""Configs -> Verilog and files (the sidecar JSON the testbench reads)."""
