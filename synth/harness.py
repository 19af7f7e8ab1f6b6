# SPDX-License-Identifier: Apache-2.0
"""A place-and-route I/O harness: a Verilog wrapper with five pins around a design.

The default layer's generator has 535 port bits and its reference engine 1,799, more
than any Gowin or iCE40 package has pins, and nextpnr-himbaechel-gowin places a port
only where a CST file names its pin. :func:`harness_verilog` wraps the design's top in
:data:`HARNESS_TOP`, whose only pins (:data:`PINS`) are::

    clk    the design's clock (and the harness's)
    rst    the design's reset, through one flop (only when the design has one)
    sin    serial data in: the head of the input shift chain
    load   load strobe of the output chain, through a chain of flops
    sout   serial data out: the tail of the output chain

Every design input bit is driven by a flop of the input shift chain (``sin`` shifts
in, one bit a clock); every design output bit is loaded, when ``load`` is high, into a
flop of the output chain, which otherwise shifts towards ``sout``. The strobe reaches
the output chain through a shift chain of its own, one flop per :data:`LOAD_GROUP`
output bits (group ``k`` loads ``k`` clocks after group 0): one flop driving a
thousand mux selects would be a harness path, not the design's, and distinct flops
cannot be merged by Yosys as copies of one flop could. So every path into
and out of the design runs register to register on the one clock, which is what an
Fmax on a chip looks like (the design sits between registers), and nothing can be
optimised away: each design input comes from a pin through the chain, each output
reaches a pin through it.

The harness's own cells (one flop per port bit, one 2:1 mux per output bit, one strobe
flop per group, up to five I/O buffers) are in nextpnr's utilisation of the wrapped
design; the resource table of the FPGA report stays the design's own synthesis
(:mod:`synth.fpga`).

The port list comes from the Yosys JSON netlist of the design (:func:`ports_of_netlist`,
``modules[top].ports``: direction and bit count of each port), the one Yosys writes
when it maps the design anyway, so no Verilog is parsed here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from insitugen.errors import InsitugenError

__all__ = ["HARNESS_TOP", "PINS", "LOAD_GROUP", "Port", "ports_of_netlist", "harness_verilog",
           "harness_pins"]

HARNESS_TOP = "insitugen_pnr_harness"
#: The harness's pins, in the order a constraint file names them.
PINS = ("clk", "rst", "sin", "load", "sout")
#: Output bits loaded by one flop of the strobe chain.
LOAD_GROUP = 16
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


@dataclass(frozen=True)
class Port:
    """One top-level port of the design: its name, ``input`` or ``output``, its width."""

    name: str
    direction: str
    width: int


def ports_of_netlist(text: str, top: str) -> list[Port]:
    """The ports of module ``top`` of a Yosys JSON netlist (``write_json``), in its order."""
    mods = json.loads(text)["modules"]
    mod = mods.get(top) or mods.get(f"\\{top}")
    if mod is None:
        raise InsitugenError(f"the netlist has no module '{top}' (it has "
                             f"{', '.join(sorted(mods)) or 'none'})")
    return [Port(name, p["direction"], len(p["bits"])) for name, p in mod["ports"].items()]


def _vid(name: str) -> str:
    """``name`` as a Verilog identifier (escaped when it is not a plain one)."""
    return name if _ID.fullmatch(name) else f"\\{name} "


def harness_pins(ports: list[Port], clock: str = "clk", reset: str = "rst") -> tuple[str, ...]:
    """The pins of the harness of a design with ``ports`` (``rst`` only when it has one,
    ``sin`` only when it has a data input)."""
    names = {p.name for p in ports}
    has_in = any(p.direction == "input" and p.name not in (clock, reset) for p in ports)
    return tuple(p for p in PINS if (p != "rst" or reset in names) and (p != "sin" or has_in))


def harness_verilog(top: str, ports: list[Port], clock: str = "clk",
                    reset: str = "rst") -> str:
    """Verilog of :data:`HARNESS_TOP` around module ``top`` with ``ports`` (see the module
    docstring); one clear :class:`InsitugenError` for a design it cannot wrap."""
    by_name = {p.name: p for p in ports}
    bad = [p.name for p in ports if p.direction not in ("input", "output")]
    if bad:
        raise InsitugenError(f"the P&R harness cannot wrap '{top}': inout port(s) "
                             f"{', '.join(bad)}")
    clk = by_name.get(clock)
    if clk is None or clk.direction != "input" or clk.width != 1:
        raise InsitugenError(f"the P&R harness cannot wrap '{top}': it has no 1-bit input "
                             f"clock '{clock}'")
    rst = by_name.get(reset)
    if rst is not None and (rst.direction != "input" or rst.width != 1):
        raise InsitugenError(f"the P&R harness cannot wrap '{top}': '{reset}' is not a "
                             f"1-bit input")
    ins = [p for p in ports if p.direction == "input" and p.name not in (clock, reset)]
    outs = [p for p in ports if p.direction == "output"]
    if not outs:
        raise InsitugenError(f"the P&R harness cannot wrap '{top}': it has no output")
    n_in, n_out = sum(p.width for p in ins), sum(p.width for p in outs)
    pins = harness_pins(ports, clock, reset)
    decl = {"clk": "input wire clk", "rst": "input wire rst", "sin": "input wire sin",
            "load": "input wire load", "sout": "output wire sout"}
    lines = [f"// P&R I/O harness of {top} (insitugen synth.harness): {n_in} input bits "
             f"from a shift chain, {n_out} output bits into a load/shift chain",
             f"module {HARNESS_TOP} (",
             ",\n".join(f"  {decl[p]}" for p in pins),
             ");"]
    conns = [f".{_vid(clock)}(clk)"]
    if rst is not None:
        lines += ["  reg rst_q;", "  always @(posedge clk) rst_q <= rst;"]
        conns.append(f".{_vid(reset)}(rst_q)")
    groups = -(-n_out // LOAD_GROUP)
    lines.append(f"  reg [{groups - 1}:0] load_q;")
    lines.append("  always @(posedge clk) load_q <= "
                 + ("load;" if groups == 1 else f"{{load_q[{groups - 2}:0], load}};"))
    if n_in:
        lines.append(f"  reg [{n_in - 1}:0] ichain;")
        lines.append("  always @(posedge clk) ichain <= "
                     + ("sin;" if n_in == 1 else f"{{ichain[{n_in - 2}:0], sin}};"))
    lines.append(f"  wire [{n_out - 1}:0] dout;")
    lines.append(f"  reg [{n_out - 1}:0] ochain;")
    for g in range(groups):
        lo, hi = g * LOAD_GROUP, min(n_out, (g + 1) * LOAD_GROUP) - 1
        prev = "1'b0" if lo == 0 else f"ochain[{lo - 1}]"
        shifted = prev if hi == lo else f"{{ochain[{hi - 1}:{lo}], {prev}}}"
        lines.append(f"  always @(posedge clk) ochain[{hi}:{lo}] <= load_q[{g}] ? "
                     f"dout[{hi}:{lo}] : {shifted};")
    lines.append(f"  assign sout = ochain[{n_out - 1}];")
    lo = 0
    for p in ins:
        conns.append(f".{_vid(p.name)}(ichain[{lo + p.width - 1}:{lo}])")
        lo += p.width
    lo = 0
    for p in outs:
        conns.append(f".{_vid(p.name)}(dout[{lo + p.width - 1}:{lo}])")
        lo += p.width
    lines.append(f"  {_vid(top)} dut (")
    lines.append(",\n".join(f"    {c}" for c in conns))
    lines += ["  );", "endmodule", ""]
    return "\n".join(lines)
