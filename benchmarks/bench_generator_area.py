# SPDX-License-Identifier: Apache-2.0
"""Generator area: fused vs separate recombination, across lanes and engine widths.

For the MLG setting of the default layer, (Bi, Bo, qb, qu, qv) = (2, 44, 3, 6, 3),
on a 64 -> 64 3x3 layer (the datapath logic depends on lanes and bitwidths, not on
the layer size; memories are reported apart in bits), synthesizes the generator in
both recombination forms next to the reference engine of the same lanes, and prints
the overhead of in situ generation, (generator - reference engine) / reference
engine, with the PDK-free NAND2-equivalent areas (and um^2 with --liberty).

    python benchmarks/bench_generator_area.py [--liberty LIB] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from insitugen.config import GeneratorConfig
from synth.report import run_synth

LANES = (4, 16, 64)
ENGINES = (2, 3, 4)
FORMS = ("fused", "separate")


def bench(liberty: str | None, lanes: tuple[int, ...], engines: tuple[int, ...]) -> list[dict]:
    rows = []
    for eb in engines:
        for L in lanes:
            for form in FORMS:
                cfg = GeneratorConfig(out_channels=64, in_channels=64, engine_bits=eb, lanes=L,
                                      recombination=form)
                t0 = time.perf_counter()
                rep = run_synth(cfg, liberty=liberty, option_sets=(("-booth", "-arith_tree"),))
                d = rep["designs"]
                row = {"engine_bits": eb, "lanes": L, "form": form,
                       "generator_ge": d["generator"]["pdk_free"]["nand2_eq"],
                       "reference_ge": d["reference_engine"]["pdk_free"]["nand2_eq"],
                       "dedicated_ge": d["dedicated_generator"]["pdk_free"]["nand2_eq"],
                       "overhead_pdk_free": rep["ratios"]["overhead_over_reference_engine"]
                       ["pdk_free"],
                       "generator_depth": d["generator"]["pdk_free"]["logic_depth"],
                       "macs_per_weight": cfg.macs_per_weight,
                       "seconds": round(time.perf_counter() - t0, 1)}
                if liberty:
                    row["overhead_liberty"] = rep["ratios"]["overhead_over_reference_engine"][
                        "liberty"]
                    row["generator_delay_ns"] = d["generator"]["liberty"]["delay_estimate"]
                rows.append(row)
                print(f"  {row}", file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lib = any("overhead_liberty" in r for r in rows)
    head = ["engine", "lanes", "form", "generator GE", "reference engine GE", "overhead",
            "dedicated GE", "depth"]
    if lib:
        head += ["overhead (IHP)", "delay est. ns"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{r['engine_bits']}-bit", str(r["lanes"]), r["form"],
                 f"{r['generator_ge']:,.0f}", f"{r['reference_ge']:,.0f}",
                 f"{100 * r['overhead_pdk_free']:+.1f}%", f"{r['dedicated_ge']:,.0f}",
                 str(r["generator_depth"])]
        if lib:
            cells += [f"{100 * r['overhead_liberty']:+.1f}%", f"{r['generator_delay_ns']:.2f}"]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--liberty", help="Liberty file for um^2 and a delay estimate")
    ap.add_argument("--lanes", type=int, nargs="+", default=list(LANES),
                    help="lane counts (default: %(default)s)")
    ap.add_argument("--engines", type=int, nargs="+", default=list(ENGINES),
                    help="engine widths (default: %(default)s)")
    ap.add_argument("--json", help="write the rows as JSON here")
    args = ap.parse_args(argv)
    rows = bench(args.liberty, tuple(args.lanes), tuple(args.engines))
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
