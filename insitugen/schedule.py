# SPDX-License-Identifier: Apache-2.0
"""The generator's schedule arithmetic, in one plain class (no HDL, no torch).

:class:`Schedule` is what :class:`hdl.generator.Generator` builds from, and what the
testbench, the sweep and the synthesis reports read: steps per round, cycles per
pass, the lower bounds, memory shapes and bits, memory reads per pass. Nothing
here elaborates hardware, so reading a figure never builds an Elaboratable.

Notation: ``p`` = out_channels, ``q`` = in_channels, ``K`` = kernel^2, ``N = q*K``
(weights per output channel), ``L`` = lanes, ``R = ceil(N / L)`` rounds per row,
``s`` = engine_bits, ``S_X`` = slice count of operand X on the engine, ``b`` = weights
per output beat (``cfg.beat``), ``D = L / b`` beats per full round.

Product orders (``cfg.product_order``; they differ only with both levels on):

* ``"vb"`` (W1-free): ``W[j,c,t] = sum_{o,i} m_U[o,c,i] * (m_V[j,o] * m_B[o,i,t])``.
  The ``K`` products ``VB[t] = m_V[j,o] * m_B[o,i,t]`` of a step are shared by all
  lanes (``cfg.vb_operand``: odd, ``vb_bits`` wide); each lane multiplies U slices by
  VB slices straight into its weight accumulator. Steps per (o, i): ``S_U * S_VB``.
* ``"w1"`` (W1 recompute): per ``o`` the lane computes ``W1[o,c,t]`` (level-1 steps
  ``Bi * S_U * S_B``) into a W1 register, then level-2 steps ``S_V * S_W1``.
* ``"w1once"`` (W1 once, output ``order = "tile"``): the pass loops column tiles ``r <
  R`` (lane ``m`` owns column ``n = r*L + m``). Per tile, phase 1 computes every
  ``W1[o, c, t]`` of the tile's columns once (``Bo`` blocks of ``Bi * S_U * S_B`` steps,
  accumulated in the lane's weight accumulator and written to the W1 buffer, word ``o``
  = ``L`` fields of ``w1_bits``); after :attr:`Schedule.w1_bubbles` idle cycles (only
  where the buffer's last word would be read before it is written: ``Bo = 1`` or very
  short blocks), phase 2 runs every row ``j < p``: ``Bo`` blocks of ``S_V * S_W1`` steps
  (``V[j,o]`` broadcast times the lane's ``W1`` slices read from buffer word ``o``), one
  beat per row. Beats come tile-major: beat ``r*p + j`` carries ``W[j].flat[r*L ..]``.
"""

from __future__ import annotations

from .config import GeneratorConfig

__all__ = ["Schedule", "BASE_LATENCY"]

