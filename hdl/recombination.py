# SPDX-License-Identifier: Apache-2.0
"""The bit-level recombination unit: exact shift-add of sliced partial products.

A low-precision engine multiplies slice ``j`` of ``a`` (offset ``o_j``) by slice
``l`` of ``x`` (offset ``p_l``), optionally accumulating ``terms`` such products
of a dot product, and hands this unit the partials ``P[k]``,
``k = j * x.count + l``. The unit returns, with nothing lost,

    y = sum_k 2^{s_k} * P[k],        s_k = o_j + p_l   (cfg.widths.shifts)

which equals ``a * x`` (or ``sum_i a_i x_i``) by the slicing identities
``a x = sum_{j,l} 2^{o_j + p_l} a_j x_l`` (README, The arithmetic). Widths (all from
:func:`insitugen.widths.recombination_widths`, shared with the golden model):

* ``partial_bits = pb``: the fewest bits holding every engine partial
  (``terms`` products of one slice pair), or the configured larger value;
* ``out_bits``: the fewest signed bits holding
  ``sum_k 2^{s_k} * [-2^(pb-1), 2^(pb-1) - 1]``, so the unit cannot overflow
  whatever ``pb``-bit partials it is fed, consistent or not.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from insitugen import widths as W
from insitugen.config import RecombinationConfig

from .arith import shift_add_levels, shifted

__all__ = ["RecombinationUnit", "register_boundaries"]


@dataclass(frozen=True)
class _Node:
    """A tree node standing for ``value * 2^shift``; ``rng`` is the range of ``value``."""

    value: Value
    shift: int
    rng: W.Range


def _add_range(lo_node: _Node, hi_node: _Node) -> W.Range:
    d = hi_node.shift - lo_node.shift
    return (lo_node.rng[0] + (hi_node.rng[0] << d), lo_node.rng[1] + (hi_node.rng[1] << d))


def register_boundaries(levels: int, stages: int) -> list[int]:
    """Where ``stages`` pipeline registers go in a tree of ``levels`` adder levels.

    Boundary ``b`` is the output of adder level ``b`` (``b = 0``: the partials
    themselves, ``b = levels``: the final sum). Registers are spread evenly over
    the ``levels + 1`` boundaries, the last one always at the output:
    register ``i`` (1-based) sits at boundary ``ceil(i * (levels + 1) / stages) - 1``.
    More stages than boundaries stack extra registers on the same boundary.
    """
    n = levels + 1
    return [-(-i * n // stages) - 1 for i in range(1, stages + 1)]


def recombination_signature(cfg: RecombinationConfig) -> wiring.Signature:
    """The unit's ports (see :class:`RecombinationUnit`), without building the unit."""
    wd = cfg.widths
    if cfg.mode == "parallel":
        in_shape = data.ArrayLayout(signed(wd.partial_bits), wd.count)
    else:
        in_shape = signed(wd.partial_bits)
    return wiring.Signature({
        "i": In(stream.Signature(in_shape)),
        "o": Out(stream.Signature(signed(wd.out_bits))),
    })


