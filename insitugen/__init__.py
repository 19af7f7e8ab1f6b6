"""insitugen: hardware generator for multi-level in situ weight generation (MLG).

Rooms (each a subpackage): ``insitugen.golden`` (exact integer and PyTorch
models), ``insitugen.hdl`` (Amaranth components), ``insitugen.gen`` (config ->
Verilog and files), ``insitugen.verif`` (cocotb testbenches), ``insitugen.synth``
(Yosys area reports). ``insitugen.config`` and ``insitugen.widths`` are shared by
all of them: one frozen config, one width derivation.
"""

__version__ = "0.1.0"
