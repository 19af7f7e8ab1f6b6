# SPDX-License-Identifier: Apache-2.0
"""Area of the bit-level recombination unit next to the engine lane and the full-width MAC.

For 4-, 6- and 8-bit operands (``a`` an odd DoReFa code, ``x`` two's complement:
the generator's level-2 use, a coefficient times the wide intermediate) on 2-, 3-
and 4-bit engines, one :func:`synth.report.run_synth` each (parallel
recombination, one product per result, best of the synth options per design):
PDK-free NAND2 equivalents and um^2 of a liberty (default: the shipped IHP SG13G2).

Usage (from the repo root)::

    python benchmarks/bench_recombination_area.py --json bench_recombination_area.json \\
        [--liberty ihp] [--jobs 2]

Prints a Markdown table on stdout and writes every report (plus timings) as JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from insitugen.config import RecombinationConfig
from insitugen.errors import InsitugenError
from synth.liberty import resolve_liberty
from synth.report import run_synth, write_report_json

OPERAND_BITS = (4, 6, 8)
ENGINE_BITS = (2, 3, 4)


def bench(liberty: Path | None, jobs: int, operand_bits=OPERAND_BITS, engine_bits=ENGINE_BITS):
    rows = []
    for bits in operand_bits:
        for eb in engine_bits:
            cfg = RecombinationConfig(engine_bits=eb, a_bits=bits, a_encoding="odd",
                                      x_bits=bits, x_encoding="twos")
            t0 = time.perf_counter()
            rep = run_synth(cfg, liberty=liberty, jobs=jobs)
            rows.append({"operand_bits": bits, "engine_bits": eb,
                         "run_synth_seconds": round(time.perf_counter() - t0, 2),
                         "report": rep})
            print(f"# {bits}-bit operands on a {eb}-bit engine: "
                  f"{rows[-1]['run_synth_seconds']} s", file=sys.stderr)
    return rows


def markdown(rows, liberty: bool) -> str:
    head = ["operands", "engine", "partials", "recomb. GE", "lane GE", "full-width GE",
            "recomb./lane", "recomb./(lanes)", "(lanes+recomb.)/full"]
    if liberty:
        head += ["recomb. um^2", "lane um^2", "full-width um^2", "recomb./(lanes) IHP",
                 "(lanes+recomb.)/full IHP"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        rep = r["report"]
        d, q = rep["designs"], rep["ratios"]
        cfg = rep["config"]
        n = q["engine_lanes_needed"]["value"]
        cells = [f"{r['operand_bits']}b odd x {r['operand_bits']}b twos",
                 f"{r['engine_bits']}b", f"{len(cfg['a_slices'])}x{len(cfg['x_slices'])} = {n}",
                 f"{d['recombination']['pdk_free']['nand2_eq']:.0f}",
                 f"{d['engine_lane']['pdk_free']['nand2_eq']:.0f}",
                 f"{d['full_width_multiplier']['pdk_free']['nand2_eq']:.0f}",
                 f"{q['recombination_over_engine_lane']['pdk_free']:.3f}",
                 f"{q['recombination_over_engine']['pdk_free']:.3f}",
                 f"{q['sliced_path_over_full_width']['pdk_free']:.2f}"]
        if liberty:
            cells += [f"{d['recombination']['liberty']['area_um2']:.0f}",
                      f"{d['engine_lane']['liberty']['area_um2']:.0f}",
                      f"{d['full_width_multiplier']['liberty']['area_um2']:.0f}",
                      f"{q['recombination_over_engine']['liberty']:.3f}",
                      f"{q['sliced_path_over_full_width']['liberty']:.2f}"]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True, help="write all reports and timings here")
    ap.add_argument("--liberty", default=None,
                    help="liberty file or shipped name (default: ihp, the IHP SG13G2 "
                         "library in synth/pdk; 'none' for PDK-free only)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel Yosys runs (default 2)")
    args = ap.parse_args(argv)
    try:
        liberty = (None if (args.liberty or "").lower() == "none"
                   else resolve_liberty(args.liberty or "ihp"))
        t0 = time.perf_counter()
        rows = bench(liberty, args.jobs)
        total = round(time.perf_counter() - t0, 2)
        first = rows[0]["report"]
        write_report_json({"benchmark": "recombination_area", "total_seconds": total,
                           "tools": first["tools"], "liberty": first["liberty"],
                           "rows": rows}, args.json)
    except InsitugenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    cmd = "python benchmarks/bench_recombination_area.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    print(f"<!-- {cmd} -->")
    print(f"Recombination unit area (parallel, terms = 1), {first['tools']['yosys'].split(' (')[0]}"
          f", best of synth options per design; GE = NAND2 equivalents (PDK-free table); "
          f"IHP = sg13g2 typ um^2. lanes = engine lanes feeding the unit (one per partial).\n")
    print(markdown(rows, liberty is not None))
    one = next((r["run_synth_seconds"] for r in rows
                if r["operand_bits"] == 6 and r["engine_bits"] == 3), "-")
    print(f"Total {total} s for {len(rows)} configs (one run_synth of the 6-bit x 6-bit on "
          f"3-bit engine config: {one} s).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
