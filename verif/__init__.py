"""cocotb testbenches: drivers, monitors and scoreboards, run through cocotb_tools.runner."""
