# SPDX-License-Identifier: Apache-2.0
"""The testbench top: the simulation's clock, and a protocol monitor on every stream.

:func:`tb_top_verilog` writes the Verilog module :data:`TB_TOP` around the design's top
module: the clock runs inside the simulation (a cocotb ``Clock`` would call into
Python twice per cycle), every other port is a signal of the same name, and every
valid/ready stream gets a protocol monitor (:mod:`verif.protocol`). Only the top's
signals are public to VPI (metacomments), so Verilator optimizes the design itself.
"""

from __future__ import annotations

import re

from insitugen.config import Config
from insitugen.errors import ToolError

__all__ = ["TB_TOP", "CLOCK_PERIOD_NS", "tb_top_verilog", "stream_last_bits"]

#: Module name of the testbench top written beside ``design.v`` (see :func:`tb_top_verilog`).
TB_TOP = "insitugen_tb_top"
#: Clock period of the testbench top (``timescale`` 1 ns).
CLOCK_PERIOD_NS = 10


def stream_last_bits(cfg: Config) -> dict[str, int]:
    """Payload bit of ``last`` per stream of the block's top (none for the recombination
    unit), read from the generator's own payload layout (``hdl.generator.weights_layout``)."""
    if cfg.BLOCK != "generator":
        return {}
    from hdl.generator import weights_layout
    return {"weights": weights_layout(cfg)["last"].offset}


_PORT_RE = re.compile(r"^\s*(input|output)\s+(?:signed\s+)?(\[[^\]]+\]\s*)?([A-Za-z_]\w*)\s*;",
                      re.M)


def tb_top_verilog(verilog: str, top: str, last_bits: dict[str, int] | None = None) -> str:
    """Verilog of the testbench top :data:`TB_TOP` around module ``top`` of ``verilog``.

    The clock runs inside the simulation (``always #5 clk = ~clk``: a 10 ns period
    from time 0, first rising edge at 5 ns), so the simulator does not call into
    Python twice per cycle to toggle it; Verilator builds it with ``--timing``. Every
    other port of ``top`` is a signal of the same name in :data:`TB_TOP` (``rst`` and
    the stream inputs are driven by the testbench).

    Every valid/ready stream among the ports (``P__valid``, ``P__ready``,
    ``P__payload``) gets a protocol monitor
    (:func:`verif.protocol.monitor_verilog`), checked on every clock at
    simulator speed; ``last_bits`` maps a stream to its payload's ``last`` bit.
    """
    from verif.protocol import monitor_verilog, stream_prefixes

    m = re.search(rf"^module {re.escape(top)}\s*\(", verilog, flags=re.M)
    end = verilog.find("\nendmodule", m.end()) if m else -1
    if m is None or end < 0:
        raise ToolError(f"module '{top}' not found in the Verilog: the testbench top cannot "
                        f"be written (is this the Verilog of the config?)")
    ports = [(d, (r or "").strip(), n) for d, r, n in _PORT_RE.findall(verilog[m.end():end])]
    names = [n for _, _, n in ports]
    if "clk" not in names:
        raise ToolError(f"module '{top}' has no 'clk' port: the testbench top cannot clock it")
    lines = [f"// insitugen testbench top: clock inside the simulation, {top} as 'dut'",
             f"module {TB_TOP};",
             "  reg clk /*verilator public_flat_rd*/ = 1'b0;",
             f"  always #{CLOCK_PERIOD_NS // 2} clk = ~clk;"]
    for d, r, n in ports:
        if n == "clk":
            continue
        if d == "input":
            lines.append(f"  reg {r + ' ' if r else ''}{n} /*verilator public_flat_rw*/ = "
                         f"{'1' if n == 'rst' else '0'};")
        else:
            lines.append(f"  wire {r + ' ' if r else ''}{n} /*verilator public_flat_rd*/;")
    conns = ",\n    ".join(f".{n}({n})" for n in names)
    lines.append(f"  {top} dut (\n    {conns}\n  );")
    ranges = {n: r for _, r, n in ports}
    for prefix in stream_prefixes(names):
        lines.append(monitor_verilog(prefix, ranges[f"{prefix}__payload"],
                                     (last_bits or {}).get(prefix)))
    lines += ["endmodule", ""]
    return "\n".join(lines)
