# SPDX-License-Identifier: Apache-2.0
"""Recipe fidelity benchmark: teacher vs MLG student on the generated ``digits-hard`` task.

    python benchmarks/bench_fidelity.py [--seeds 0 1 2] [--recipes reference insitugen]
        [--settings 2,44,3,6,3 2,44,8,8,8] [--teacher-epochs 15] [--student-epochs 15]
        [--projection-steps N] [--image-size S] [--json OUT]

For each seed and each recipe (``--recipe reference|insitugen`` of ``insitugen
train-digits``) it trains the SmallCNN teacher once, on ``digits-hard``
(:func:`golden.datasets.hard_digits_data`: scikit-learn's digits upscaled, warped, with
noise and a distractor, from a fixed seed; no download), and from it the MLG student
of every setting (default: the paper's (2, 44, 3, 6, 3) and (2, 44, 8, 8, 8)). A shared
teacher gives the same student as ``insitugen train-digits --dataset digits-hard`` with
the same settings (:func:`golden.train.reproduce_digits` continues from the random
states the teacher's training left).

With ``--json OUT`` every run is written to OUT as soon as it finishes, and a rerun with
the same OUT and the same settings skips the runs already there (a run cut short by a
deadline resumes; different settings are refused). Prints the per-run figures with
their wall times and one Markdown table: teacher and student accuracy and their gap,
mean +- sample standard deviation over the seeds, the gap's min..max, and the memory
compression vs FP32. The trend of the paper's Table 2 is checked and printed (students
within ~1 point of the teacher at >= 10x compression; the 8-8-8 student at least as
good as the 3-6-3 one); the exit status is 0 either way, since this is a measurement,
not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

PAPER_SETTINGS = ("2,44,3,6,3", "2,44,8,8,8")
#: teacher and student epochs of the table in BENCHMARKS.md section 5b
FIDELITY_EPOCHS = (15, 15)
#: the arguments a stored run must agree with to be reused
_RUN_ARGS = ("teacher_epochs", "student_epochs", "projection_steps", "image_size", "threads")


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


def _key(recipe: str, setting, seed: int) -> str:
    return f"{recipe} {','.join(map(str, setting))} seed {seed}"


def _load_runs(path: str | None, args: argparse.Namespace) -> dict[str, dict]:
    """The runs already in ``path`` (key -> run); refuses a file made with other settings."""
    if not path or not Path(path).is_file():
        return {}
    try:
        stored = json.loads(Path(path).read_text())
        runs = {_key(r["recipe"], r["setting"], r["seed"]): r for r in stored["runs"]}
        old = {k: stored["args"][k] for k in _RUN_ARGS}
    except (ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"bench_fidelity: --json '{path}' is not a file this script wrote "
                         f"({e}): pass another --json path or delete it") from None
    new = {k: getattr(args, k) for k in _RUN_ARGS}
    if old != new:
        diff = next(k for k in _RUN_ARGS if old[k] != new[k])
        raise SystemExit(f"bench_fidelity: --json '{path}' holds runs made with {diff} = "
                         f"{old[diff]}, not {new[diff]}: pass another --json path to start "
                         f"afresh, or the same settings to resume")
    return runs


def _save(path: str | None, args, runs: dict[str, dict], command: str) -> None:
    if not path:
        return
    import torch

    from insitugen.files import atomic_write_text
    machine = {"cpus": os.cpu_count(), "torch": torch.__version__,
               "python": platform.python_version()}
    atomic_write_text(path, json.dumps({"command": command, "args": vars(args),
                                        "runs": list(runs.values()), "machine": machine},
                                       indent=2, default=list))


def _report(args, runs: dict[str, dict], command: str) -> None:
    """Print the per-run figures, the summary table and the trend checks."""
    print(f"\n`{command}`\n\ndigits-hard {args.image_size}x{args.image_size}, teacher "
          f"{args.teacher_epochs} / student {args.student_epochs} epochs, projection steps "
          f"{args.projection_steps}, {args.threads} torch thread(s)\n")
    print("| recipe | (Bi, Bo, qb, qu, qv) | seed | teacher (%) | student (%) | gap (pp) | "
          "teacher wall (s) | student wall (s) |\n|---|---|---|---|---|---|---|---|")
    for r in runs.values():
        print(f"| {r['recipe']} | ({', '.join(map(str, r['setting']))}) | {r['seed']} | "
              f"{r['teacher_accuracy']:.2f} | {r['student_accuracy']:.2f} | "
              f"{r['accuracy_gap_pp']:.2f} | {r['teacher_wall_s']:.0f} | "
              f"{r['student_wall_s']:.0f} |")
    groups: dict[tuple, list[dict]] = {}
    for r in runs.values():
        groups.setdefault((r["recipe"], tuple(r["setting"])), []).append(r)
    print("\nmean +- sample sd over the seeds\n")
    print("| recipe | (Bi, Bo, qb, qu, qv) | compression vs FP32 | seeds | teacher (%) | "
          "student (%) | gap (pp) | gap min..max |\n|---|---|---|---|---|---|---|---|")
    gaps = {}
    for (recipe, setting), rs in sorted(groups.items()):
        g = [r["accuracy_gap_pp"] for r in rs]
        gaps[(recipe, setting)] = statistics.fmean(g)
        print(f"| {recipe} | ({', '.join(map(str, setting))}) | "
              f"{rs[0]['compression_fp32']:.1f}x | {len(rs)} | "
              f"{_mean_sd([r['teacher_accuracy'] for r in rs])} | "
              f"{_mean_sd([r['student_accuracy'] for r in rs])} | {_mean_sd(g)} | "
              f"{min(g):.2f}..{max(g):.2f} |")
    print()
    a, b = (_setting(s) for s in PAPER_SETTINGS)
    for recipe in sorted({r for r, _ in gaps}):
        mine = {s: v for (r, s), v in gaps.items() if r == recipe}
        close = all(v <= 1.0 for v in mine.values())
        line = (f"{recipe}: mean student within 1 point of the teacher: "
                f"{'yes' if close else 'no'}")
        if a in mine and b in mine:
            line += (f"; 8-8-8 at least as good as 3-6-3 (mean gap): "
                     f"{'yes' if mine[b] <= mine[a] else 'no'}")
        print(line)


def main(argv=None) -> int:
    from golden.train_settings import RECIPES, DigitsSettings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = DigitsSettings()
    p.add_argument("--recipes", nargs="+", choices=tuple(RECIPES), default=list(RECIPES))
    p.add_argument("--settings", nargs="+", type=_setting,
                   default=[_setting(s) for s in PAPER_SETTINGS],
                   help="MLG settings Bi,Bo,qb,qu,qv (default: %s)" % " ".join(PAPER_SETTINGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    # 15 + 15 epochs (train-digits: 40 + 60) keep one teacher + student run near 3 CPU
    # minutes at 1 thread, so the 18 trainings of the default grid fit a shared machine
    p.add_argument("--teacher-epochs", type=int, default=FIDELITY_EPOCHS[0])
    p.add_argument("--student-epochs", type=int, default=FIDELITY_EPOCHS[1])
    p.add_argument("--projection-steps", type=int, default=d.projection_steps)
    p.add_argument("--image-size", type=int, default=d.image_size)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", metavar="OUT", default=None,
                   help="write every run to OUT as it finishes; resume from OUT")
    args = p.parse_args(argv)
    command = "python benchmarks/bench_fidelity.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    runs = _load_runs(args.json, args)
    if runs:
        print(f"resuming: {len(runs)} run(s) read from {args.json}", flush=True)

    from golden.train import reproduce_digits, train_digits_teacher

    t0 = time.perf_counter()
    for seed in args.seeds:
        for recipe in args.recipes:
            todo = [st for st in args.settings if _key(recipe, st, seed) not in runs]
            if not todo:
                continue
            teacher = None
            for bi, bo, qb, qu, qv in todo:
                s = DigitsSettings(base_in=bi, base_out=bo, qb=qb, qu=qu, qv=qv, recipe=recipe,
                                   seed=seed, dataset="digits-hard",
                                   image_size=args.image_size,
                                   teacher_epochs=args.teacher_epochs,
                                   student_epochs=args.student_epochs,
                                   projection_steps=args.projection_steps,
                                   threads=args.threads)
                if teacher is None:
                    teacher = train_digits_teacher(s, log=None)
                r = reproduce_digits(s, None, log=None, teacher=teacher)
                run = {"recipe": recipe, "setting": [bi, bo, qb, qu, qv], "seed": seed,
                       "student_wall_s": r["wall_s"],
                       **{k: r[k] for k in ("teacher_accuracy", "student_accuracy",
                                            "student_accuracy_after_projection",
                                            "accuracy_gap_pp", "compression_fp32",
                                            "teacher_wall_s")}}
                runs[_key(recipe, run["setting"], seed)] = run
                _save(args.json, args, runs, command)
                print(f"{recipe} ({bi}, {bo}, {qb}, {qu}, {qv}) seed {seed}: teacher "
                      f"{r['teacher_accuracy']:.2f}% ({r['teacher_wall_s']:.0f} s), student "
                      f"{r['student_accuracy']:.2f}% ({r['wall_s']:.0f} s)", flush=True)
    wall = time.perf_counter() - t0
    _report(args, runs, command)
    print(f"\nthis invocation: {wall:.0f} s wall on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
