# SPDX-License-Identifier: Apache-2.0
"""Formal proofs (Yosys' built-in SAT solver) of the recombination and the requantizer.

Each proof builds a small Amaranth *harness* around the hardware under proof and asks
Yosys to prove that its output ``ok`` is 1 in every reachable cycle, with every input
free; a failed proof comes back with the solver's counterexample. The harnesses live
one per file in :mod:`verif.proofs` (the shared SAT runner in
:mod:`verif.proofs.sat`); this module holds the entry points and ``insitugen prove``.

* :func:`prove_requantizer` (:mod:`verif.proofs.requantizer`, any width);
* :func:`prove_slicing` (:mod:`verif.proofs.slicing`, any width);
* :func:`prove` on a :class:`~insitugen.config.RecombinationConfig`: method
  ``"product"`` end to end from free operands (:mod:`verif.proofs.product`; small
  operands, :data:`PRODUCT_MAX_BITS`), or ``"decomposed"``, three linear proofs that
  imply the product by bilinearity (:mod:`verif.proofs.decomposed`; any width);
  ``"auto"`` picks by size. Mutants (:data:`MUTANTS`, :mod:`verif.proofs.unit`) must
  make the proof fail with a counterexample;
* :func:`prove_generator`: the requantizer and the recombinations of a generator
  config. Where a generator's operands are too wide for a RecombinationConfig (over
  32 bits), it proves the slicing identities alone and says so.
"""

from __future__ import annotations

import os
import time

from insitugen import widths as W
from insitugen.config import GeneratorConfig, RecombinationConfig
from insitugen.errors import ConfigError
from verif.proofs.decomposed import prove_decomposed
from verif.proofs.product import prove_product
from verif.proofs.requantizer import prove_requantizer
from verif.proofs.sat import ProofReport
from verif.proofs.slicing import prove_slicing
from verif.proofs.unit import MUTANTS

__all__ = ["ProofReport", "prove", "prove_requantizer", "prove_slicing", "prove_generator",
           "generator_recombination_configs", "MUTANTS", "METHODS", "PRODUCT_MAX_BITS",
           "PRODUCT_MAX_TERMS"]

METHODS = ("auto", "product", "decomposed")

#: ``method="auto"`` proves end to end a single product of operands up to
#: ``PRODUCT_MAX_BITS`` bits, and a dot product of up to ``PRODUCT_MAX_TERMS``
#: terms whose two operands together have at most ``PRODUCT_MAX_BITS`` bits
#: (measured: 6x6-bit product 2-4 s, 8-bit minutes; two terms of
#: 3x3 bits 1.4 s, of 4x3 bits 9 s, of 4x4 bits 40 s).
PRODUCT_MAX_BITS = 6
PRODUCT_MAX_TERMS = 2


def prove(cfg: RecombinationConfig, *, mutant: str | None = None, method: str = "auto",
          groups: int = 2, workdir: str | os.PathLike | None = None,
          timeout: float = 600) -> ProofReport:
    """Prove the :class:`RecombinationUnit` of ``cfg`` exact (see the module docstring).

    ``method``: ``"product"`` (end to end from the unsliced operands),
    ``"decomposed"`` (unit on free partials + slicing identities), or ``"auto"``
    (product for the small sizes of :data:`PRODUCT_MAX_BITS`, else decomposed).
    ``mutant`` (one of :data:`MUTANTS`) breaks the harness on purpose: the proof
    must then fail with a counterexample. ``groups``: input groups checked
    after reset (at least 1). ``workdir``: keep Yosys' files there (default: a
    temporary folder).
    """
    if not isinstance(cfg, RecombinationConfig):
        raise ConfigError(f"prove() needs a RecombinationConfig, not {type(cfg).__name__}: "
                          f"use prove_generator() for a generator config")
    if mutant is not None and mutant not in MUTANTS:
        raise ConfigError(f"mutant must be one of {' | '.join(MUTANTS)} or None, not {mutant!r}")
    if method not in METHODS:
        raise ConfigError(f"method must be one of {' | '.join(METHODS)}, not {method!r}")
    if not (isinstance(groups, int) and groups >= 1):
        raise ConfigError(f"groups must be a positive integer, not {groups!r}")
    if method == "auto":
        small = ((cfg.terms == 1 and max(cfg.a_bits, cfg.x_bits) <= PRODUCT_MAX_BITS)
                 or (cfg.terms <= PRODUCT_MAX_TERMS
                     and cfg.a_bits + cfg.x_bits <= PRODUCT_MAX_BITS))
        method = "product" if small else "decomposed"
    run = prove_product if method == "product" else prove_decomposed
    return run(cfg, mutant=mutant, groups=groups, workdir=workdir, timeout=timeout)


# ---- generator configs ---------------------------------------------------------------------

def generator_recombination_configs(cfg: GeneratorConfig) -> dict[str, RecombinationConfig]:
    """The recombinations a generator performs, as stand-alone unit configs.

    ``level1``: ``m_U * m_B`` summed over ``Bi`` terms (if level 1 is on);
    ``level2``: ``m_V * W1`` summed over ``Bo`` terms (if level 2 is on), ``W1``
    sliced as :attr:`GeneratorConfig.w1_operand`.
    """
    return {name: _unit_config(cfg, a, x, terms)
            for name, (a, x, terms) in _generator_operands(cfg).items()}


def _unit_config(cfg: GeneratorConfig, a: W.SlicedOperand, x: W.SlicedOperand,
                 terms: int) -> RecombinationConfig:
    return RecombinationConfig(
        engine_bits=cfg.engine_bits, a_bits=a.bits, a_encoding=a.encoding, a_slices=a.widths,
        x_bits=x.bits, x_encoding=x.encoding, x_slices=x.widths, terms=terms)


def _generator_operands(cfg: GeneratorConfig):
    out = {}
    if cfg.level1:
        out["level1"] = (cfg.u_operand, cfg.b_operand, cfg.Bi)
    if cfg.level2:
        out["level2"] = (cfg.v_operand, cfg.w1_operand, cfg.Bo)
    return out


def prove_generator(cfg: GeneratorConfig, *, method: str = "auto", workdir=None,
                    timeout: float = 600) -> list[ProofReport]:
    """The proofs of a generator config: its requantizer (``acc_bits`` -> ``out_bits``)
    and the recombinations of its level-1 and level-2 products."""
    reports = [prove_requantizer(cfg.acc_bits, cfg.out_bits, cfg.shift, cfg.rounding,
                                 workdir=workdir, timeout=timeout)]
    for name, (a, x, terms) in _generator_operands(cfg).items():
        try:
            rc = _unit_config(cfg, a, x, terms)
        except ConfigError as e:
            # Wider than a stand-alone unit may be (e.g. a W1 operand over 32 bits): the
            # unit cannot be built, so only the slicing identities are proven.
            t0 = time.perf_counter()
            parts = [prove_slicing(op, workdir=workdir, timeout=timeout) for op in (a, x)]
            reports.append(ProofReport(
                name=f"{name} slicing", proven=all(p.proven for p in parts),
                statement=(f"slicing identities of both {name} operands only; no "
                           f"RecombinationUnit for these widths ({e})"),
                config={"a": list(a.widths), "x": list(x.widths)},
                seconds=time.perf_counter() - t0, yosys_version=parts[0].yosys_version,
                method="slicing", parts=parts, tools=parts[0].tools))
            continue
        rep = prove(rc, method=method, workdir=workdir, timeout=timeout)
        rep.name = f"{name} recombination"
        reports.append(rep)
    return reports
