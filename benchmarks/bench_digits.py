# SPDX-License-Identifier: Apache-2.0
"""Digits reproduction benchmark: teacher vs MLG student on scikit-learn's 8x8 digits.

    python benchmarks/bench_digits.py [--threads N] [--json OUT] [--out DIR]

(the same run as ``insitugen train-digits``). Prints teacher accuracy, student accuracy,
memory compression (vs FP32 and vs 8-bit) and wall time; the target (issue 5) is a
student within 2 percentage points of the teacher at >= 10x compression vs FP32, in
under 5 minutes on 2 cores. Exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import torch

from flows.commands import train_digits
from golden.train import reproduce_digits
from insitugen.files import atomic_write_text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    train_digits.add_args(parser)
    parser.add_argument("--json", metavar="OUT", default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    r = reproduce_digits(train_digits.settings(args), args.out)
    r["machine"] = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version()}
    ok = r["accuracy_gap_pp"] <= 2.0 and r["compression_fp32"] >= 10.0
    print(f"\n| teacher | student | gap (pp) | compression vs FP32 | vs 8-bit | wall (s) |\n"
          f"|---|---|---|---|---|---|\n"
          f"| {r['teacher_accuracy']:.2f}% | {r['student_accuracy']:.2f}% | "
          f"{r['accuracy_gap_pp']:.2f} | {r['compression_fp32']:.1f}x | "
          f"{r['compression_int8']:.1f}x | {r['wall_s']:.0f} |")
    print("target (gap <= 2 pp, >= 10x):", "met" if ok else "MISSED")
    if args.json:
        atomic_write_text(args.json, json.dumps(r, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
