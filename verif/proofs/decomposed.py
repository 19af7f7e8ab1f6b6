# SPDX-License-Identifier: Apache-2.0
"""Recombination of wide operands, proven as three linear proofs (any width).

End-to-end SAT of a sliced product takes minutes above ~6-bit operands or for dot
products (8-bit: 96-162 s, 9-bit over 240 s). Three linear proofs together imply the
product identity by bilinearity (``a x = (sum_j 2^{o_j} a_j)(sum_l 2^{p_l} x_l) =
sum_{j,l} 2^{o_j + p_l} a_j x_l``, and the same for each term of a dot product):

1. the unit returns ``sum_k 2^{s_k} P[k]`` exactly for *free* ``partial_bits``-bit
   partials ``P[k]`` (every value, so for the engine's too), with the latency of
   :class:`~verif.proofs.unit.UnitHarness` (:class:`ShiftAddHarness`);
2. and 3. the slicing identity of ``a`` and of ``x`` (:mod:`verif.proofs.slicing`).

That the engine's partials fit ``partial_bits`` is interval arithmetic
(``widths.recombination_widths``), checked here too. The reference sum of (1) is exact
whatever its order (Amaranth widens every addition); it adds in the unit's tree order
only so that SAT sees matching structure (parallel, 64 partials: 4 s; in another
order 16 partials took over 5 minutes). Serial mode unrolls one adder per beat and
scales worse: 9 partials of 12 bits, 2 groups: about 40 s; 16 partials: minutes
(``groups=1`` halves it).
"""

from __future__ import annotations

import os
import time

from amaranth.hdl import Const, Module, Signal, signed
from amaranth.lib.wiring import In

from insitugen import widths as W
from insitugen.config import RecombinationConfig
from insitugen.errors import ConfigError
from verif.proofs.sat import ProofReport, run_sat
from verif.proofs.slicing import prove_slicing
from verif.proofs.unit import UnitHarness, config_words, recombination_depth

__all__ = ["ShiftAddHarness", "prove_decomposed", "check_partial_ranges"]


def _exact_tree_sum(terms):
    """``sum 2^s * v`` as a balanced tree of Amaranth additions in the given order.

    Amaranth arithmetic widens every sum, so the value is the exact integer
    whatever the order; pairing neighbours sorted by shift (as an adder tree
    would) only keeps the SAT problem structurally close to the hardware, which
    CDCL needs: re-associating a 16-term sum in another order took minutes.
    """
    level = [v.shift_left(s) if s else v for v, s in terms]
    while len(level) > 1:
        nxt = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


class ShiftAddHarness(UnitHarness):
    """The unit fed free partials (``p0..`` in parallel mode, ``p`` per beat in serial)."""

    def __init__(self, cfg: RecombinationConfig, mutant: str | None = None):
        wd = cfg.widths
        if cfg.mode == "parallel":
            ports = {f"p{k}": In(signed(wd.partial_bits)) for k in range(wd.count)}
        else:
            ports = {"p": In(signed(wd.partial_bits))}
        super().__init__(cfg, ports, mutant)

    def parallel(self, m: Module):
        wd = self._cfg.widths
        parts = [getattr(self, f"p{k}") for k in range(wd.count)]
        value = _exact_tree_sum([(parts[k], wd.shifts[k]) for k in
                                 sorted(range(wd.count), key=lambda k: (wd.shifts[k], k))])
        if self._mutant == "drop_slice":
            parts[-1] = Const(0, 1)
        return parts, value

    def serial(self, m: Module, beat, first, handshake):
        # The reference shifts each beat's partial by its own s_k and adds at full width
        # (a direct sum, independent of the unit's Horner accumulation; a Horner-shaped
        # reference proved no faster).
        wd = self._cfg.widths
        n = wd.count
        acc = Signal(signed(wd.out_bits + 2))
        nxt = Signal(signed(wd.out_bits + 2))
        m.d.comb += self.dut.i.payload.eq(self.p)
        with m.Switch(beat):
            for t, k in enumerate(wd.serial_order):
                with m.Case(t):
                    if self._mutant == "drop_slice" and k == n - 1:
                        m.d.comb += self.dut.i.payload.eq(0)
                    base = 0 if t == 0 else acc
                    s = wd.shifts[k]
                    m.d.comb += nxt.eq(base + (self.p.shift_left(s) if s else self.p))
        with m.If(handshake):
            m.d.sync += acc.eq(nxt)
        return nxt


def check_partial_ranges(cfg: RecombinationConfig) -> None:
    """ConfigError when an engine partial's interval is wider than ``partial_bits``."""
    wd = cfg.widths
    lo, hi = W.twos_range(wd.partial_bits)
    for k, (plo, phi) in enumerate(wd.partial_ranges):
        if plo < lo or phi > hi:
            raise ConfigError(f"partial {k} spans [{plo}, {phi}], wider than partial_bits = "
                              f"{wd.partial_bits}")


def prove_decomposed(cfg: RecombinationConfig, *, mutant: str | None = None, groups: int = 2,
                     workdir: str | os.PathLike | None = None,
                     timeout: float = 600) -> ProofReport:
    """The three linear proofs of the module docstring, as one report whose ``parts``
    are the sub-proofs (arguments checked by ``verif.formal.prove``)."""
    check_partial_ranges(cfg)
    t0 = time.perf_counter()
    harness = ShiftAddHarness(cfg, mutant)
    latency = harness.checked_latency
    depth = recombination_depth(cfg, latency, groups)
    conf = cfg.to_dict()
    statement = (f"RecombinationUnit({config_words(cfg)}) outputs exactly "
                 f"sum_k 2^s_k P[k] for free {cfg.widths.partial_bits}-bit partials "
                 f"{latency} cycle(s) after each input "
                 f"{'beat' if cfg.mode == 'parallel' else 'group'} ({groups} group(s), "
                 f"{depth} cycles unrolled)")
    unit = run_sat(harness, depth=depth, name="recombination shift-add", statement=statement,
                   config=conf, method="decomposed", mutant=mutant, workdir=workdir,
                   timeout=timeout)
    parts = [unit] + [prove_slicing(op, workdir=workdir, timeout=timeout)
                      for op in (cfg.a, cfg.x)]
    statement = (f"RecombinationUnit({config_words(cfg)}) computes the exact product: "
                 f"shift-add of any partials, slicing identities of a and x, partial "
                 f"ranges within {cfg.widths.partial_bits} bits; by bilinearity")
    return ProofReport(name="recombination", statement=statement, config=conf,
                       proven=all(p.proven for p in parts), seconds=time.perf_counter() - t0,
                       yosys_version=unit.yosys_version, depth=depth, method="decomposed",
                       mutant=mutant, command=unit.command,
                       counterexample=next((p.counterexample for p in parts
                                            if p.counterexample), None),
                       parts=parts, tools=unit.tools)