class RecombinationUnit(wiring.Component):
    """Recombine the engine's sliced partial products into the exact product.

    Built from a :class:`~insitugen.config.RecombinationConfig` ``cfg``; with
    ``pb = cfg.widths.partial_bits``, ``ob = cfg.widths.out_bits``,
    ``n = cfg.widths.count`` (slices of ``a`` times slices of ``x``) and
    ``s_k = cfg.widths.shifts[k]``;
    ``ob = signed_bits(sum_k 2^{s_k} * [-2^(pb-1), 2^(pb-1) - 1])``. Example: 6-bit
    odd codes times 6-bit odd codes on a 3-bit engine: ``n = 4``,
    ``s = (0, 3, 3, 6)``, ``pb = 7`` (``|P| <= 7 * 7``), ``ob = 14``.

    ``mode = "parallel"``: one whole vector of partials per beat.

    * ``i``: ``In(stream.Signature(data.ArrayLayout(signed(pb), n)))``;
      element ``k`` is ``P[k]`` (Verilog ``i__payload[k*pb +: pb]``).
    * ``o``: ``Out(stream.Signature(signed(ob)))``: ``sum_k 2^{s_k} P[k]``.
    * A balanced shift-add tree over the partials sorted by shift (neighbours
      have close shifts, so each adder is only as wide as its exact range).
      ``cfg.pipeline_stages`` registers are spread evenly over the
      ``ceil(log2 n) + 1`` tree boundaries (:func:`register_boundaries`);
      one stage registers the output.
    * Latency (:attr:`latency`) = ``pipeline_stages`` cycles from the input
      handshake to ``o.valid``; 0 is purely combinational (``o.valid = i.valid``).
    * Throughput: one vector per cycle while ``o.ready`` is high. Each register
      stage accepts when it is empty or its content moves on
      (``ready_in = ~valid | ready_out``), so bubbles collapse and a stall
      holds every beat in place; ``i.ready`` depends combinationally on
      ``o.ready``.

    ``mode = "serial"``: one partial per beat.

    * ``i``: ``In(stream.Signature(signed(pb)))``; ``o`` as above.
    * A group of ``n`` beats carries ``P[k]`` for ``k`` in ``cfg.widths.serial_order``:
      shift descending (MSB first), ties by index. Horner's rule, one adder:
      ``acc = P[k_0]``, ``acc = (acc << (s_{k_{t-1}} - s_{k_t})) + P[k_t]``, and the
      result is ``acc << s_{k_{n-1}}``.
    * The output beat follows the last partial of a group: with
      ``pipeline_stages = 0`` it is valid in the same cycle as that partial
      (combinational, ``i.ready = o.ready`` on the last beat, 1 otherwise);
      each stage adds one output register. :attr:`latency` counts cycles
      from the handshake of the group's last partial to ``o.valid``.
    * Throughput: one partial per cycle (a result every ``n`` cycles).

    Synchronous logic runs in the ``sync`` domain (Verilog ports ``clk``, ``rst``,
    present in every config, also the purely combinational one); reset empties
    the pipeline and restarts a serial group.
    """

    def __init__(self, cfg: RecombinationConfig):
        if not isinstance(cfg, RecombinationConfig):
            raise TypeError(f"cfg must be a RecombinationConfig, not {cfg!r}")
        self._cfg = cfg
        super().__init__(recombination_signature(cfg))

    @property
    def cfg(self) -> RecombinationConfig:
        return self._cfg

    @property
    def latency(self) -> int:
        """Cycles from the (last) input handshake to the output beat's ``o.valid``."""
        return self._cfg.pipeline_stages

    @property
    def tree_levels(self) -> int:
        """Adder levels of the parallel shift-add tree: ``ceil(log2 n)``."""
        return (self._cfg.widths.count - 1).bit_length()

    # ---- pipeline register with valid/ready --------------------------------------
    @staticmethod
    def _register_stage(m: Module, valid_in: Value, values: list[Value], name: str):
        """One pipeline register: returns (valid_out, registered values, ready_in, ready_out).

        The caller drives ``ready_out`` (the consumer's ready). The stage loads
        when it is empty or its content is being taken: no beat is lost or
        duplicated, and a full pipeline moves one beat per cycle.
        """
        valid = Signal(name=f"{name}_valid")
        ready_in = Signal(name=f"{name}_ready_in")
        ready_out = Signal(name=f"{name}_ready_out")
        # Data registers need no reset: their content matters only while ``valid``.
        regs = [Signal(v.shape(), name=f"{name}_d{idx}", reset_less=True)
                for idx, v in enumerate(values)]
        m.d.comb += ready_in.eq(~valid | ready_out)
        with m.If(ready_in):
            m.d.sync += valid.eq(valid_in)
            m.d.sync += [r.eq(v) for r, v in zip(regs, values, strict=True)]
        return valid, regs, ready_in, ready_out

    # ---- parallel ------------------------------------------------------------------
    def _elaborate_parallel(self, m: Module):
        cfg, wd = self._cfg, self._cfg.widths
        prange = W.twos_range(wd.partial_bits)
        order = sorted(range(wd.count), key=lambda k: (wd.shifts[k], k))
        nodes = [_Node(self.i.payload[k], wd.shifts[k], prange) for k in order]

        at = {}
        for b in register_boundaries(self.tree_levels, cfg.pipeline_stages):
            at[b] = at.get(b, 0) + 1

        valid = self.i.valid
        readies = []   # (ready_in, ready_out) per register stage, in order
        stage_no = 0

        def register(nodes, valid):
            nonlocal stage_no
            v, regs, rin, rout = self._register_stage(
                m, valid, [n.value for n in nodes], f"stage{stage_no}")
            stage_no += 1
            readies.append((rin, rout))
            return [_Node(r, n.shift, n.rng) for r, n in zip(regs, nodes, strict=True)], v

        for level in range(self.tree_levels + 1):
            if level > 0:
                nxt = []
                for idx in range(0, len(nodes) - 1, 2):
                    lo, hi = nodes[idx], nodes[idx + 1]
                    rng = _add_range(lo, hi)
                    total = Signal(signed(W.signed_bits(*rng)), name=f"sum_l{level}_{idx // 2}")
                    # shift_add_levels pairs the two (value, relative shift) terms; the
                    # common shift lo.shift is factored out so the adder stays narrow.
                    m.d.comb += total.eq(
                        shift_add_levels([(lo.value, 0), (hi.value, hi.shift - lo.shift)])[-1][0])
                    nxt.append(_Node(total, lo.shift, rng))
                if len(nodes) % 2:
                    nxt.append(nodes[-1])
                nodes = nxt
            for _ in range(at.get(level, 0)):
                nodes, valid = register(nodes, valid)

        (root,) = nodes
        m.d.comb += [
            self.o.payload.eq(shifted(root.value, root.shift)),
            self.o.valid.eq(valid),
        ]
        # Ready chain, back to front: each stage's consumer is the next stage (or o).
        ready = self.o.ready
        for rin, rout in reversed(readies):
            m.d.comb += rout.eq(ready)
            ready = rin
        m.d.comb += self.i.ready.eq(ready)

    # ---- serial --------------------------------------------------------------------
    def _elaborate_serial(self, m: Module):
        cfg, wd = self._cfg, self._cfg.widths
        order = wd.serial_order
        sh = [wd.shifts[k] for k in order]           # descending
        n = len(order)
        pb_lo, pb_hi = W.twos_range(wd.partial_bits)

        # Range of acc after beat t (value before the final << sh[-1]).
        acc_ranges = []
        lo = hi = 0
        for t in range(n):
            d = sh[t - 1] - sh[t] if t else 0
            lo, hi = (lo << d) + pb_lo, (hi << d) + pb_hi
            acc_ranges.append((lo, hi))
        acc_bits = max(W.signed_bits(*r) for r in acc_ranges[:-1]) if n > 1 else 1
        final_bits = W.signed_bits(*acc_ranges[-1])

        acc = Signal(signed(acc_bits), reset_less=True)   # beat 0 overwrites it
        beat = Signal(W.bits_for_count(n))
        last = Signal()
        partial = self.i.payload
        result = Signal(signed(final_bits))     # acc after the last beat, before << sh[-1]
        group_valid = Signal()
        group_ready = Signal()

        m.d.comb += last.eq(beat == n - 1)
        if n == 1:
            m.d.comb += result.eq(partial)
        else:
            with m.Switch(beat):
                for t in range(1, n):
                    with m.Case(t):
                        m.d.comb += result.eq(shifted(acc, sh[t - 1] - sh[t]) + partial)
                with m.Default():   # beat 0 starts a group
                    m.d.comb += result.eq(partial)
        m.d.comb += group_valid.eq(self.i.valid & last)
        m.d.comb += self.i.ready.eq(~last | group_ready)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += beat.eq(Mux(last, 0, beat + 1))
            if n > 1:
                m.d.sync += acc.eq(result)

        valid, values = group_valid, [result]
        readies = []
        for s in range(cfg.pipeline_stages):
            valid, values, rin, rout = self._register_stage(m, valid, values, f"stage{s}")
            readies.append((rin, rout))
        m.d.comb += [
            self.o.payload.eq(shifted(values[0], sh[-1])),
            self.o.valid.eq(valid),
        ]
        ready = self.o.ready
        for rin, rout in reversed(readies):
            m.d.comb += rout.eq(ready)
            ready = rin
        m.d.comb += group_ready.eq(ready)

    def elaborate(self, platform):
        m = Module()
        if self._cfg.mode == "parallel":
            self._elaborate_parallel(m)
            if self._cfg.pipeline_stages == 0:
                # Keep the sync domain (clk, rst ports) in a purely combinational unit so
                # every config has the same interface; synthesis removes this constant flop.
                anchor = Signal(name="clock_anchor")
                m.d.sync += anchor.eq(0)
        else:
            self._elaborate_serial(m)
        return m