#: Pipeline cycles of a pass beyond ``n_rounds * steps_per_round`` with no extra stage:
#: memory read, multiply-accumulate, output register.
BASE_LATENCY = 3


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class Schedule:
    """Every figure of the generator's schedule for one config (read-only properties)."""

    def __init__(self, cfg: GeneratorConfig):
        if not isinstance(cfg, GeneratorConfig):
            raise TypeError(f"Schedule needs a GeneratorConfig, not {cfg!r}")
        self._cfg = cfg
        q, K, L = cfg.in_channels, cfg.K, cfg.lanes
        self._N = q * K
        self._R = _ceil_div(self._N, L)
        self._NB = min(q, (L + K - 2) // K + 1)

    # ---- the config and its form ---------------------------------------------------------
    @property
    def cfg(self) -> GeneratorConfig:
        return self._cfg

    @property
    def lanes(self) -> int:
        return self._cfg.lanes

    @property
    def order(self) -> str:
        """The product order the datapath uses: ``"vb"``, ``"w1"`` or ``"w1once"`` with both
        levels on, else ``"direct"`` (one level or none: every order is the same
        datapath)."""
        cfg = self._cfg
        return cfg.product_order if cfg.level1 and cfg.level2 else "direct"

    @property
    def row_weights(self) -> int:
        """``N = q*K`` weights per output channel."""
        return self._N

    @property
    def o_loop(self) -> int:
        """Basis rows visited per round: ``Bo`` with level 2 on, else 1 (``o = j``)."""
        return self._cfg.Bo if self._cfg.level2 else 1

    # ---- slice pairs (a slice, x slice, shift) of each kind of step ----------------------
    @staticmethod
    def _pairs(a, x) -> list[tuple[int, int, int]]:
        return [(ja, jx, oa + ox) for ja, oa in enumerate(a.offsets)
                for jx, ox in enumerate(x.offsets)]

    @property
    def pairs_level1(self) -> list[tuple[int, int, int]]:
        """The steps of one ``i`` term: U slice x (B slice, or VB slice in the vb order)."""
        cfg = self._cfg
        if not cfg.level1:
            return []
        return self._pairs(cfg.u_operand, cfg.vb_operand if self.order == "vb"
                           else cfg.b_operand)

    @property
    def pairs_level2(self) -> list[tuple[int, int, int]]:
        """Level-2 steps of one ``o`` (V slice x W1 slice); none in the vb order."""
        cfg = self._cfg
        if not cfg.level2 or self.order == "vb":
            return []
        return self._pairs(cfg.v_operand, cfg.w1_operand)

    # ---- cycles ----------------------------------------------------------------------------
    @property
    def rounds_per_row(self) -> int:
        """``R = ceil(q*K / L)`` rounds per output channel."""
        return self._R

    @property
    def n_rounds(self) -> int:
        """Rounds per pass: ``p * R``."""
        return self._cfg.out_channels * self._R

    @property
    def beat(self) -> int:
        """``b`` = weights per output beat (``cfg.beat``; ``L`` = one beat per round)."""
        return self._cfg.beat

    @property
    def beats_per_round(self) -> int:
        """``D = L / b``: beats a full round drains in."""
        return self._cfg.lanes // self.beat

    @property
    def drain(self) -> str:
        """How a round leaves the lanes: ``"none"`` (``b = L``: one beat per round),
        ``"skew"`` (``b < L`` and ``S >= D``: lane group ``g`` runs ``g`` cycles behind
        group 0, so each group's weights are read out of its own accumulators in its own
        cycle, no bank) or ``"bank"`` (``b < L``, ``S < D``: groups ``1..D-1`` are held in
        a bank while they leave). Both drains give the same beats and cycles."""
        if self.beat == self._cfg.lanes:
            return "none"
        return "skew" if self.steps_per_round >= self.beats_per_round else "bank"

    @property
    def row_tail(self) -> int:
        """Weights of a row's last round: ``N - (R-1)*L``."""
        return self._N - (self._R - 1) * self._cfg.lanes

    @property
    def tail_beats(self) -> int:
        """Beats of a row's last round: ``ceil(row_tail / b)``."""
        return _ceil_div(self.row_tail, self.beat)

    @property
    def row_beats(self) -> int:
        """Beats per output channel: ``ceil(N / b)`` (``(R-1)*D + tail_beats``)."""
        return _ceil_div(self._N, self.beat)

    @property
    def n_beats(self) -> int:
        """Beats per pass: ``p * ceil(N / b)``."""
        return self._cfg.out_channels * self.row_beats

    @property
    def macs_per_weight(self) -> int:
        """Engine multiplies per weight of the chosen order (``cfg.macs_per_weight``)."""
        return self._cfg.macs_per_weight

    @property
    def steps_per_round(self) -> int:
        """Engine cycles per round (a beat's weights): ``max(1, macs_per_weight)``; in the
        w1once order the level-2 cycles of one row of a tile, ``Bo * S_V * S_W1``."""
        return max(1, self.macs_per_weight)

    # ---- the w1once order: column tiles, level 1 once per tile -------------------------
    @property
    def tile_level1_steps(self) -> int:
        """w1once: phase-1 cycles of a tile, ``Bo * Bi * S_U * S_B`` (each W1 of the tile's
        columns once); 0 in the other orders."""
        return self._cfg.Bo * self._cfg.level1_steps if self.order == "w1once" else 0

    @property
    def w1_bubbles(self) -> int:
        """w1once: idle cycles between a tile's phase 1 and phase 2 (0 in the other orders).

        Buffer word ``o`` is written in the cycle after its last level-1 step accumulates
        (at the edge ending cycle ``2 + stages`` after that step is issued) and read, not
        write-transparent, as the first level-2 step of ``o`` is issued (so its slice can
        be registered at the operand stage), which must come at least one cycle later:
        with blocks of ``l1`` and ``l2`` steps, ``max(0, 2 + stages - (Bo - 1) * min(l1,
        l2))``, ``stages`` = the register stages present."""
        if self.order != "w1once":
            return 0
        cfg = self._cfg
        l1, l2 = cfg.level1_steps, cfg.level2_steps
        return max(0, 2 + sum(self.register_stages) - (cfg.Bo - 1) * min(l1, l2))

    @property
    def tile_cycles(self) -> int:
        """w1once: cycles of one column tile, ``tile_level1_steps + w1_bubbles + p *
        steps_per_round``; the other orders: ``p * steps_per_round`` (one round of each
        row)."""
        return (self.tile_level1_steps + self.w1_bubbles
                + self._cfg.out_channels * self.steps_per_round)

    @property
    def cycles_per_pass(self) -> int:
        """Engine cycles of one pass without drain stalls: ``n_rounds * steps_per_round``;
        w1once: ``R * tile_cycles``."""
        if self.order == "w1once":
            return self._R * self.tile_cycles
        return self.n_rounds * self.steps_per_round

    @property
    def longest_beat_gap(self) -> int:
        """Most engine cycles between two beats of a pass (a round; w1once: a tile's phase
        1, its bubbles and its first row)."""
        return self.steps_per_round + self.tile_level1_steps + self.w1_bubbles

    @property
    def drain_stall_cycles(self) -> int:
        """Cycles per pass the datapath stalls for the drain, output always ready: a round's
        beats leave one per cycle while the next round runs, and the round after it waits
        while they have not all left: ``p * ((R-1) * max(0, D - S) + max(0, tail_beats -
        S))`` with ``S = steps_per_round`` (0 whenever ``S >= D``)."""
        S = self.steps_per_round
        per_row = ((self._R - 1) * max(0, self.beats_per_round - S)
                   + max(0, self.tail_beats - S))
        return self._cfg.out_channels * per_row

    @property
    def pass_period(self) -> int:
        """Cycles between the last beats of two back-to-back passes, output always ready:
        ``cycles_per_pass + drain_stall_cycles``."""
        return self.cycles_per_pass + self.drain_stall_cycles

    @property
    def register_stages(self) -> tuple[bool, bool]:
        """The extra datapath registers present, from ``cfg.pipeline_stages``:
        (operand stage: the shared operands after the memory-side selection, product
        stage: each lane's product before its accumulator). A layer with both levels off
        multiplies nothing and takes neither."""
        cfg = self._cfg
        mac = cfg.level1 or cfg.level2
        return (mac and cfg.pipeline_stages >= 1, mac and cfg.pipeline_stages >= 2)

    @property
    def latency(self) -> int:
        """Fixed cycles of a pass beyond :attr:`cycles_per_pass`: 3 (memory read,
        multiply-accumulate, output register) plus one per register stage present."""
        return BASE_LATENCY + sum(self.register_stages)

    @property
    def pass_cycles(self) -> int:
        """Cycles from the edge sampling ``start`` to the last beat's handshake, ready high:
        ``latency + pass_period - max(S, T) + S + T - 1`` with ``T = tail_beats`` (the
        last round's drain has no next round to overlap); one beat per round: ``latency +
        n_rounds * S``."""
        S, tb = self.steps_per_round, self.tail_beats
        return self.latency + self.pass_period - max(S, tb) + S + tb - 1

    @property
    def cycles_lower_bound(self) -> int:
        """``ceil(p*q*K*macs_per_weight / L)`` of the chosen order (every lane busy every
        cycle); both levels off: the number of rounds; w1once: its level-1 multiplies once
        plus its level-2 ones over ``L`` (:attr:`algorithmic_minimum`)."""
        cfg = self._cfg
        if self.order == "w1once":
            return self.algorithmic_minimum
        macs = cfg.n_weights * self.macs_per_weight
        return _ceil_div(macs, cfg.lanes) if macs else self.n_rounds

    def order_macs_per_weight(self, order: str) -> int:
        """Engine multiplies per weight had the config chosen product order ``order``."""
        return self._cfg.replace(product_order=order).macs_per_weight

    @property
    def algorithmic_minimum(self) -> int:
        """Cycles if each ``W1[o, c, t]`` were computed exactly once per pass:
        ``ceil((Bo*q*K*Bi*S_U*S_B + p*q*K*Bo*S_V*S_W1) / L)`` with both levels on (the
        bound of a W1-once schedule, which needs a W1 buffer); otherwise the same as
        :attr:`cycles_lower_bound`."""
        cfg = self._cfg
        if not (cfg.level1 and cfg.level2):
            return self.cycles_lower_bound
        q, K = cfg.in_channels, cfg.K
        once = cfg.Bo * q * K * cfg.level1_steps
        level2 = cfg.n_weights * cfg.Bo * cfg.v_operand.count * cfg.w1_operand.count
        return _ceil_div(once + level2, cfg.lanes)

    # ---- memories --------------------------------------------------------------------------
    @property
    def window_channels(self) -> int:
        """``NB``: input channels one round touches at most (U row width)."""
        return self._NB

    @property
    def u_rows(self) -> int:
        """Rows of ``NB`` channels the U memory is grouped in."""
        return _ceil_div(self._cfg.in_channels, self._NB)

    @property
    def memory_shapes(self) -> dict[str, tuple[int, int]]:
        """Memory name -> (depth, word bits); depth at least 2 (a one-word memory has a
        zero-width address, which Verilog cannot declare)."""
        cfg = self._cfg
        shapes = {}
        if cfg.level1:
            shapes["B"] = (cfg.Bo * cfg.Bi, cfg.K * cfg.qb)
            shapes["U"] = (self.u_rows * cfg.Bo * cfg.Bi, self._NB * cfg.qu)
        else:
            shapes["B"] = (self._R * cfg.Bo, cfg.lanes * cfg.qb)
        if cfg.level2:
            shapes["V"] = (cfg.out_channels * cfg.Bo, cfg.qv)
        return {k: (max(2, d), w) for k, (d, w) in shapes.items()}

    @property
    def memory_bits(self) -> dict[str, int]:
        """Code memory name -> bits (``depth * word bits``; includes padding of partial
        rows). The W1 buffer is not a code memory: :attr:`w1_buffer_bits`."""
        return {k: d * w for k, (d, w) in self.memory_shapes.items()}

    @property
    def w1_buffer_shape(self) -> tuple[int, int] | None:
        """w1once: the W1 buffer's (depth, word bits) = ``(max(2, Bo), L * w1_bits)``, word
        ``o`` holding ``W1[o, c, t]`` of the tile's column in lane ``m``'s field; None in
        the other orders (they buffer no W1)."""
        if self.order != "w1once":
            return None
        cfg = self._cfg
        return (max(2, cfg.Bo), cfg.lanes * cfg.w1_bits)

    @property
    def w1_buffer_bits(self) -> int:
        """Bits of the W1 buffer (0 without one): ``Bo * L * w1_bits`` (30,976 on the
        default layer)."""
        shape = self.w1_buffer_shape
        return shape[0] * shape[1] if shape else 0

    @property
    def reads_per_pass(self) -> dict[str, int]:
        """Word reads of each memory in one pass (read ports 'U' count both window
        ports). A word is read once per step run that uses it: per (o, i) for B and U, per
        o for V (level 1 on), per (o) for B with level 1 off."""
        cfg = self._cfg
        rounds = self.n_rounds
        out = {}
        if self.order == "w1once":
            # per tile: B, U once per (o, i) of phase 1; V and W1 once per (j, o) of phase 2
            tiles, blocks = self._R, cfg.Bo * cfg.Bi
            return {"B": tiles * blocks, "U": tiles * blocks * 2,
                    "V": tiles * cfg.out_channels * cfg.Bo,
                    "W1": tiles * cfg.out_channels * cfg.Bo}
        if cfg.level1:
            per_round = self.o_loop * cfg.Bi
            out["B"] = rounds * per_round
            out["U"] = rounds * per_round * 2
        else:
            out["B"] = rounds * self.o_loop
        if cfg.level2:
            out["V"] = rounds * cfg.Bo
        return out

    @property
    def w1_buffer_writes_per_pass(self) -> int:
        """Word writes of the W1 buffer in one pass: ``R * Bo`` (w1once), else 0."""
        return self._R * self._cfg.Bo if self.order == "w1once" else 0

    def as_dict(self) -> dict[str, int | str]:
        """The figures the testbench and the reports record."""
        return {"order": self.order, "output_order": self._cfg.order,
                "rounds_per_row": self.rounds_per_row,
                "beat": self.beat, "n_beats": self.n_beats,
                "steps_per_round": self.steps_per_round,
                "cycles_per_pass": self.cycles_per_pass,
                "drain_stall_cycles": self.drain_stall_cycles,
                "latency": self.latency, "pass_cycles": self.pass_cycles,
                "cycles_lower_bound": self.cycles_lower_bound,
                "algorithmic_minimum": self.algorithmic_minimum,
                "memory_bits": sum(self.memory_bits.values()),
                "w1_buffer_bits": self.w1_buffer_bits}
