# SPDX-License-Identifier: Apache-2.0
"""Recipe fidelity benchmark: teacher vs MLG student on the generated ``digits-hard`` task.

    python benchmarks/bench_fidelity.py [--seeds 0 1 2] [--recipes reference insitugen]
        [--teacher-epochs N] [--student-epochs N] [--image-size S] [--json OUT]

For each recipe (``--recipe reference|insitugen`` of ``insitugen train-digits``), each
MLG setting (default: the paper's (2, 44, 3, 6, 3) and (2, 44, 8, 8, 8)) and each seed,
trains the SmallCNN teacher and its MLG student on ``digits-hard``
(:func:`golden.datasets.hard_digits_data`: scikit-learn's digits upscaled, warped, with
noise and a distractor, from a fixed seed; no download) and prints one Markdown table:
teacher and student accuracy and their gap, mean +- sample standard deviation over the
seeds, and the memory compression vs FP32. The trend of the paper's Table 2 is checked
and printed (students within ~1 point of the teacher at >= 10x compression; the 8-8-8
student at least as good as the 3-6-3 one); the exit status is 0 either way, since this
is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

from golden.train import reproduce_digits
from golden.train_settings import RECIPES, DigitsSettings
from insitugen.files import atomic_write_text

PAPER_SETTINGS = ("2,44,3,6,3", "2,44,8,8,8")


def _setting(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 5:
        raise argparse.ArgumentTypeError(f"setting '{text}' must be Bi,Bo,qb,qu,qv "
                                         f"(five integers, e.g. 2,44,3,6,3)")
    return values


def _mean_sd(xs: list[float]) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else float("nan")
    return f"{statistics.fmean(xs):.2f} +- {sd:.2f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = DigitsSettings()
    p.add_argument("--recipes", nargs="+", choices=tuple(RECIPES), default=list(RECIPES))
    p.add_argument("--settings", nargs="+", type=_setting,
                   default=[_setting(s) for s in PAPER_SETTINGS],
                   help="MLG settings Bi,Bo,qb,qu,qv (default: %s)" % " ".join(PAPER_SETTINGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--teacher-epochs", type=int, default=d.teacher_epochs)
    p.add_argument("--student-epochs", type=int, default=d.student_epochs)
    p.add_argument("--projection-steps", type=int, default=d.projection_steps)
    p.add_argument("--image-size", type=int, default=d.image_size)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", metavar="OUT", default=None, help="write every run as JSON")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    runs = []
    for recipe in args.recipes:
        for bi, bo, qb, qu, qv in args.settings:
            for seed in args.seeds:
                s = DigitsSettings(base_in=bi, base_out=bo, qb=qb, qu=qu, qv=qv, recipe=recipe,
                                   seed=seed, dataset="digits-hard",
                                   image_size=args.image_size,
                                   teacher_epochs=args.teacher_epochs,
                                   student_epochs=args.student_epochs,
                                   projection_steps=args.projection_steps,
                                   threads=args.threads)
                r = reproduce_digits(s, None, log=None)
                runs.append({"recipe": recipe, "setting": [bi, bo, qb, qu, qv], "seed": seed,
                             **{k: r[k] for k in ("teacher_accuracy", "student_accuracy",
                                                  "accuracy_gap_pp", "compression_fp32",
                                                  "wall_s")}})
                print(f"{recipe} ({bi}, {bo}, {qb}, {qu}, {qv}) seed {seed}: teacher "
                      f"{r['teacher_accuracy']:.2f}%, student {r['student_accuracy']:.2f}%, "
                      f"{r['wall_s']:.0f} s", flush=True)

    print(f"\ndigits-hard {args.image_size}x{args.image_size}, teacher {args.teacher_epochs} / "
          f"student {args.student_epochs} epochs, projection steps {args.projection_steps}, "
          f"seeds {' '.join(map(str, args.seeds))}; mean +- sample sd over seeds\n")
    print("| recipe | (Bi, Bo, qb, qu, qv) | compression vs FP32 | teacher (%) | student (%) | "
          "gap (pp) |\n|---|---|---|---|---|---|")
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["recipe"], tuple(run["setting"])), []).append(run)
    gaps = {}
    for (recipe, setting), rs in groups.items():
        gaps[(recipe, setting)] = statistics.fmean(r["accuracy_gap_pp"] for r in rs)
        print(f"| {recipe} | ({', '.join(map(str, setting))}) | "
              f"{rs[0]['compression_fp32']:.1f}x | "
              f"{_mean_sd([r['teacher_accuracy'] for r in rs])} | "
              f"{_mean_sd([r['student_accuracy'] for r in rs])} | "
              f"{_mean_sd([r['accuracy_gap_pp'] for r in rs])} |")
    print()
    for recipe in args.recipes:
        close = all(gaps[(recipe, tuple(s))] <= 1.0 for s in args.settings)
        line = f"{recipe}: students within 1 point of the teacher: {'yes' if close else 'no'}"
        a, b = (_setting(s) for s in PAPER_SETTINGS)
        if (recipe, a) in gaps and (recipe, b) in gaps:
            line += (f"; 8-8-8 at least as good as 3-6-3: "
                     f"{'yes' if gaps[(recipe, b)] <= gaps[(recipe, a)] else 'no'}")
        print(line)
    wall = time.perf_counter() - t0
    print(f"\nwall {wall:.0f} s on {os.cpu_count()} CPUs, {args.threads} torch thread(s)")
    if args.json:
        machine = {"cpus": os.cpu_count(), "torch": torch.__version__,
                   "python": platform.python_version()}
        atomic_write_text(args.json, json.dumps({"args": vars(args), "runs": runs,
                                                 "machine": machine, "wall_s": wall},
                                                indent=2, default=list))
    return 0


if __name__ == "__main__":
    sys.exit(main())
