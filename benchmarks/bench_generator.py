# SPDX-License-Identifier: Apache-2.0
"""Generator benchmark: cycles vs the lower bound, simulation wall time, Verilog emission time.

For each layer (the default config; a ResNet-18 512 -> 512 3x3 layer on 256
lanes; optionally a smaller one for Icarus) this measures

* Verilog emission time (``gen.verilog.emit_verilog``),
* simulated cycles of one pass (start to the last beat's handshake) against
  ``cycles_lower_bound`` (efficiency), with the output always ready and with
  random back-pressure,
* wall time of the Verilator and Icarus runs side by side, build and simulation
  separately (a fresh build folder per layer, simulator and C++ option, so build
  time is real; a second back-pressure run on the same build shows build 0), and the CPU
  seconds of the run (its process and the tools it started). The runner clocks the
  design inside the simulation (``verif.tb_top.tb_top_verilog``) and computes the
  golden model before the simulator starts.

Each simulation runs in a child process with a time limit; a run that hits it
is reported as a timeout, never dropped. Prints a Markdown table and writes
JSON (atomically).

    python benchmarks/bench_generator.py --json bench_generator.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAYERS = {
    "default_128x128_L64": {},
    "resnet18_512x512_L256": {"out_channels": 512, "in_channels": 512, "lanes": 256},
    "small_16x16_L16": {"out_channels": 16, "in_channels": 16, "lanes": 16},
}


def layer_config(name: str):
    from insitugen.config import default_config
    return default_config().replace(**LAYERS[name])


#: (layer, simulator, Verilator C++ optimization of the per-cycle code or None for the
#: runner's own choice (-O2 for long layers, see verif.build.verilator_make_vars),
#: back-pressure)
PLAN = [
    ("small_16x16_L16", "verilator", None, "none"),
    ("small_16x16_L16", "icarus", None, "none"),
    ("default_128x128_L64", "verilator", "-O0", "none"),
    ("default_128x128_L64", "verilator", "-O2", "none"),
    ("default_128x128_L64", "verilator", "-O2", "random"),
    ("resnet18_512x512_L256", "verilator", "-O2", "none"),
    ("default_128x128_L64", "icarus", None, "none"),
]


def worker(spec: dict) -> dict:
    """One simulation (runs in a child process)."""
    import resource

    from verif.runner import run_sim

    cfg = layer_config(spec["layer"])
    t0 = time.perf_counter()
    res = run_sim(cfg, simulator=spec["simulator"], seed=spec["seed"],
                  backpressure=spec["backpressure"], build_dir=spec["build_dir"], quiet=True,
                  extra={"passes": 1}, cxx_opt=spec.get("opt"))
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"build_s": res.build_s, "sim_s": res.sim_s, "total_s": time.perf_counter() - t0,
            "cpu_s": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
            "cycles": res.cycles, "beats": res.beats,
            "lower_bound": res.details["cycles_lower_bound"],
            "efficiency": res.details["efficiency"],
            "tb_generate_wall_s": res.details.get("generate_wall_s")}


def run_child(spec: dict, timeout: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)      # the child and the simulator it started
        proc.communicate()
        return {"status": f"timeout after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"status": "failed: " + (err.strip().splitlines() or ["?"])[-1]}
    result = json.loads(out.strip().splitlines()[-1])
    result["status"] = "ok"
    return result


def emission_time(name: str) -> tuple[float, int]:
    from gen.verilog import emit_verilog

    t0 = time.perf_counter()
    text = emit_verilog(layer_config(name))
    return time.perf_counter() - t0, len(text)


def fmt(x, spec=".1f"):
    return "-" if x is None else format(x, spec)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default=",".join(LAYERS),
                    help="comma-separated subset of the plan's layers (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=600,
                    help="limit per simulation in seconds (default: %(default)s)")
    ap.add_argument("--json", default="bench_generator.json",
                    help="JSON output file (default: %(default)s)")
    ap.add_argument("--work", default=None,
                    help="folder for build directories (default: a temporary folder)")
    ap.add_argument("--seed", type=int, default=1, help="(default: %(default)s)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    from insitugen.files import atomic_write

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench_generator_"))
    rows = []
    emitted = {}
    layers = args.layers.split(",")
    for layer, sim, opt, bp in PLAN:
        if layer not in layers:
            continue
        if layer not in emitted:
            emitted[layer] = emission_time(layer)
        emit_s, emit_chars = emitted[layer]
        cfg = layer_config(layer)
        build_dir = work / f"{layer}-{sim}-{(opt or 'default').lstrip('-')}"
        spec = {"layer": layer, "simulator": sim, "backpressure": bp, "opt": opt,
                "seed": args.seed, "build_dir": str(build_dir)}
        print(f"bench: {layer} on {sim} ({opt or 'runner default'}), back-pressure {bp} ...",
              flush=True)
        r = run_child(spec, args.timeout)
        row = {"layer": layer, "simulator": sim, "cxx_opt": opt or "runner default",
               "backpressure": bp, "config": cfg.to_dict(), "emit_s": emit_s,
               "verilog_chars": emit_chars, **r}
        rows.append(row)
        print(json.dumps(row), flush=True)

    head = ("| layer | simulator | C++ opt | back-pressure | cycles | lower bound | efficiency | "
            "build s | sim s | CPU s | emit Verilog s | status |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        eff = r.get("efficiency")
        lines.append(f"| {r['layer']} | {r['simulator']} | {r['cxx_opt']} | {r['backpressure']} | "
                     f"{r.get('cycles', '-')} | {r.get('lower_bound', '-')} | "
                     f"{'-' if eff is None else f'{100 * eff:.2f}%'} | "
                     f"{fmt(r.get('build_s'))} | {fmt(r.get('sim_s'))} | {fmt(r.get('cpu_s'))} | "
                     f"{fmt(r['emit_s'])} | "
                     f"{r['status']} |")
    table = "\n".join(lines)
    print(table)
    text = json.dumps({"rows": rows, "table": table}, indent=2) + "\n"
    atomic_write(args.json, lambda tmp: Path(tmp).write_text(text))
    print(f"bench: wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
