# SPDX-License-Identifier: Apache-2.0
"""``insitugen prove CONFIG``: Yosys SAT proofs of the recombination and requantization."""

from __future__ import annotations

import argparse
import json
import time

from insitugen.config import RecombinationConfig, load_config
from insitugen.errors import ConfigError

from ._common import LazyChoices

HELP = "formal proofs (Yosys SAT) of the recombination and requantization"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="config TOML (recombination or generator block)")
    p.add_argument("--method", choices=LazyChoices("verif.formal", "METHODS"), default="auto",
                   metavar="METHOD",
                   help="recombination proof, one of %(choices)s: end to end from the operands "
                        "(product), unit + slicing identities (decomposed), or auto: product "
                        "for small operands and few terms (verif.formal.PRODUCT_MAX_BITS, "
                        "PRODUCT_MAX_TERMS) (default: %(default)s)")
    p.add_argument("--mutant", choices=LazyChoices("verif.formal", "MUTANTS"), default=None,
                   metavar="MUTANT",
                   help="break the recombination harness on purpose (%(choices)s); the proof "
                        "must fail with a counterexample (default: none)")
    p.add_argument("--json", metavar="FILE", default=None,
                   help="also write the proof reports as JSON (default: none)")
    p.add_argument("--timeout", type=float, default=600,
                   help="seconds per Yosys SAT run (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Print what was proven and in how long; 1 if any proof failed (0 with ``--mutant``
    only when the mutant was caught)."""
    from insitugen.files import atomic_write_text
    from verif.formal import prove, prove_generator

    cfg = load_config(args.config)
    t0 = time.perf_counter()
    mutant = args.mutant
    if isinstance(cfg, RecombinationConfig):
        reports = [prove(cfg, method=args.method, mutant=mutant, timeout=args.timeout)]
    else:
        if mutant:
            raise ConfigError("--mutant applies to recombination configs only")
        reports = prove_generator(cfg, method=args.method, timeout=args.timeout)
    for rep in reports:
        print(rep.summary())
    if reports:
        short = reports[0].yosys_version.split(",")[0].rstrip(")") + ")"   # no build paths
        print(f"({short}; {time.perf_counter() - t0:.1f} s in all)")
    if args.json:
        atomic_write_text(args.json, json.dumps([r.to_dict() for r in reports], indent=2) + "\n")
    failed = [r for r in reports if not r.proven]
    if mutant:
        if failed:
            print(f"mutant '{mutant}' caught: the proof fails with a counterexample")
            return 0
        print(f"mutant '{mutant}' NOT caught: the proof passed")
        return 1
    return 1 if failed else 0
