# SPDX-License-Identifier: Apache-2.0
"""Recombination unit: Verilog emission time and simulation throughput, side by side.

For a-bit odd codes times x-bit two's-complement operands (4, 6, 8 bits) on 2-,
3- and 4-bit engines, parallel mode: the median Verilog emission time over
``--repeat`` runs, and the cocotb simulation throughput (beats/s of the
testbench with no back-pressure, build excluded) on Verilator and Icarus, run
one after the other in the same process so the two are measured side by side.

    python benchmarks/bench_recombination.py [--vectors 4000] [--json OUT.json]

Prints a Markdown table. Icarus columns read "-" when iverilog is not installed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gen.verilog import emit_verilog
from insitugen.config import RecombinationConfig
from verif.runner import run_sim

OPERAND_BITS = (4, 6, 8)
ENGINE_BITS = (2, 3, 4)


def bench(vectors: int, repeat: int, simulators: list[str], seed: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="insitugen-bench-") as tmp:
        for bits in OPERAND_BITS:
            for eb in ENGINE_BITS:
                cfg = RecombinationConfig(engine_bits=eb, a_bits=bits, a_encoding="odd",
                                          x_bits=bits, x_encoding="twos", mode="parallel",
                                          pipeline_stages=1)
                times = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    emit_verilog(cfg)
                    times.append(time.perf_counter() - t0)
                row = {"a": f"{bits}b odd", "x": f"{bits}b twos", "engine_bits": eb,
                       "partials": cfg.widths.count, "emit_s": statistics.median(times)}
                for sim in simulators:
                    res = run_sim(cfg, simulator=sim, seed=seed, backpressure="none",
                                  build_dir=Path(tmp) / f"{cfg.digest()}-{sim}",
                                  extra={"vectors": vectors}, quiet=True)
                    row[f"{sim}_beats"] = res.beats
                    row[f"{sim}_beats_per_s"] = res.details.get("beats_per_s")
                    row[f"{sim}_build_s"] = round(res.build_s, 2)
                    row[f"{sim}_sim_s"] = round(res.sim_s, 2)
                rows.append(row)
                print(f"  {row}", file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict], simulators: list[str]) -> str:
    head = ["operands", "engine", "partials", "emit (s, median)"]
    for sim in ("verilator", "icarus"):
        head += [f"{sim} beats/s", f"{sim} build s"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{r['a']} x {r['x']}", f"{r['engine_bits']}-bit", str(r["partials"]),
                 f"{r['emit_s']:.3f}"]
        for sim in ("verilator", "icarus"):
            if sim in simulators and r.get(f"{sim}_beats_per_s"):
                cells += [f"{r[f'{sim}_beats_per_s']:,.0f}", f"{r[f'{sim}_build_s']:.1f}"]
            else:
                cells += ["-", "-"]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=4000, help="random vectors per run "
                    "(corner cases are added) (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=5, help="emission repeats (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=1, help="stimulus seed (default: %(default)s)")
    ap.add_argument("--json", help="write the rows as JSON here")
    args = ap.parse_args(argv)
    sims = ["verilator"] + (["icarus"] if shutil.which("iverilog") else [])
    rows = bench(args.vectors, args.repeat, sims, args.seed)
    print(markdown(rows, sims))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
