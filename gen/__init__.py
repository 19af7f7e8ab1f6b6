"""Configs -> Verilog and files (the sidecar JSON the testbench reads)."""
