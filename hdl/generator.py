# SPDX-License-Identifier: Apache-2.0
"""The on-chip MLG weight generator: a whole layer regenerated from its codes, bit-exact.

``Generator(cfg)`` loads the codes of one layer (``B``, ``U``, ``V``; README,
The arithmetic) into on-chip memories, then, on every ``start``, streams
the layer's weights ``W[p, q, k, k]`` in ``oihw`` order, computed exactly as
:func:`golden.generate.generate` does (same widths from
:mod:`insitugen.widths`, same requantization from :mod:`hdl.arith`).

Notation: ``p`` = out_channels, ``q`` = in_channels, ``K`` = kernel^2,
``N = q*K`` (weights per output channel), ``L`` = lanes, ``R = ceil(N / L)``
rounds per row, ``Bo = cfg.Bo``, ``Bi = cfg.Bi``, ``s`` = engine_bits,
``S_X`` = slice count of operand X on the engine (``cfg.*_operand``).

Schedule
--------
A pass loops rows ``j = 0..p-1`` (output channels), rounds ``r = 0..R-1``; in
round ``r`` lane ``m`` computes the weight of column ``n = r*L + m`` of row
``j`` (``c = n // K``, ``t = n % K``; the lane idles when ``n >= N``). All
lanes follow one shared step sequence, one engine multiply per lane per cycle:

* both levels on, ``product_order = "vb"`` (the default, W1-free): for ``o < Bo``,
  ``i < Bi``, each slice pair (U slice, VB slice): ``W[j,c,t] += m_U[o,c,i] *
  VB[t]`` with ``VB[t] = m_V[j,o] * m_B[o,i,t]``. The ``K`` products ``VB`` of a step
  come from ``K`` small shared multipliers (``(qv+1) x (qb+1)`` bits, one per tap
  residue, not per lane) and are odd integers, taken as ``cfg.vb_bits``-bit odd codes
  (free wiring) and sliced like any odd code; no lane holds a ``W1``;
* both levels on, ``product_order = "w1"`` (W1 recompute): for ``o < Bo``: level-1
  steps (``i < Bi``, U slice, B slice) accumulate ``W1[o, c, t]`` in a per-lane
  register; then level-2 steps (V slice, W1 slice) accumulate ``W[j, c, t]``;
* both levels on, ``product_order = "w1once"`` (``order = "tile"``; W1 once): the pass
  loops column tiles ``r`` (lane ``m`` owns column ``n = r*L + m`` of every row); per
  tile phase 1 runs ``o < Bo``, ``i < Bi``, (U slice, B slice) and accumulates each
  lane's ``W1[o, c, t]`` in its weight accumulator, written to the W1 buffer (word
  ``o``, lane ``m``'s ``w1_bits`` field) in the cycle after the block's last step; after
  ``Schedule.w1_bubbles`` idle steps phase 2 runs every row ``j``: ``o < Bo``, (V slice,
  W1 slice) with ``V[j, o]`` broadcast and the W1 slice from buffer word ``o``, one beat
  per row, so beats are tile-major (beat ``r*p + j``);
* level 1 off (``base_in = 0``): ``W1 = m_B[o, c, t]`` (the odd B code, sliced
  as an odd code); per ``o`` only level-2 steps;
* level 2 off (``base_out = 0``): ``o = j``; only level-1 steps; ``W = W1``;
* both off: ``W = m_B[j, c, t]``; one step per round.

With one level off (or both) the product orders are the same datapath.
Outside the w1once order ``W1`` is never buffered: a ``W1`` buffer for oihw order would hold
``Bo*q*K*w1_bits`` bits (557 kbit for the default config, 6.4x its codes).
Engine multiplies per weight (``cfg.macs_per_weight``): ``Bo*Bi*S_U*S_VB`` (vb),
``Bo*(Bi*S_U*S_B + S_V*S_W1)`` (w1), ``Bi*S_U*S_B`` (level 2 off), ``Bo*S_V*S_B``
(level 1 off), 0 (both off). Steps per round: ``max(1, macs_per_weight)``. The
figures (cycles, bounds, memories, reads) are those of
:class:`insitugen.schedule.Schedule`; the orders trade places with the engine width
(default layer: 792 vs 1056 on a 2-bit engine, 352 vs 352 on 3 bits, 352 vs 308 on 4).

Recombination (``cfg.recombination``):

* ``"fused"``: per lane one accumulator per sum (``W``; in the w1 order also
  ``W1``); each step adds ``product << shift`` (shift = sum of the slice offsets of
  the step's pair, chosen among the distinct shifts by signals shared by all lanes:
  an AND-OR of the shifted products, 0 in a step that adds nothing, so the register
  needs a hold only for the stall). Accumulator width:
  ``insitugen.widths.sum_abs_bound`` over all terms (holds every prefix sum).
* ``"separate"``: per lane one partial accumulator per slice pair, summing that
  pair's products over the sum's terms (vb: ``Bo*Bi``; w1 level 1: ``Bi``, level 2:
  ``Bo``); the value is the shift-add tree (:func:`hdl.arith.shift_add_levels`) of
  the partials.

Register stages (``cfg.pipeline_stages``, :attr:`Schedule.register_stages`):

* 1 (default): the operands shared by the lanes (vb: the ``K`` selected VB slices,
  the ``NB`` selected U window slices and the ``K`` window carries; level 1 off: the
  V slice; w1: the ``K`` B codes, the U window, the V code) are registered after
  their memory-side selection, so a lane's path starts at a register: at most a 2:1
  window choice, the multiplier, the shift choice and the accumulator adder.

With level 1 on, the selected slices travel in sign-magnitude (``|v| = 2*mu + 1``
and a sign; one XOR per bit before the register), and a lane multiplies the two
``s - 1``-bit magnitudes (``F = 2*mu_a*mu_x + mu_a + mu_x``, ``|a*x| = 2F + 1``)
and applies the sign by XOR (``-(2F + 1) = ~(2F)``): no Booth recoding and no
negation carry in front of the accumulator adder (the shared V*B multipliers are
built the same way). The accumulate stage's add control (one flag per distinct
shift, and the clear) is decoded from the stage before it and registered with it
(:func:`acc_add_layout`), and the memory data stage takes the round's tap offset
``rt`` one-hot, so the B tap of each residue is an AND-OR of a register.
* 2 (not the w1 order, which feeds W1 back into its multiplier): each lane's
  product is registered too, splitting multiplier and accumulator adder (w1once: all
  ``2s + 2`` bits, a level-2 product being not odd).
* w1once: phase 1 shares the ux form's operands (the step's B slice per residue, U
  slice per window channel); in phase 2 every U window slot carries the V slice. The
  W1 buffer is read as a level-2 block's first step is issued; each lane selects its W1
  slice in the memory data stage, and the operand stage registers it, so the lane's
  path starts at registers as in the vb form.
* Every stage adds one cycle of latency and none of throughput; both levels off has
  no multiplier and takes no stage.

Nothing is ever truncated before the final value, whose exact range is
``cfg.w1_range`` / ``cfg.acc_range``. Multiplier inputs are ``(s+1)``-bit
signed (odd values: ``s`` bits plus the constant LSB), products at most
``(2s+2)``-bit signed. With every slice count 1 both forms
are the same single-MAC datapath.

Memories (one write port each, synchronous read; ``memory_bits`` gives bits). Each
read is enabled only when its word is needed (``Schedule.reads_per_pass``): B and U
at the first step of each ``(o, i)``, V at the first step of each ``o``, the per-lane
B word of level 1 off at the first step of each ``o``, one stage early so it meets
its multiply; a word read once holds on the port while its steps run.

* ``V`` (level 2 on): ``p*Bo`` words of ``qv`` bits, address ``j*Bo + o``;
  broadcast to all lanes.
* ``B`` with level 1 on: ``Bo*Bi`` words of ``K*qb`` bits (word ``o*Bi + i``
  holds ``B[o, i, 0..K-1]``); lane ``m`` selects ``t_m``.
* ``U`` (level 1 on): channels grouped in rows of ``NB = min(q, (L+K-2)//K + 1)``
  (the most channels one round touches); word ``(row*Bo + o)*Bi + i`` holds
  ``U[o, row*NB .. row*NB+NB-1, i]`` (``ceil(q/NB)*Bo*Bi`` words of ``NB*qu``
  bits). Two read ports fetch rows ``c_lo // NB`` and the next, the window of
  ``NB`` channels starting at ``c_lo = r*L // K`` is cut out of both, and lane
  ``m`` takes window channel ``(n0 % K + m) // K`` (a 2:1 choice per lane).
* ``B`` with level 1 off: ``R*Bo`` words of ``L*qb`` bits; word ``r*Bo + o``
  holds ``B[o, r*L .. r*L+L-1]`` (lane ``m`` reads its own field, no mux).
  Both off: the same with ``Bo = p`` and ``o = j``.
* ``W1`` (w1once order only; not a code memory, ``Schedule.w1_buffer_bits``):
  ``max(2, Bo)`` words of ``L*w1_bits`` bits; word ``o`` holds the tile's ``W1[o, c,
  t]``, lane ``m`` in field ``m``. Written once per ``(tile, o)``, read once per
  ``(tile, row, o)`` (not write-transparent). B and U are read per ``(tile, o, i)`` of
  phase 1, V per ``(tile, row, o)`` of phase 2.

Every memory is at least 2 words deep (Verilog cannot declare a zero-width
address). For the default config the memories hold exactly the codes:
B 2376 + U 67584 + V 16896 = 86856 bits.

Requantization and drain: :func:`hdl.arith.round_shift_saturate` with ``cfg.out_bits``
/ ``cfg.shift`` / ``cfg.rounding`` on the exact weight (``out_bits = 0``: the full
``cfg.acc_bits`` weight), by ``b = cfg.beat`` requantizers (``beat_weights``). A
finished round leaves in ``D = L / b`` beats (a row's last round in ``ceil(tail / b)``):
the first in the cycle after the round ends, the others from a bank of ``D - 1`` slots
of ``b`` held values, one per cycle while the next round runs (:class:`Requantizer`).

Structure: components with one job each, joined with :func:`amaranth.lib.wiring.connect`:

* :class:`CodeLoader`: codes -> memory write ports (one address counter per tensor);
* :class:`Sequencer`: pass requests -> the control of each step (:func:`step_layout`),
  from :class:`StepCounters` (``j``, ``r``, ``o``, ``i``, slice pair, phase),
  :class:`WindowTracker` (level 1's U window of the round) and :class:`CodeReads`
  (the gated memory reads);
* :class:`ControlPipeline`: the step's control registered once per pipeline stage;
* :class:`SharedOperands`: memory words -> the operands all lanes share
  (:func:`operand_signature`: per form the selected slices, codes and window);
* the lane array of the form: :class:`OneSumLanes` (vb order, one level off),
  :class:`W1Lanes` (w1 order), :class:`W1OnceLanes` (w1once order, with the W1 buffer
  memory and :class:`W1BufferReads`; its counters are :class:`W1OnceCounters`) or
  :class:`CodeLanes` (both levels off), one exact weight per lane (with the skewed drain
  one array per group of ``b`` lanes);
* :class:`Requantizer`: finished round -> ``D`` output beats through ``b`` shared
  requantizers (the drain: skewed lane groups, or a bank), and the stall.

Ports (``wb = cfg.weight_bits``; Verilog names flatten with ``__``)
----------------------------------------------------------------------
* ``codes``: ``In(stream.Signature(unsigned(cb)))``, ``cb`` = the widest code
  of the present tensors; one code per beat, zero-extended. Load order: ``B``
  row-major over ``cfg.code_shapes["B"]``, then ``U`` (level 1 on), then ``V``
  (level 2 on). ``ready = ~busy``. The beat of the last code sets ``loaded``;
  a later beat starts loading a new layer (``loaded`` drops until its last
  code).
* ``start``: ``In(1)``: a pulse (or a held level) requests a pass; requests
  are latched, so a start during a pass runs the next pass right after it,
  with no bubble; a start held high runs passes back to back until it falls.
  Ignored while ``loaded = 0`` and in a cycle where a code beat is accepted.
* ``weights``: ``Out(stream.Signature(StructLayout({"w": ArrayLayout(signed(wb), b),
  "count": unsigned(bit_length(b)), "last": 1})))``, ``b = cfg.beat`` weights per beat
  (``L`` by default). Beats are row-aligned: row ``j`` is ``ceil(N / b)`` beats; beat
  ``r`` of a row carries ``W[j].flat[r*b : r*b+count]`` in positions ``0..count-1``
  (``count = b`` except ``N - (ceil(N/b)-1)*b`` on the last beat of a row), unused
  positions are 0; ``last`` marks the final beat of a pass. Verilog payload packing,
  LSB first: position 0 .. b-1 (``wb`` bits each), then ``count``, then ``last``.
  In the w1once order (``order = "tile"``, always ``b = L``) beat ``r*p + j`` carries
  tile ``r`` of row ``j`` instead (:mod:`insitugen.order`), ``count = N - (R-1)*L`` on
  every beat of the last tile.
* ``busy``: ``Out(1)``: a pass is requested or running or its last beat is not
  yet taken. ``loaded``: ``Out(1)``: a complete layer is in the memories.

Timing
------
With ``weights.ready`` held high, the last beat of a pass is taken
``Schedule.pass_cycles`` cycles after the clock edge that samples ``start``: with one
beat per round (``b = L``) ``n_rounds * steps_per_round + latency`` (``latency = 3 +
register stages``: memory read, [operand register], [product register],
multiply-accumulate, output register); with ``b < L`` the last round's
``ceil(tail / b) - 1`` further beats and the drain stalls below come on top.
Back-to-back passes add exactly ``Schedule.pass_period`` cycles each
(``cycles_per_pass``: ``n_rounds * steps_per_round``, w1once ``R * tile_cycles``, plus
the drain stalls).

The datapath stalls only (1) when a round ends while the one-beat output register
still holds an untaken beat (back-pressure), and (2) with ``b < L``, when a round ends
while beats of the round before are still in the drain bank: a round of ``D`` beats
(``ceil(tail / b)`` for a row's last) takes ``max(S, D)`` cycles before the next round
can end, ``S = steps_per_round``, so there is no stall at all where ``S >= L / b``
(``Schedule.drain_stall_cycles`` counts them; 0 on every layer with both levels on and
``b >= L / S``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from insitugen import widths as W
from insitugen.config import GeneratorConfig
from insitugen.schedule import Schedule

from .arith import (
    counter_shape,
    odd_from_code,
    operand_slices,
    round_shift_saturate,
    shift_add_levels,
)

__all__ = ["Generator", "generator_signature", "weights_layout"]

def weights_layout(cfg: GeneratorConfig, beat: int | None = None) -> data.StructLayout:
    """Payload layout of the ``weights`` stream: ``beat`` (default ``cfg.beat``) weights,
    their ``count`` and ``last``."""
    beat = cfg.beat if beat is None else beat
    return data.StructLayout({
        "w": data.ArrayLayout(signed(cfg.weight_bits), beat),
        "count": unsigned(beat.bit_length()),
        "last": 1,
    })


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _fused_accumulator(m: Module, name: str, pairs, a_op: W.SlicedOperand,
                       x_op: W.SlicedOperand, terms: int, prod, shifts, clear, hold):
    """A lane accumulator of the ``fused`` form: adds ``prod << shift`` of the step's slice
    pair (``pairs[k] = (a slice, x slice, shift)``), restarting from 0 on ``clear``, and
    holds while ``hold`` (the pipeline stall). ``shifts``: ``(shift, condition)`` per
    distinct shift, the conditions shared by every lane and set only in a step that adds
    (:func:`_shift_conditions`): the term is an AND-OR of the shifted products, 0 when no
    condition is set. Its width holds every prefix sum of ``terms`` such sums
    (:func:`insitugen.widths.sum_abs_bound`)."""
    bound = W.sum_abs_bound([(W.product_range(a_op.ranges[ja], x_op.ranges[jx]), sh)
                             for ja, jx, sh in pairs] * terms)
    acc = Signal(signed(W.signed_bits(-bound, bound)), name=name)
    term = Signal.like(acc, name=f"{name}_term")
    value = Const(0, signed(1))
    for sh, cond in shifts:
        value = value | Mux(cond, prod.shift_left(sh), 0)
    m.d.comb += term.eq(value)
    with m.If(~hold):
        m.d.sync += acc.eq(Mux(clear, 0, acc) + term)
    return acc


def _separate_recombination(m: Module, name: str, a_op: W.SlicedOperand,
                            x_op: W.SlicedOperand, terms: int, out_bits: int, prod, pair_is,
                            enable, first):
    """The ``separate`` form: one partial accumulator per slice pair ``k`` (summing ``terms``
    products while ``enable & pair_is[k]``, restarting on ``first``), widths and shifts from
    :func:`insitugen.widths.recombination_widths`, recombined by the shift-add tree of the
    stand-alone unit into a signed ``out_bits`` value."""
    rw = W.recombination_widths(a_op, x_op, terms)
    parts = []
    for k, (rng, sh) in enumerate(zip(rw.partial_ranges, rw.shifts, strict=True)):
        part = Signal(signed(W.signed_bits(*rng)), name=f"{name}_p{k}")
        with m.If(enable & pair_is[k]):
            m.d.sync += part.eq(Mux(first, 0, part) + prod)
        parts.append((part, sh))
    value = Signal(signed(out_bits), name=name)
    m.d.comb += value.eq(shift_add_levels(sorted(parts, key=lambda t: t[1]))[-1][0])
    return value


class CodeLoader(wiring.Component):
    """Writes the code stream into the code memories (load order and word layout of the
    module docstring).

    Ports: ``codes`` (the generator's code stream; ``ready = ~busy``), ``busy``
    (``In(1)``: the generator is generating), ``fire`` (``Out(1)``: a code beat is
    taken this cycle), ``loaded`` (``Out(1)``: the last beat of a whole layer has been
    taken and no later beat since), and one write port per memory, ``write_B`` /
    ``write_U`` / ``write_V`` (``In(WritePort.Signature)``: the loader drives them, one
    enable per code field), for :func:`amaranth.lib.wiring.connect` to the memories.
    """

    def __init__(self, cfg: GeneratorConfig):
        self._cfg = cfg
        self._schedule = Schedule(cfg)
        code_bits = max(cfg.code_bits[name] for name in cfg.code_shapes)
        members = {"codes": In(stream.Signature(unsigned(code_bits))), "busy": In(1),
                   "fire": Out(1), "loaded": Out(1)}
        for name, (depth, width) in self._schedule.memory_shapes.items():
            members[f"write_{name}"] = In(WritePort.Signature(
                addr_width=W.bits_for_count(depth), shape=unsigned(width),
                granularity=cfg.code_bits[name]))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        code_fire = Signal()
        m.d.comb += [self.codes.ready.eq(~self.busy),
                     code_fire.eq(self.codes.valid & self.codes.ready), self.fire.eq(code_fire)]
        tensors = list(cfg.code_shapes)                       # B, [U], [V] in load order
        ld_t = Signal(counter_shape(len(tensors)))
        ld_final = Signal()                    # the beat holds the layer's last code
        fire = {name: code_fire & (ld_t == k) for k, name in enumerate(tensors)}
        # name -> "this code is the tensor's last"
        if cfg.level1:
            tensor_last = {"B": self._write_b_taps(m, fire["B"]), "U": self._write_u(m, fire["U"])}
        else:
            tensor_last = {"B": self._write_b_lanes(m, fire["B"])}
        if cfg.level2:
            tensor_last["V"] = self._write_v(m, fire["V"])

        with m.Switch(ld_t):
            for k, name in enumerate(tensors):
                with (m.Case(k) if k < len(tensors) - 1 else m.Default()):
                    m.d.comb += ld_final.eq(tensor_last[name] & (k == len(tensors) - 1))
                    with m.If(code_fire & tensor_last[name]):
                        m.d.sync += ld_t.eq(0 if k == len(tensors) - 1 else k + 1)
        with m.If(code_fire):
            m.d.sync += self.loaded.eq(ld_final)
        return m

    def _write_b_taps(self, m, fire):
        """Level 1 on: ``B[o, i, t]`` -> word ``o*Bi + i``, field ``t``. Returns 'the code is
        B's last'."""
        cfg, code = self._cfg, self.codes.payload
        Bo, Bi, K = cfg.Bo, cfg.Bi, cfg.K
        ba = Signal(counter_shape(Bo * Bi))
        bt = Signal(counter_shape(K))
        wp = self.write_B
        m.d.comb += [wp.addr.eq(ba), wp.data.eq(Cat([code[:cfg.qb]] * K)),
                     wp.en.eq(Mux(fire, Const(1, 1) << bt, 0))]
        with m.If(fire):
            with m.If(bt == K - 1):
                m.d.sync += [bt.eq(0), ba.eq(Mux(ba == Bo * Bi - 1, 0, ba + 1))]
            with m.Else():
                m.d.sync += bt.eq(bt + 1)
        return (ba == Bo * Bi - 1) & (bt == K - 1)

    def _write_u(self, m, fire):
        """``U[o, c, i]`` -> word ``(c//NB * Bo + o) * Bi + i``, field ``c % NB``. Returns
        'the code is U's last'."""
        cfg, sched, code = self._cfg, self._schedule, self.codes.payload
        Bo, Bi, q, NB = cfg.Bo, cfg.Bi, cfg.in_channels, sched.window_channels
        uo = Signal(counter_shape(Bo))
        uc = Signal(counter_shape(q))
        ucm = Signal(counter_shape(NB))
        ucr = Signal(counter_shape(sched.u_rows))
        ui = Signal(counter_shape(Bi))
        wp = self.write_U
        m.d.comb += [wp.addr.eq((ucr * Bo + uo) * Bi + ui),
                     wp.data.eq(Cat([code[:cfg.qu]] * NB)),
                     wp.en.eq(Mux(fire, Const(1, 1) << ucm, 0))]
        with m.If(fire):
            m.d.sync += ui.eq(Mux(ui == Bi - 1, 0, ui + 1))
            with m.If(ui == Bi - 1):
                with m.If(uc == q - 1):
                    m.d.sync += [uc.eq(0), ucm.eq(0), ucr.eq(0),
                                 uo.eq(Mux(uo == Bo - 1, 0, uo + 1))]
                with m.Else():
                    m.d.sync += uc.eq(uc + 1)
                    with m.If(ucm == NB - 1):
                        m.d.sync += [ucm.eq(0), ucr.eq(ucr + 1)]
                    with m.Else():
                        m.d.sync += ucm.eq(ucm + 1)
        return (uo == Bo - 1) & (uc == q - 1) & (ui == Bi - 1)

    def _write_b_lanes(self, m, fire):
        """Level 1 off: ``B[o, n]`` -> word ``(n // L) * Bo + o``, field ``n % L``. Returns
        'the code is B's last'."""
        cfg, code = self._cfg, self.codes.payload
        Bo, L, N = cfg.Bo, cfg.lanes, self._schedule.row_weights
        bo_ = Signal(counter_shape(Bo))
        bnm = Signal(counter_shape(L))
        bnd = Signal(counter_shape(self._schedule.rounds_per_row))
        wp = self.write_B
        m.d.comb += [wp.addr.eq(bnd * Bo + bo_), wp.data.eq(Cat([code[:cfg.qb]] * L)),
                     wp.en.eq(Mux(fire, Const(1, 1) << bnm, 0))]
        row_end = (bnd == (N - 1) // L) & (bnm == (N - 1) % L)
        with m.If(fire):
            with m.If(row_end):
                m.d.sync += [bnm.eq(0), bnd.eq(0), bo_.eq(Mux(bo_ == Bo - 1, 0, bo_ + 1))]
            with m.Elif(bnm == L - 1):
                m.d.sync += [bnm.eq(0), bnd.eq(bnd + 1)]
            with m.Else():
                m.d.sync += bnm.eq(bnm + 1)
        return (bo_ == Bo - 1) & row_end

    def _write_v(self, m, fire):
        """``V[j, o]`` -> word ``j*Bo + o``. Returns 'the code is V's last'."""
        cfg = self._cfg
        last = cfg.out_channels * cfg.Bo - 1
        va = Signal(counter_shape(last + 1))
        wp = self.write_V
        m.d.comb += [wp.addr.eq(va), wp.data.eq(self.codes.payload[:cfg.qv]), wp.en.eq(fire)]
        with m.If(fire):
            m.d.sync += va.eq(Mux(va == last, 0, va + 1))
        return va == last


class Requantizer(wiring.Component):
    """Drains each finished round of lane values through ``beat`` requantizers into the
    one-beat output register, ``beat`` weights per beat, while the next round runs.

    Generic over "a bank of lane values and a round-end strobe" (any lane datapath can
    use it): ``values`` (``In(ArrayLayout(signed(acc_bits), lanes))``: each lane's exact
    weight, final in the cycle after ``round_end`` and only then, since the lanes start
    the next round), ``round_end`` / ``last_round`` / ``last`` (``In(1)``: the accumulate
    stage's step ends a round / the round is a row's last / the pass's last),
    ``weights`` (the generator's output stream, :func:`weights_layout`), ``stall``
    (``Out(1)``: the finished round cannot move on; the pipeline must hold, which keeps
    ``values`` final) and ``holding`` (``Out(1)``: a round or a beat is in here).

    Two drains (``Schedule.drain``), the same beats in the same cycles:

    * ``skewed = True`` (``"skew"``): lane group ``g`` (lanes ``g*beat ..``) runs ``g``
      cycles behind group 0 (:class:`Generator` registers its operands and control ``g``
      times), so its values are final ``g`` cycles after group 0's: the round-end strobe
      is delayed once per group and group ``g`` goes through the requantizers in its own
      cycle, read straight from its accumulators. Needs rounds of at least ``D =
      lanes / beat`` steps (two rounds' groups never final at once).
    * ``skewed = False`` (``"bank"``, and ``beat = lanes``): in the cycle a round moves on,
      group 0 goes through the requantizers into the output register and groups ``1 ..
      D-1`` are captured in a bank of ``D - 1`` slots; every later cycle the output
      register is free, the oldest slot goes out and the bank shifts by one slot.

    A round flagged ``last_round`` holds ``tail`` weights and leaves in ``ceil(tail /
    beat)`` beats (the last with ``count = tail - (that - 1)*beat``, positions past it
    0); every other round in ``D`` beats of ``beat``.

    It stalls exactly when a group's beat is due (1) while the output register holds an
    untaken beat (back-pressure) or (2, bank only) when a round ends while beats of the
    round before are still in the bank (fewer steps per round than that round's beats:
    ``max(0, beats - S)`` cycles, :attr:`insitugen.schedule.Schedule.drain_stall_cycles`).
    With ``beat = lanes`` there is no bank: the one-beat-per-round form.
    :func:`hdl.arith.round_shift_saturate` with ``cfg.out_bits`` / ``cfg.shift`` /
    ``cfg.rounding``.
    """

    def __init__(self, cfg: GeneratorConfig, *, lanes: int | None = None,
                 beat: int | None = None, tail: int | None = None, skewed: bool = False):
        self._cfg = cfg
        self._schedule = sched = Schedule(cfg)
        self._skewed = skewed
        self._lanes = cfg.lanes if lanes is None else lanes
        self._beat = cfg.beat if beat is None else beat
        self._tail = sched.row_tail if tail is None else tail
        if self._lanes % self._beat or not 1 <= self._tail <= self._lanes:
            raise ValueError(f"Requantizer: beat {self._beat} must divide lanes "
                             f"{self._lanes} and tail {self._tail} be in [1, lanes]")
        super().__init__({
            "values": In(data.ArrayLayout(signed(cfg.acc_bits), self._lanes)),
            "round_end": In(1), "last_round": In(1), "last": In(1),
            "weights": Out(stream.Signature(weights_layout(cfg, self._beat))),
            "stall": Out(1), "holding": Out(1),
        })

    @property
    def beat(self) -> int:
        return self._beat

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        L, B, tail = self._lanes, self._beat, self._tail
        D = L // B
        tail_beats = _ceil_div(tail, B)
        tail_count = tail - (tail_beats - 1) * B
        stall, out = self.stall, self.weights
        e_valid, e_last_round, e_last = Signal(), Signal(), Signal()
        with m.If(~stall):
            m.d.sync += [e_valid.eq(self.round_end), e_last_round.eq(self.last_round),
                         e_last.eq(self.last)]
        out_free = Signal()
        m.d.comb += out_free.eq(~out.valid | out.ready)
        with m.If(out.valid & out.ready):
            m.d.sync += out.valid.eq(0)

        group = [[self.values[g * B + k] for k in range(B)] for g in range(D)]
        if self._skewed:
            take, drain, final, beat_last, source = self._skewed_drain(
                m, group, (e_valid, e_last_round, e_last), out_free, tail_beats)
        else:
            take, drain, final, beat_last, source = self._bank_drain(
                m, group, (e_valid, e_last_round, e_last), out_free, tail_beats)
        sched = self._schedule
        every_round_tail = sched.rounds_per_row == 1 and tail == sched.row_tail
        with m.If(take | drain):
            m.d.sync += [out.valid.eq(1), out.payload.last.eq(beat_last),
                         out.payload.count.eq(Mux(final, tail_count, B))]
            # round_shift_saturate reads the remainder from the value's own bits: give it at
            # least shift + 2 bits so a shift wider than the weight still sees the sign bits
            ext_bits = max(cfg.acc_bits, cfg.shift + 2)
            for k in range(B):
                ext = Signal(signed(ext_bits), name=f"wfull_{k}")
                m.d.comb += ext.eq(source[k])
                rq = round_shift_saturate(ext, ext_bits, cfg.out_bits, cfg.shift, cfg.rounding)
                if k >= tail_count and every_round_tail and tail_beats == 1:
                    val = Const(0, signed(cfg.weight_bits))   # never a weight (L > N)
                elif k >= tail_count:
                    val = Mux(final, 0, rq)
                else:
                    val = rq
                m.d.sync += out.payload.w[k].eq(val)
        return m

    def _bank_drain(self, m, group, flags, out_free, tail_beats):
        """Groups ``1..D-1`` of the round that moved on last wait in a bank, oldest first."""
        cfg, B = self._cfg, self._beat
        D = len(group)
        e_valid, e_last_round, e_last = flags
        stall = self.stall
        pending = Signal(range(D), name="drain_pending")   # its beats not yet sent out
        b_last_round, b_last = Signal(), Signal()
        bank = [[Signal(signed(cfg.acc_bits), name=f"drain_{g}_{k}") for k in range(B)]
                for g in range(D - 1)]
        busy_bank = pending != 0 if D > 1 else Const(0, 1)
        take, drain = Signal(), Signal()          # the round moves on / a slot goes out
        m.d.comb += [take.eq(e_valid & ~busy_bank & out_free),
                     drain.eq(busy_bank & out_free),
                     stall.eq(e_valid & ~take),
                     self.holding.eq(e_valid | self.weights.valid | busy_bank)]
        if D == 1:
            return take, drain, e_last_round, e_last, group[0]
        with m.If(take):
            m.d.sync += [pending.eq(Mux(e_last_round, tail_beats - 1, D - 1)),
                         b_last_round.eq(e_last_round), b_last.eq(e_last)]
            m.d.sync += [bank[g][k].eq(group[g + 1][k]) for g in range(D - 1)
                         for k in range(B)]
        with m.Elif(drain):
            m.d.sync += pending.eq(pending - 1)
            m.d.sync += [bank[g][k].eq(bank[g + 1][k]) for g in range(D - 2)
                         for k in range(B)]
        final = Mux(take, e_last_round & (tail_beats == 1), b_last_round & (pending == 1))
        beat_last = Mux(take, e_last & (tail_beats == 1), b_last & (pending == 1))
        return take, drain, final, beat_last, [Mux(take, group[0][k], bank[0][k])
                                               for k in range(B)]

    def _skewed_drain(self, m, group, flags, out_free, tail_beats):
        """Lane group ``g`` runs ``g`` cycles behind group 0: its weights are final ``g``
        cycles after group 0's, so the round-end strobe is delayed once per group and each
        group goes out in its own cycle, read straight from its accumulators (no bank; the
        rounds must be at least ``D`` steps apart)."""
        D = len(group)
        stall = self.stall
        chain = [flags]
        for g in range(1, D):
            regs = tuple(Signal(name=f"drain_{name}_{g}") for name in ("ev", "lr", "last"))
            with m.If(~stall):
                m.d.sync += [r.eq(f) for r, f in zip(regs, chain[-1], strict=True)]
            chain.append(regs)
        emits = [ev if g < tail_beats else ev & ~lr for g, (ev, lr, _) in enumerate(chain)]
        emit = Signal(name="drain_emit")
        m.d.comb += [emit.eq(Cat(*emits).any()), stall.eq(emit & ~out_free),
                     self.holding.eq(Cat(*[ev for ev, _, _ in chain]).any()
                                     | self.weights.valid)]
        ev_t, lr_t, last_t = chain[tail_beats - 1]
        source = group[0]
        for g in range(1, D):
            source = [Mux(chain[g][0], group[g][k], source[k]) for k in range(self._beat)]
        return emit & out_free, Const(0, 1), ev_t & lr_t, ev_t & last_t, source


class StepCounters(wiring.Component):
    """The step counters of a pass (module docstring, Schedule): row ``j``, round ``r``,
    basis row ``o``, level-1 term ``i``, slice pair ``kp`` and, in the w1 order, ``phase2``
    (1 = a V x W1 step). ``begin`` restarts them at the pass's first step; ``advance`` (not
    with ``begin``) moves them one step on. ``end_round`` / ``end_pass``: the step is the
    last of its round / of the pass; ``first``: the step restarts its accumulator (fused) or
    its slice pair's partial (separate)."""

    def __init__(self, cfg: GeneratorConfig):
        self._cfg = cfg
        self._schedule = sched = Schedule(cfg)
        npairs = max(1, len(sched.pairs_level1), len(sched.pairs_level2))
        super().__init__({
            "begin": In(1), "advance": In(1), "kp": Out(counter_shape(npairs)),
            "i": Out(counter_shape(max(1, cfg.Bi))), "o": Out(counter_shape(sched.o_loop)),
            "r": Out(counter_shape(sched.rounds_per_row)),
            "j": Out(counter_shape(cfg.out_channels)), "phase2": Out(1),
            "end_round": Out(1), "end_pass": Out(1), "first": Out(1)})

    def elaborate(self, platform):
        m = Module()
        cfg, sched = self._cfg, self._schedule
        p, R, obl, Bi = cfg.out_channels, sched.rounds_per_row, sched.o_loop, cfg.Bi
        NP1, NP2 = len(sched.pairs_level1), len(sched.pairs_level2)
        has1, has2 = NP1 > 0, NP2 > 0
        two_phase = has1 and has2                 # the w1 order: level 1, then level 2, per o
        j, r, o, i, kp = self.j, self.r, self.o, self.i, self.kp
        phase2 = self.phase2 if two_phase else Const(int(has2), 1)
        if not two_phase:
            m.d.comb += self.phase2.eq(phase2)
        last_kp1 = kp == NP1 - 1 if NP1 else Const(1)
        last_kp2 = kp == NP2 - 1 if NP2 else Const(1)
        last_i = i == Bi - 1 if cfg.level1 else Const(1)
        if two_phase:
            end_oblock = phase2 & last_kp2
        elif has1:
            end_oblock = last_kp1 & last_i
        else:
            end_oblock = last_kp2 if has2 else Const(1)
        end_round = end_oblock & (o == obl - 1)
        m.d.comb += [self.end_round.eq(end_round),
                     self.end_pass.eq(end_round & (r == R - 1) & (j == p - 1))]

        with m.If(self.begin):
            m.d.sync += [j.eq(0), r.eq(0), o.eq(0), i.eq(0), kp.eq(0)]
            if two_phase:
                m.d.sync += phase2.eq(0)
        with m.Elif(self.advance):
            # step within the o-block: the slice pairs of a term, the terms, [the phases]
            if two_phase:
                with m.If(phase2):
                    with m.If(last_kp2):
                        m.d.sync += [kp.eq(0), phase2.eq(0)]
                    with m.Else():
                        m.d.sync += kp.eq(kp + 1)
                with m.Else():
                    self._level1_step(m, last_kp1, last_i)
            elif has1:
                self._level1_step(m, last_kp1, last_i)
            elif has2:
                m.d.sync += kp.eq(Mux(last_kp2, 0, kp + 1))
            with m.If(end_oblock):
                m.d.sync += o.eq(Mux(o == obl - 1, 0, o + 1))
            with m.If(end_round):
                m.d.sync += r.eq(Mux(r == R - 1, 0, r + 1))
                with m.If(r == R - 1):
                    m.d.sync += j.eq(Mux(j == p - 1, 0, j + 1))

        # first-term flags: a fused accumulator restarts at the first step of its sum, a
        # separate partial at the first step of its slice pair (kp == k)
        kp0 = (kp == 0) if cfg.recombination == "fused" else Const(1)
        if two_phase:
            m.d.comb += self.first.eq(Mux(phase2, (o == 0) & kp0, (i == 0) & kp0))
        else:
            m.d.comb += self.first.eq(((o == 0) if cfg.level2 else Const(1))
                                      & ((i == 0) if has1 else Const(1)) & kp0)
        return m


    def _level1_step(self, m, last_kp1, last_i):
        """A level-1 step: the next slice pair, after the last one the next term ``i``, after
        the last term (w1 order) the level-2 phase."""
        kp, i = self.kp, self.i
        with m.If(last_kp1):
            m.d.sync += [kp.eq(0), i.eq(Mux(last_i, 0, i + 1))]
            if self._schedule.pairs_level2:
                with m.If(last_i):
                    m.d.sync += self.phase2.eq(1)
        with m.Else():
            m.d.sync += kp.eq(kp + 1)


class W1OnceCounters(wiring.Component):
    """The step counters of a w1once pass (module docstring, :class:`Schedule`): column
    tile ``r``; phase 1 (``phase2 = 0``): basis row ``o``, level-1 term ``i``, slice pair
    ``kp``; ``Schedule.w1_bubbles`` idle steps (``bubble``); phase 2: row ``j``, ``o``,
    ``kp``. The ports of :class:`StepCounters` plus ``store`` (the step is the last of its
    ``o`` in phase 1: its ``W1`` is complete), ``bubble`` and ``end_tile``."""

    def __init__(self, cfg: GeneratorConfig):
        self._cfg = cfg
        self._schedule = sched = Schedule(cfg)
        npairs = max(len(sched.pairs_level1), len(sched.pairs_level2))
        super().__init__({
            "begin": In(1), "advance": In(1), "kp": Out(counter_shape(npairs)),
            "i": Out(counter_shape(cfg.Bi)), "o": Out(counter_shape(cfg.Bo)),
            "r": Out(counter_shape(sched.rounds_per_row)),
            "j": Out(counter_shape(cfg.out_channels)), "phase2": Out(1),
            "end_round": Out(1), "end_pass": Out(1), "first": Out(1), "store": Out(1),
            "bubble": Out(1), "end_tile": Out(1)})

    def elaborate(self, platform):
        m = Module()
        cfg, sched = self._cfg, self._schedule
        p, R, Bo, Bi = cfg.out_channels, sched.rounds_per_row, cfg.Bo, cfg.Bi
        NP1, NP2, nbub = len(sched.pairs_level1), len(sched.pairs_level2), sched.w1_bubbles
        j, r, o, i, kp, phase2 = self.j, self.r, self.o, self.i, self.kp, self.phase2
        wait = Signal(counter_shape(max(1, nbub)))
        waiting = Signal() if nbub else Const(0, 1)
        last_kp1, last_kp2 = kp == NP1 - 1, kp == NP2 - 1
        last_i, last_o = i == Bi - 1, o == Bo - 1
        end_phase1 = ~phase2 & ~waiting & last_kp1 & last_i & last_o
        end_round = phase2 & last_kp2 & last_o
        end_tile = end_round & (j == p - 1)
        m.d.comb += [self.end_round.eq(end_round), self.end_tile.eq(end_tile),
                     self.end_pass.eq(end_tile & (r == R - 1)),
                     self.store.eq(~phase2 & ~waiting & last_kp1 & last_i),
                     self.bubble.eq(waiting)]
        kp0 = (kp == 0) if cfg.recombination == "fused" else Const(1)
        m.d.comb += self.first.eq(Mux(phase2, o == 0, i == 0) & kp0)
        with m.If(self.begin):
            m.d.sync += [j.eq(0), r.eq(0), o.eq(0), i.eq(0), kp.eq(0), phase2.eq(0)]
            if nbub:
                m.d.sync += [waiting.eq(0), wait.eq(0)]
        with m.Elif(self.advance):
            if nbub:
                with m.If(waiting):
                    m.d.sync += wait.eq(wait + 1)
                    with m.If(wait == nbub - 1):
                        m.d.sync += [waiting.eq(0), wait.eq(0), phase2.eq(1)]
            with m.If(phase2):
                m.d.sync += kp.eq(Mux(last_kp2, 0, kp + 1))
                with m.If(last_kp2):
                    m.d.sync += o.eq(Mux(last_o, 0, o + 1))
                with m.If(end_round):
                    m.d.sync += j.eq(Mux(j == p - 1, 0, j + 1))
                with m.If(end_tile):
                    m.d.sync += [phase2.eq(0), r.eq(Mux(r == R - 1, 0, r + 1))]
            with m.Elif(~waiting):
                m.d.sync += kp.eq(Mux(last_kp1, 0, kp + 1))
                with m.If(last_kp1):
                    m.d.sync += i.eq(Mux(last_i, 0, i + 1))
                    with m.If(last_i):
                        m.d.sync += o.eq(Mux(last_o, 0, o + 1))
                with m.If(end_phase1):
                    m.d.sync += (waiting.eq(1) if nbub else phase2.eq(1))
        return m


class WindowTracker(wiring.Component):
    """Level 1's window of the current round: ``n0 = r*L``, ``rt = n0 % K``, ``c_lo = n0 //
    K = crow*NB + cmod``. ``begin`` restarts it; ``next_round`` moves it on by ``L``
    columns, or back to the row's start where ``row_end``. Where ``rt`` or ``cmod`` cannot
    change (``L % K == 0``, ``NB == 1``) the port is never driven and reads 0."""

    def __init__(self, cfg: GeneratorConfig):
        self._cfg = cfg
        self._schedule = sched = Schedule(cfg)
        super().__init__({"begin": In(1), "next_round": In(1), "row_end": In(1),
                          "rt": Out(counter_shape(cfg.K)),
                          "cmod": Out(counter_shape(sched.window_channels)),
                          "crow": Out(counter_shape(sched.u_rows))})

    def elaborate(self, platform):
        m = Module()
        K, L = self._cfg.K, self._cfg.lanes
        NB = self._schedule.window_channels
        rt_const = _rt_const(self._cfg)
        rt = Const(0, counter_shape(K)) if rt_const else self.rt
        cmod = self.cmod if NB > 1 else Const(0, 1)
        crow = self.crow
        restart = [crow.eq(0)] + ([] if rt_const else [rt.eq(0)]) \
            + ([cmod.eq(0)] if NB > 1 else [])
        with m.If(self.begin | (self.next_round & self.row_end)):
            m.d.sync += restart
        with m.Elif(self.next_round):
            inc_c, inc_t = divmod(L, K)
            carry = Const(0, 1)
            if not rt_const:
                rt_n = rt + inc_t
                carry = rt_n >= K
                m.d.sync += rt.eq(Mux(carry, rt_n - K, rt_n))
            cm_n = cmod + inc_c + carry
            wrap = cm_n >= NB
            if NB > 1:
                m.d.sync += cmod.eq(Mux(wrap, cm_n - NB, cm_n))
            m.d.sync += crow.eq(crow + (wrap if NB > 1 else cm_n))
        return m


class CodeReads(wiring.Component):
    """The gated reads of the code memories: each word read once, at the first step that
    needs it (``Schedule.reads_per_pass``), from the step issued this cycle (``step``, with
    its level-1 term ``i``, row ``j`` and U row ``crow``). Level 1 off reads the per-lane B
    word one stage late, where the lane multiply meets it. Read ports: those of
    :class:`Sequencer`."""

    def __init__(self, cfg: GeneratorConfig):
        self._cfg = cfg
        self._schedule = sched = Schedule(cfg)
        members = {"step": In(step_layout(cfg)), "stall": In(1),
                   "i": In(counter_shape(max(1, cfg.Bi))),
                   "j": In(counter_shape(cfg.out_channels)),
                   "crow": In(counter_shape(sched.u_rows))}
        members.update(_read_port_members(cfg))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg, sched, step = self._cfg, self._schedule, self.step
        Bo, Bi, u_rows, stall, i = cfg.Bo, cfg.Bi, sched.u_rows, self.stall, self.i
        has1 = bool(sched.pairs_level1)
        not_p2 = ~step.phase2 if has1 and sched.pairs_level2 else Const(1)
        if cfg.level1:
            rb, ua, ub = self.read_B, self.read_U, self.read_U1
            crow = self.crow
            crow_b = Mux(crow + 1 < u_rows, crow + 1, 0) if u_rows > 1 else Const(0, 1)
            m.d.comb += [rb.addr.eq(step.o * Bi + i), ua.addr.eq((crow * Bo + step.o) * Bi + i),
                         ub.addr.eq((crow_b * Bo + step.o) * Bi + i)]
            new_bu = Signal()
            m.d.comb += new_bu.eq(~stall & step.valid & step.kp0 & not_p2)
            m.d.comb += [port.en.eq(new_bu) for port in (rb, ua, ub)]
        else:
            # B is per-lane data: read it in the stage before the lane multiply (the
            # registers below repeat those of the datapath's stage 1; synthesis merges them)
            late = {"r": step.r, "o": step.o, "valid": step.valid, "kp0": step.kp0}
            if sched.register_stages[0]:
                for key, sig in list(late.items()):
                    reg = Signal.like(sig, name=f"late_{key}")
                    m.d.sync += reg.eq(Mux(stall, reg, sig))
                    late[key] = reg
            m.d.comb += [self.read_B.addr.eq(late["r"] * Bo + late["o"]),
                         self.read_B.en.eq(~stall & late["valid"] & late["kp0"])]
        if sched.order == "w1once":       # V[j, o] once per (row, o) of phase 2
            m.d.comb += [self.read_V.addr.eq(self.j * Bo + step.o),
                         self.read_V.en.eq(~stall & step.valid & step.phase2 & step.kp0)]
        elif cfg.level2:
            new_v = step.kp0 & not_p2 & ((i == 0) if has1 else Const(1))
            m.d.comb += [self.read_V.addr.eq(self.j * Bo + step.o),
                         self.read_V.en.eq(~stall & step.valid & new_v)]
        return m


def _read_port_members(cfg: GeneratorConfig) -> dict:
    """One ``In(ReadPort.Signature)`` per memory read port: ``read_B``, ``read_U`` and
    ``read_U1`` (level 1 on), ``read_V`` (level 2 on)."""
    sched = Schedule(cfg)
    ports = list(sched.memory_shapes.items())
    if cfg.level1:
        ports.append(("U1", sched.memory_shapes["U"]))
    return {f"read_{name}": In(ReadPort.Signature(addr_width=W.bits_for_count(depth),
                                                  shape=unsigned(width)))
            for name, (depth, width) in ports}


class Sequencer(wiring.Component):
    """The step controller: pass requests, the step counters of the schedule, and the
    gated reads of the code memories (each word read once, at the first step that
    needs it).

    Ports: ``start`` / ``loaded`` / ``code_fire`` / ``stall`` (``In(1)``: a pass is
    requested / a layer is loaded / a code beat is taken this cycle / the pipeline
    holds), ``running`` (``Out(1)``: a pass is requested or its steps run), ``step``
    (``Out``: the control of the step issued this cycle, :func:`step_layout`) and one
    read port per memory port, ``read_B``, ``read_U`` and ``read_U1`` (level 1 on),
    ``read_V`` (level 2 on) (``In(ReadPort.Signature)``: the sequencer drives address
    and enable; the data goes to the datapath).
    """

    def __init__(self, cfg: GeneratorConfig):
        self._cfg = cfg
        self._schedule = Schedule(cfg)
        members = {"start": In(1), "loaded": In(1), "code_fire": In(1), "stall": In(1),
                   "running": Out(1), "step": Out(step_layout(cfg))}
        members.update(_read_port_members(cfg))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg, stall = self._cfg, self.stall
        last_r = self._schedule.rounds_per_row - 1
        active, pending = Signal(), Signal()
        once = self._schedule.order == "w1once"
        cnt = m.submodules.counters = (W1OnceCounters if once else StepCounters)(cfg)
        start_req = self.start & self.loaded & ~self.code_fire
        begin = (start_req | pending) & (~active | cnt.end_pass) & ~stall
        with m.If(begin):
            m.d.sync += [pending.eq(pending & start_req), active.eq(1)]
        with m.Else():
            m.d.sync += pending.eq(pending | start_req)
            with m.If(active & ~stall & cnt.end_pass):
                m.d.sync += active.eq(0)
        m.d.comb += [cnt.begin.eq(begin), cnt.advance.eq(active & ~stall)]

        rt, cmod, crow = Const(0, counter_shape(cfg.K)), Const(0, 1), Const(0, 1)
        if cfg.level1:
            win = m.submodules.window = WindowTracker(cfg)
            # the window moves per round; in the w1once order per column tile
            moved = cnt.end_tile if once else cnt.end_round
            m.d.comb += [win.begin.eq(begin), win.next_round.eq(active & ~stall & moved),
                         win.row_end.eq(cnt.r == last_r)]
            rt, cmod, crow = win.rt, win.cmod, win.crow

        reads = m.submodules.reads = CodeReads(cfg)
        for name in _read_port_members(cfg):
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(reads, name))
        m.d.comb += [reads.step.eq(self.step), reads.stall.eq(stall), reads.i.eq(cnt.i),
                     reads.j.eq(cnt.j), reads.crow.eq(crow)]

        step = self.step
        if once:        # idle steps between a tile's phases issue nothing
            m.d.comb += [step.valid.eq(active & ~cnt.bubble), step.store.eq(cnt.store)]
        else:
            m.d.comb += step.valid.eq(active)
        m.d.comb += [step.phase2.eq(cnt.phase2), step.kp.eq(cnt.kp),
                     step.first.eq(cnt.first), step.end_round.eq(active & cnt.end_round),
                     step.last_round.eq(cnt.r == last_r), step.last.eq(cnt.end_pass),
                     step.kp0.eq(cnt.kp == 0), step.rt.eq(rt), step.cmod.eq(cmod),
                     step.r.eq(cnt.r), step.o.eq(cnt.o if cfg.level2 else cnt.j),
                     self.running.eq(active | pending)]
        return m


def step_layout(cfg: GeneratorConfig) -> data.StructLayout:
    """The control of one step as the :class:`Sequencer` issues it: ``valid``, ``phase2``
    (a V x W1 step of the w1 order), ``kp`` (slice pair), ``first`` (the step restarts its
    accumulator or partial), ``end_round``, ``last_round`` (of a row), ``last`` (of the
    pass), ``kp0``, ``rt`` / ``cmod`` (level-1 window: ``n0 % K``, channel offset in the U
    row), ``r`` (round), ``o`` (basis row); in the w1once order also ``store`` (the step is
    the last level-1 step of its ``o``: its ``W1`` goes to the W1 buffer), where ``r`` is
    the column tile, ``phase2`` a level-2 step and ``last_round`` the pass's last tile."""
    sched = Schedule(cfg)
    npairs = max(1, len(sched.pairs_level1), len(sched.pairs_level2))
    fields = {
        "valid": 1, "phase2": 1, "kp": counter_shape(npairs), "first": 1, "end_round": 1,
        "last_round": 1, "last": 1, "kp0": 1, "rt": counter_shape(cfg.K),
        "cmod": counter_shape(sched.window_channels), "r": counter_shape(sched.rounds_per_row),
        "o": counter_shape(sched.o_loop if cfg.level2 else cfg.out_channels)}
    if sched.order == "w1once":
        fields["store"] = 1
    return data.StructLayout(fields)


#: Figures of the generator read from its :class:`~insitugen.schedule.Schedule`.
_SCHEDULE_FIGURES = ("lanes", "beat", "rounds_per_row", "n_rounds", "n_beats",
                     "steps_per_round", "latency", "pass_cycles", "pass_period",
                     "cycles_per_pass", "drain_stall_cycles", "drain", "beats_per_round",
                     "row_beats", "cycles_lower_bound", "algorithmic_minimum",
                     "window_channels", "memory_shapes", "memory_bits", "reads_per_pass",
                     "w1_buffer_shape", "w1_buffer_bits")


def generator_signature(cfg: GeneratorConfig) -> wiring.Signature:
    """The generator's ports (see the module docstring), without building the component."""
    code_bits = max(cfg.code_bits[name] for name in cfg.code_shapes)
    return wiring.Signature({
        "codes": In(stream.Signature(unsigned(code_bits))),
        "start": In(1),
        "weights": Out(stream.Signature(weights_layout(cfg))),
        "busy": Out(1),
        "loaded": Out(1),
    })


def _datapath_form(sched: Schedule) -> str:
    """Which lane datapath the config needs: ``"ux"`` (one U x X sum per lane: the vb order,
    or level 2 off), ``"vb_off1"`` (level 1 off: one V x B sum), ``"w1"`` (the W1-recompute
    order: two sums), ``"w1once"`` (two phases in one sum, W1 from the W1 buffer) or
    ``"codes"`` (both levels off: no multiply)."""
    if sched.order == "w1once":
        return "w1once"
    has1, has2 = bool(sched.pairs_level1), bool(sched.pairs_level2)
    return {(True, False): "ux", (False, True): "vb_off1", (True, True): "w1",
            (False, False): "codes"}[has1, has2]


def operand_signature(cfg: GeneratorConfig) -> wiring.Signature:
    """What :class:`SharedOperands` hands the lanes (its direction), per datapath form. Odd
    operands travel without their constant LSB (``odd_*``: the bits above it), so each lane
    puts the constant back where its multiplier sees it; those of the ``ux`` form travel in
    sign-magnitude (``sm_*``, :func:`_sm_from_odd`), so a lane multiplies two small
    magnitudes and applies the sign (:func:`_sm_product`)."""
    sched = Schedule(cfg)
    form = _datapath_form(sched)
    s, K, NB = cfg.engine_bits, cfg.K, sched.window_channels
    if form == "ux":
        return wiring.Signature({"sm_x": Out(data.ArrayLayout(unsigned(s), K)),
                                 "sm_u": Out(data.ArrayLayout(unsigned(s), NB)),
                                 "carry": Out(K)})
    if form == "w1once":
        return wiring.Signature({"odd_x": Out(data.ArrayLayout(unsigned(s), K)),
                                 "odd_u": Out(data.ArrayLayout(unsigned(s), NB)),
                                 "carry": Out(K)})
    if form == "w1":
        return wiring.Signature({"bcode": Out(data.ArrayLayout(unsigned(cfg.qb), K)),
                                 "window": Out(NB * cfg.qu), "vcode": Out(cfg.qv),
                                 "carry": Out(K)})
    members = {"b_word": Out(cfg.lanes * cfg.qb)}
    if form == "vb_off1":
        members["odd_v"] = Out(s)
    return wiring.Signature(members)


def _rt_one_hot(cfg: GeneratorConfig) -> bool:
    """The memory data stage takes the round's tap offset ``rt`` one-hot
    (:class:`ControlPipeline` ``mem_rt_is``): level 1 on and ``rt`` not constant."""
    return cfg.level1 and not _rt_const(cfg)


def _rt_const(cfg: GeneratorConfig) -> bool:
    """Every round's window starts at tap 0 (``K == 1`` or ``K`` divides ``L``): the tap
    offset ``rt`` is the constant 0 and no lane needs a window carry."""
    return cfg.K == 1 or cfg.lanes % cfg.K == 0


def _word_bits(cfg: GeneratorConfig, name: str) -> int:
    """Width of one word of memory ``name``."""
    return Schedule(cfg).memory_shapes[name][1]


def _held_register(m: Module, value, stall, name: str):
    """``value`` one cycle late, held while ``stall`` (a view stays a view)."""
    shape = value.shape() if hasattr(value, "shape") and callable(value.shape) else None
    reg = Signal(shape if shape is not None else value.shape, name=name)
    with m.If(~stall):
        m.d.sync += reg.eq(value)
    return reg


def _select(m: Module, sel, options, shape, name: str):
    """``options[sel]`` as a named signal (the last option is the default)."""
    sig = Signal(shape, name=name)
    with m.Switch(sel):
        for k, opt in enumerate(options):
            with (m.Case(k) if k < len(options) - 1 else m.Default()):
                m.d.comb += sig.eq(opt)
    return sig


def _odd(bits):
    """The odd signed value whose bits above the constant LSB are ``bits``."""
    return Cat(Const(1, 1), bits).as_signed()


def _lane_window(lane: int, values, carry, K: int, NB: int, rt_const: bool):
    """Lane ``lane``'s window channel among ``values`` (one per window channel): a 2:1
    choice on its residue's carry where the round's window can start mid-channel."""
    a, d0 = lane % K, min(lane // K, NB - 1)
    d1 = min(lane // K + 1, NB - 1)
    if d0 == d1 or rt_const:
        return values[d0]
    return Mux(carry[a], values[d1], values[d0])


def _pair_conditions(m: Module, kp, npairs: int):
    """One shared 'the step's slice pair is k' signal per pair."""
    kp_is = [Signal(name=f"kp_is_{k}") for k in range(npairs)]
    m.d.comb += [sig.eq(kp == k) for k, sig in enumerate(kp_is)]
    return kp_is


def _one_sum(cfg: GeneratorConfig, sched: Schedule):
    """The sum of each lane of :class:`OneSumLanes`: ``(slice pairs, a operand, x operand,
    terms)`` (``U x VB`` or ``U x B`` with level 1 on, else ``V x B``)."""
    if cfg.level1:
        x_op = cfg.vb_operand if sched.order == "vb" else cfg.b_operand
        return sched.pairs_level1, cfg.u_operand, x_op, sched.o_loop * cfg.Bi
    return sched.pairs_level2, cfg.v_operand, cfg.b_operand, cfg.Bo


def _shift_classes(pairs) -> list[tuple[int, list[int]]]:
    """``(shift, the slice pairs k of that shift)`` per distinct shift of ``pairs``, in
    shift order."""
    by_shift: dict[int, list[int]] = {}
    for k, (_, _, sh) in enumerate(pairs):
        by_shift.setdefault(sh, []).append(k)
    return sorted(by_shift.items())


def _registered_adds(cfg: GeneratorConfig) -> bool:
    """The lanes' fused accumulators take their add control registered
    (:func:`acc_add_layout`): the one-sum forms with ``fused`` recombination."""
    return (_datapath_form(Schedule(cfg)) in ("ux", "vb_off1")
            and cfg.recombination == "fused")


def acc_add_layout(cfg: GeneratorConfig) -> data.StructLayout:
    """The add control of the accumulate stage, decoded from its step and registered with
    it (:class:`ControlPipeline`), so a lane's adder sees flops, not decoders: ``shift_is``
    (one bit per distinct shift of the lane sum, :func:`_shift_classes`: the step is valid
    and its slice pair has that shift) and ``clear`` (the step is valid and restarts the
    sum)."""
    pairs = _one_sum(cfg, Schedule(cfg))[0]
    return data.StructLayout({"shift_is": max(1, len(_shift_classes(pairs))), "clear": 1})


def _shift_conditions(m: Module, pairs, kp_is, name: str, active):
    """Per distinct shift of ``pairs``, a shared 'the step's shift is this and the step is
    one of the sum's (``active``)' signal: none is set in a step that must not add."""
    out = []
    for sh, ks in _shift_classes(pairs):
        cond = Signal(name=f"{name}_sh{sh}")
        m.d.comb += cond.eq(Cat(*[kp_is[k] for k in ks]).any() & active)
        out.append((sh, cond))
    return out


def _lane_product(m: Module, lane: int, a, x, s: int, product_stage: bool, stall):
    """The lane's engine product ``a * x``, registered when the product stage is present."""
    prod = Signal(signed(2 * s + 2), name=f"prod_{lane}")
    m.d.comb += prod.eq(a * x)
    if not product_stage:
        return prod
    # every form with a product stage multiplies two odd values: the product is odd, its
    # LSB a constant 1 that is not registered
    reg = Signal(2 * s + 1, name=f"prod_r_{lane}")
    m.d.sync += reg.eq(Mux(stall, reg, prod[1:]))
    return _odd(reg)


def _sm_from_odd(bits):
    """The sign-magnitude form of the odd value ``v = _odd(bits)`` (``s = len(bits)``, ``v``
    in ``[-(2^s - 1), 2^s - 1]``): ``Cat(mu, sign)`` with ``|v| = 2*mu + 1`` (``mu``:
    ``s - 1`` bits). Since ``-v = ~(v - 1)`` for odd ``v``, ``mu`` is the bits below the
    sign, each XOR the sign: one XOR per bit, done before the operand register."""
    sign = bits[-1]
    if len(bits) == 1:                  # a 1-bit slice is +-1: no magnitude bits at all
        return Cat(sign)
    return Cat(bits[:-1] ^ sign.replicate(len(bits) - 1), sign)


def _sm_odd_product(m: Module, name: str, a, x):
    """The product of two sign-magnitude odd values (:func:`_sm_from_odd`; ``a``: ``sa``
    bits, ``x``: ``sx`` bits), as the bits above its constant LSB (``_odd`` of the result
    is the signed product, ``sa + sx + 1`` bits). With ``|a| = 2*mu_a + 1``, ``|x| =
    2*mu_x + 1``: ``|a*x| = 2*F + 1``, ``F = 2*mu_a*mu_x + mu_a + mu_x`` (a product of the
    two magnitudes, ``sa + sx - 1`` bits), and ``-(2F + 1) = ~(2F)``, so the product is
    ``Cat(1, F ^ sign, sign)``: no Booth recoding and no negation carry."""
    sa, sx = len(a), len(x)
    mu_a, mu_x = a[:sa - 1], x[:sx - 1]
    sign = Signal(name=f"{name}_sign")
    mag = Signal(sa + sx - 1, name=f"{name}_mag")
    # the terms of F whose magnitudes have bits (a 1-bit engine's slices have none; no
    # zero-width signals reach the Verilog)
    terms = ([(mu_a * mu_x) << 1] if sa > 1 and sx > 1 else []) + \
        [mu for mu, n in ((mu_a, sa), (mu_x, sx)) if n > 1]
    f = terms[0] if terms else Const(0, 1)
    for t in terms[1:]:
        f = f + t
    m.d.comb += [sign.eq(a[sa - 1] ^ x[sx - 1]), mag.eq(f)]
    return Cat(mag ^ sign.replicate(len(mag)), sign)


def _sm_product(m: Module, lane: int, a, x, s: int, product_stage: bool, stall):
    """The lane's product of two sign-magnitude odd operands (``s`` bits each,
    :func:`_sm_odd_product`), registered when the product stage is present (its register
    holds the ``2s`` bits above the constant LSB)."""
    upper = _sm_odd_product(m, f"p{lane}", a, x)
    if product_stage:
        reg = Signal(2 * s, name=f"prod_r_{lane}")
        m.d.sync += reg.eq(Mux(stall, reg, upper))
        upper = reg
    prod = Signal(signed(2 * s + 1), name=f"prod_{lane}")
    m.d.comb += prod.eq(_odd(upper))
    return prod


def _lane_sum(m: Module, fused: bool, name: str, pairs, a_op, x_op, terms: int, out_bits: int,
              prod, shifts, kp_is, active, stall, first, clear=None):
    """The lane's exact sum of ``terms`` sliced products, as a signed ``out_bits`` value: a
    fused accumulator or separate partials with their shift-add tree. It adds in steps
    that are ``active`` (valid, of this sum) and not stalled; ``clear`` (fused: ``first &
    active`` unless given) restarts it."""
    if fused:
        acc = _fused_accumulator(m, f"{name}_acc", pairs, a_op, x_op, terms, prod, shifts,
                                 clear=first & active if clear is None else clear, hold=stall)
        return acc[:out_bits].as_signed()
    return _separate_recombination(m, name, a_op, x_op, terms, out_bits, prod, kp_is,
                                   active & ~stall, first)


class ControlPipeline(wiring.Component):
    """The step control of every pipeline stage: the :class:`Sequencer`'s ``step`` (stage 0),
    registered once per stage (memory data, [operands], [product]) and held on ``stall``.
    Fields that are constant in the config's form stay constants (no register).

    ``mem``, ``mul``, ``acc``: the control of the memory data, lane multiply and accumulate
    stages; ``in_flight``: a step is in a stage after stage 0; ``acc_add`` (where
    :func:`_registered_adds`): the accumulate stage's add control (:func:`acc_add_layout`),
    decoded from the stage before it and registered alongside it."""

    def __init__(self, cfg: GeneratorConfig):
        self._cfg = cfg
        self._schedule = Schedule(cfg)
        layout = step_layout(cfg)
        members = {"step": In(layout), "stall": In(1), "mem": Out(layout),
                   "mul": Out(layout), "acc": Out(layout), "in_flight": Out(1)}
        if _registered_adds(cfg):
            members["acc_add"] = Out(acc_add_layout(cfg))
        if _rt_one_hot(cfg):
            members["mem_rt_is"] = Out(cfg.K)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg, step = self._cfg, self.step
        sched = self._schedule
        p1, p2 = sched.register_stages
        form = _datapath_form(sched)
        rt_const = _rt_const(cfg)
        stage0 = {"valid": step.valid, "kp": step.kp, "first": step.first,
                  "end_round": step.end_round, "last_round": step.last_round,
                  "last": step.last, "kp0": step.kp0, "r": step.r, "o": step.o,
                  "phase2": step.phase2 if form in ("w1", "w1once")
                  else Const(int(form == "vb_off1"), 1),
                  "rt": Const(0, counter_shape(cfg.K)) if rt_const else step.rt,
                  "cmod": step.cmod if cfg.level1 and sched.window_channels > 1
                  else Const(0, 1)}
        if form == "w1once":
            stage0["store"] = step.store
        stages = [stage0]
        for st in range(1, 2 + int(p1) + int(p2)):
            cur = {}
            for key, sig in stages[-1].items():
                if isinstance(sig, Const):
                    cur[key] = sig
                    continue
                reg = Signal.like(sig, name=f"s{st}_{key}")
                m.d.sync += reg.eq(Mux(self.stall, reg, sig))
                cur[key] = reg
            stages.append(cur)
        for port, ctl in ((self.mem, stages[1]), (self.mul, stages[1 + int(p1)]),
                          (self.acc, stages[-1])):
            m.d.comb += [getattr(port, key).eq(sig) for key, sig in ctl.items()]
        m.d.comb += self.in_flight.eq(Cat(*[c["valid"] for c in stages[1:]]).any())
        if _rt_one_hot(cfg):
            rt_is = Signal(cfg.K, name="s1_rt_is")
            m.d.sync += rt_is.eq(Mux(self.stall, rt_is,
                                     Cat(*[step.rt == r for r in range(cfg.K)])))
            m.d.comb += self.mem_rt_is.eq(rt_is)
        if _registered_adds(cfg):
            pre = stages[-2]
            pairs = _one_sum(cfg, sched)[0]
            decoded = [pre["valid"] & Cat(*[pre["kp"] == k for k in ks]).any()
                       for _, ks in _shift_classes(pairs)] or [Const(0, 1)]
            nxt = Cat(Cat(*decoded), pre["valid"] & pre["first"])
            add = Signal(len(nxt), name="acc_add_r")
            m.d.sync += add.eq(Mux(self.stall, add, nxt))
            m.d.comb += self.acc_add.as_value().eq(add)
        return m


class SharedOperands(wiring.Component):
    """The operands every lane shares, selected from the memory words in the memory data
    stage (control ``ctl``) and registered when the operand stage is present: per tap
    residue the B code (and its window carry), the U window, the V code; for the ``ux``
    form the step's slice of each (the VB products of the vb order come from ``K`` shared
    multipliers here). ``operands``: :func:`operand_signature`."""

    def __init__(self, cfg: GeneratorConfig):
        self._cfg = cfg
        self._schedule = Schedule(cfg)
        members = {"ctl": In(step_layout(cfg)), "stall": In(1),
                   "b_word": In(_word_bits(cfg, "B"))}
        if _rt_one_hot(cfg):
            members["rt_is"] = In(cfg.K)
        if cfg.level1:
            members["u_words"] = In(data.ArrayLayout(unsigned(_word_bits(cfg, "U")), 2))
        if cfg.level2:
            members["v_word"] = In(cfg.qv)
        members["operands"] = Out(operand_signature(cfg))
        super().__init__(members)

    def _stage_reg(self, m, value, name):
        """``value`` as seen by the multiply stage: registered once when the operand stage
        is present."""
        sig = Signal(value.shape(), name=name)
        if self._schedule.register_stages[0]:
            m.d.sync += sig.eq(Mux(self.stall, sig, value))
        else:
            m.d.comb += sig.eq(value)
        return sig

    def _residues(self, m):
        """Per tap residue ``a``: the B code of the lane's tap and the window carry."""
        cfg, K = self._cfg, self._cfg.K
        res_code, res_carry = [], []
        for a in range(K):
            if _rt_const(cfg):
                res_carry.append(Const(0, 1))
                res_code.append(self.b_word.word_select(a, cfg.qb))
                continue
            # tap (rt + a) mod K, and whether it wrapped, from the one-hot rt: an AND-OR,
            # no adder or comparator between the control register and the multiplier
            cond = Signal(name=f"carry_{a}")
            code_a = Signal(cfg.qb, name=f"bcode_{a}")
            code = Const(0, cfg.qb)
            for r in range(K):
                code = code | Mux(self.rt_is[r], self.b_word.word_select((r + a) % K, cfg.qb),
                                  0)
            m.d.comb += [cond.eq(Cat(*[self.rt_is[r] for r in range(K - a, K)]).any()
                                 if a else 0),
                         code_a.eq(code)]
            res_carry.append(cond)
            res_code.append(code_a)
        carry = Cat(*[c if isinstance(c, Const) else self._stage_reg(m, c, f"carry_m_{a}")
                      for a, c in enumerate(res_carry)])
        m.d.comb += self.operands.carry.eq(carry)
        return res_code

    def _window(self, m):
        """The ``NB`` channels of the round's U window, cut out of the two U row words."""
        cfg, NB = self._cfg, self._schedule.window_channels
        win_all = Cat(self.u_words[0], self.u_words[1])
        win = Signal(NB * cfg.qu)
        m.d.comb += win.eq(win_all.bit_select(self.ctl.cmod * cfg.qu, NB * cfg.qu) if NB > 1
                           else win_all[:cfg.qu])
        return win

    def elaborate(self, platform):
        m = Module()
        cfg, ops, kp = self._cfg, self.operands, self.ctl.kp
        sched = self._schedule
        form, mul_shape = _datapath_form(sched), signed(cfg.engine_bits + 1)
        pairs1, pairs2 = sched.pairs_level1, sched.pairs_level2
        if form in ("codes", "vb_off1"):
            m.d.comb += ops.b_word.eq(self.b_word)
        if form == "vb_off1":
            v_sl = operand_slices(self.v_word, cfg.v_operand)
            vsel = _select(m, kp, [v_sl[jv] for jv, _, _ in pairs2], mul_shape, "vsel_c")
            m.d.comb += ops.odd_v.eq(self._stage_reg(m, vsel[1:], "vsel"))
        elif form == "w1":
            res_code = self._residues(m)
            m.d.comb += [ops.bcode[a].eq(self._stage_reg(m, c, f"bcode_m_{a}"))
                         for a, c in enumerate(res_code)]
            m.d.comb += [ops.window.eq(self._stage_reg(m, self._window(m), "win_m")),
                         ops.vcode.eq(self._stage_reg(m, self.v_word, "vcode_m"))]
        elif form == "w1once":
            # phase 1 as the ux form (B slices per residue, U slices per window channel);
            # in phase 2 every window channel carries the broadcast V slice instead, so a
            # lane's first operand needs no phase choice
            res_code, win = self._residues(m), self._window(m)
            v_sl = operand_slices(self.v_word, cfg.v_operand)
            vsel = _select(m, kp, [v_sl[jv] for jv, _, _ in pairs2], mul_shape, "vsel_c")
            self._select_ux(m, res_code, win, cfg.b_operand, pairs1, mul_shape,
                            phase2_u=vsel)
        elif form == "ux":
            # one x value per residue, one U slice per window channel, both selected for the
            # step's slice pair before they fan out to the lanes
            res_code, win = self._residues(m), self._window(m)
            x_codes = [self._vb_code(m, a, c) for a, c in enumerate(res_code)] \
                if sched.order == "vb" else res_code
            x_op = cfg.vb_operand if sched.order == "vb" else cfg.b_operand
            self._select_ux(m, x_codes, win, x_op, pairs1, mul_shape)
        return m

    def _select_ux(self, m, x_codes, win, x_op, pairs, mul_shape, phase2_u=None):
        """The step's x slice of each residue's code and U slice of each window channel
        (slice pair ``ctl.kp`` of ``pairs``): sign-magnitude into ``sm_x`` / ``sm_u`` in
        the ux form, odd without the LSB into ``odd_x`` / ``odd_u`` in the w1once form;
        with ``phase2_u``, that value replaces every U slice in a ``phase2`` step."""
        cfg, ops, kp = self._cfg, self.operands, self.ctl.kp
        sm = _datapath_form(self._schedule) == "ux"
        xs, us = (ops.sm_x, ops.sm_u) if sm else (ops.odd_x, ops.odd_u)
        for a in range(cfg.K):
            sl = operand_slices(x_codes[a], x_op)
            xsel = _select(m, kp, [sl[jx] for _, jx, _ in pairs], mul_shape, f"xsel_c_{a}")
            x = _sm_from_odd(xsel[1:]) if sm else xsel[1:]
            m.d.comb += xs[a].eq(self._stage_reg(m, x, f"xsel_{a}"))
        for d in range(self._schedule.window_channels):
            sl = operand_slices(win.word_select(d, cfg.qu), cfg.u_operand)
            usel = _select(m, kp, [sl[ju] for ju, _, _ in pairs], mul_shape, f"usel_c_{d}")
            if phase2_u is not None:
                usel = Mux(self.ctl.phase2, phase2_u, usel)
            u = _sm_from_odd(usel[1:]) if sm else usel[1:]
            m.d.comb += us[d].eq(self._stage_reg(m, u, f"usel_{d}"))

    def _vb_code(self, m, a, bcode):
        """``VB = m_V * m_B`` of residue ``a`` from a shared multiplier, as its
        ``vb_bits``-bit odd code (the inverse of ``odd_from_code``: free wiring)."""
        cfg = self._cfg
        vbp = Signal(signed(cfg.qv + cfg.qb + 2), name=f"vb_{a}")
        v_sm = _sm_from_odd(odd_from_code(self.v_word, cfg.qv)[1:])
        b_sm = _sm_from_odd(odd_from_code(bcode, cfg.qb)[1:])
        m.d.comb += vbp.eq(_odd(_sm_odd_product(m, f"vb_{a}", v_sm, b_sm)))
        nb_ = cfg.vb_bits
        return Cat(vbp[1:nb_], ~vbp[nb_]) if nb_ > 1 else ~vbp[1]


def _lanes_signature(cfg: GeneratorConfig, count: int) -> dict:
    """The ports every lane array has: the shared operands, the control of its multiply and
    accumulate stages, the stall, and one exact weight per lane (``count`` lanes)."""
    layout = step_layout(cfg)
    return {"operands": In(operand_signature(cfg)), "mul": In(layout), "acc": In(layout),
            "stall": In(1),
            "values": Out(data.ArrayLayout(signed(cfg.acc_bits), count))}


def _lane_ids(cfg: GeneratorConfig, lanes: range | None) -> range:
    """The lanes a lane array builds: all of them, or the group ``lanes`` (a drain that
    skews lane groups builds one array per group, :class:`Generator`)."""
    ids = range(cfg.lanes) if lanes is None else lanes
    if not (ids and 0 <= ids.start and ids.stop <= cfg.lanes and ids.step == 1):
        raise ValueError(f"lanes must be a non-empty range within 0..{cfg.lanes}, not {ids!r}")
    return ids


class _LaneArray(wiring.Component):
    """What every lane array shares: its config and schedule, the lanes it builds
    (:func:`_lane_ids`) and the ports of :func:`_lanes_signature`, plus a form's ``extra``
    ports."""

    def __init__(self, cfg: GeneratorConfig, lanes: range | None = None,
                 extra: dict | None = None):
        self._cfg = cfg
        self._schedule = Schedule(cfg)
        self._lane_ids = _lane_ids(cfg, lanes)
        super().__init__({**_lanes_signature(cfg, len(self._lane_ids)), **(extra or {})})


class OneSumLanes(_LaneArray):
    """Per lane one multiplier and one exact sum: ``U x VB`` over ``Bo*Bi`` terms (vb
    order), ``U x B`` over ``Bi`` (level 2 off) or ``V x B`` over ``Bo`` (level 1 off),
    from the shared operands; no lane holds a ``W1``. With ``fused`` recombination the
    accumulators take the registered add control ``acc_add`` (:func:`acc_add_layout`)."""

    def __init__(self, cfg: GeneratorConfig, lanes: range | None = None):
        super().__init__(cfg, lanes, {"acc_add": In(acc_add_layout(cfg))}
                         if _registered_adds(cfg) else None)

    def _lane_operands(self, m, lane):
        """The lane's multiplier inputs: its window channel's U slice and its residue's x
        slice (level 1 on), or the broadcast V slice and its own B code's slice."""
        cfg, ops = self._cfg, self.operands
        sched = self._schedule
        if cfg.level1:
            rt_const = _rt_const(cfg)
            return (_lane_window(lane, list(ops.sm_u), ops.carry, cfg.K,
                                 sched.window_channels, rt_const),
                    ops.sm_x[lane % cfg.K])
        b_sl = operand_slices(ops.b_word.word_select(lane, cfg.qb), cfg.b_operand)
        return _odd(ops.odd_v), _select(m, self.mul.kp,
                                        [b_sl[jw] for _, jw, _ in sched.pairs_level2],
                                        signed(cfg.engine_bits + 1), f"x_{lane}")

    def elaborate(self, platform):
        m = Module()
        cfg, sched = self._cfg, self._schedule
        pairs, a_op, x_op, terms = _one_sum(cfg, sched)
        fused = cfg.recombination == "fused"
        active = self.acc.valid
        if fused:
            # the registered add control: each shift condition and the clear are flops
            kp_is, clear = None, self.acc_add.clear
            shifts = [(sh, self.acc_add.shift_is[k])
                      for k, (sh, _) in enumerate(_shift_classes(pairs))]
        else:
            kp_is, clear, shifts = _pair_conditions(m, self.acc.kp, len(pairs)), None, None
        for idx, lane in enumerate(self._lane_ids):
            a, x = self._lane_operands(m, lane)
            product = _sm_product if cfg.level1 else _lane_product
            prod = product(m, lane, a, x, cfg.engine_bits, sched.register_stages[1],
                           self.stall)
            w_val = _lane_sum(m, fused, f"w_{lane}", pairs, a_op, x_op, terms, cfg.acc_bits,
                              prod, shifts, kp_is, active, self.stall, self.acc.first, clear)
            m.d.comb += self.values[idx].eq(w_val)
        return m


class W1Lanes(_LaneArray):
    """The W1-recompute order: per lane one multiplier shared by two sums, level 1 (``U x
    B`` over ``Bi`` terms into the lane's ``W1``) and level 2 (``V x W1`` over ``Bo`` terms
    into its weight); each lane selects its slices in the multiply stage, where its ``W1``
    is fed back as the level-2 operand."""

    def elaborate(self, platform):
        m = Module()
        cfg, ops, mul = self._cfg, self.operands, self.mul
        sched = self._schedule
        pairs1, pairs2 = sched.pairs_level1, sched.pairs_level2
        u_op, b_op, v_op, w1_op = cfg.u_operand, cfg.b_operand, cfg.v_operand, cfg.w1_operand
        fused, NB = cfg.recombination == "fused", sched.window_channels
        mul_shape = signed(cfg.engine_bits + 1)
        rt_const = _rt_const(cfg)
        active1, active2 = Signal(), Signal()
        m.d.comb += [active1.eq(self.acc.valid & ~mul.phase2),
                     active2.eq(self.acc.valid & mul.phase2)]
        kp_is = _pair_conditions(m, self.acc.kp, max(len(pairs1), len(pairs2)))
        shifts1 = _shift_conditions(m, pairs1, kp_is, "w1", active1) if fused else None
        shifts2 = _shift_conditions(m, pairs2, kp_is, "w2", active2) if fused else None
        v_sl = operand_slices(ops.vcode, v_op)
        win_words = [ops.window.word_select(d, cfg.qu) for d in range(NB)]
        for idx, lane in enumerate(self._lane_ids):
            a_in = Signal(mul_shape, name=f"a_{lane}")
            x_in = Signal(mul_shape, name=f"x_{lane}")
            prod = _lane_product(m, lane, a_in, x_in, cfg.engine_bits, sched.register_stages[1],
                                 self.stall)
            u_sl = operand_slices(_lane_window(lane, win_words, ops.carry, cfg.K, NB, rt_const),
                                  u_op)
            b_sl = operand_slices(ops.bcode[lane % cfg.K], b_op)
            w1_val = _lane_sum(m, fused, f"w1_{lane}", pairs1, u_op, b_op, cfg.Bi, cfg.w1_bits,
                               prod, shifts1, kp_is, active1, self.stall, mul.first)
            w1_sl = operand_slices(w1_val, w1_op)
            for phase, pairs, a_sl, x_sl in ((0, pairs1, u_sl, b_sl), (1, pairs2, v_sl, w1_sl)):
                with (m.If(~mul.phase2) if phase == 0 else m.Else()):
                    with m.Switch(mul.kp):
                        for k, (ja, jx, _) in enumerate(pairs):
                            with (m.Case(k) if k < len(pairs) - 1 else m.Default()):
                                m.d.comb += [a_in.eq(a_sl[ja]), x_in.eq(x_sl[jx])]
            w_val = _lane_sum(m, fused, f"w_{lane}", pairs2, v_op, w1_op, cfg.Bo, cfg.acc_bits,
                              prod, shifts2, kp_is, active2, self.stall, mul.first)
            m.d.comb += self.values[idx].eq(w_val)
        return m


class W1BufferReads(wiring.Component):
    """The gated reads of the W1 buffer (w1once order): word ``o`` once per (row, ``o``)
    of phase 2, as the block's first step is issued (``ctl``: the sequencer's step), so
    the word is on the port in the memory data stage, where each lane selects its slice;
    it holds there while the block runs. ``read``: ``In(ReadPort.Signature)`` (this
    drives address and enable)."""

    def __init__(self, cfg: GeneratorConfig):
        self._cfg = cfg
        depth, width = Schedule(cfg).w1_buffer_shape
        super().__init__({"ctl": In(step_layout(cfg)), "stall": In(1),
                          "read": In(ReadPort.Signature(addr_width=W.bits_for_count(depth),
                                                        shape=unsigned(width)))})

    def elaborate(self, platform):
        m = Module()
        ctl = self.ctl
        m.d.comb += [self.read.addr.eq(ctl.o),
                     self.read.en.eq(~self.stall & ctl.valid & ctl.phase2 & ctl.kp0)]
        return m


class W1OnceLanes(_LaneArray):
    """The w1once order: per lane one multiplier and one fused accumulator serving both
    phases of a tile. Phase 1 sums ``U x B`` over ``Bi`` terms (the lane's ``W1[o, c, t]``,
    written to the W1 buffer in the cycle after its last step: ``write_w1``, word ``o``,
    lane ``m``'s field ``w1_bits`` wide); phase 2 sums the broadcast ``V`` slice times the
    lane's ``W1`` slice (from the buffer word ``w1_word``, selected per step) over ``Bo``
    terms into the weight; the W1 slice is selected in the memory data stage (control
    ``mem``) and registered at the operand stage like the shared operands. No lane holds a
    ``W1`` register: the accumulator's width holds every prefix sum of either phase
    (:func:`insitugen.widths.sum_abs_bound`)."""

    def __init__(self, cfg: GeneratorConfig, lanes: range | None = None):
        # the w1once order emits whole tile rows (beat = lanes): never a skewed lane group
        if _lane_ids(cfg, lanes) != range(cfg.lanes):
            raise ValueError("the w1once lane array builds all lanes (its beat is lanes)")
        depth, width = Schedule(cfg).w1_buffer_shape
        super().__init__(cfg, lanes, {
            "mem": In(step_layout(cfg)), "w1_word": In(width),
            "write_w1": In(WritePort.Signature(addr_width=W.bits_for_count(depth),
                                               shape=unsigned(width)))})

    def elaborate(self, platform):
        m = Module()
        cfg, sched, ops, mul, acc = self._cfg, self._schedule, self.operands, self.mul, self.acc
        pairs1, pairs2 = sched.pairs_level1, sched.pairs_level2
        u_op, b_op, v_op, w1_op = cfg.u_operand, cfg.b_operand, cfg.v_operand, cfg.w1_operand
        NB, s, K = sched.window_channels, cfg.engine_bits, cfg.K
        mul_shape = signed(s + 1)
        exec_acc = Signal()
        m.d.comb += exec_acc.eq(acc.valid & ~self.stall)
        kp_is = _pair_conditions(m, acc.kp, max(len(pairs1), len(pairs2)))
        shifts = self._shift_conditions(m, pairs1, pairs2, kp_is, acc.phase2)
        bound = max(W.sum_abs_bound([(W.product_range(a.ranges[ja], x.ranges[jx]), sh)
                                     for ja, jx, sh in pairs] * terms)
                    for pairs, a, x, terms in ((pairs1, u_op, b_op, cfg.Bi),
                                               (pairs2, v_op, w1_op, cfg.Bo)))
        acc_shape = signed(W.signed_bits(-bound, bound))
        u = [_odd(ops.odd_u[d]) for d in range(NB)]        # the V slice in phase 2
        w1_fields = []
        for lane in range(cfg.lanes):
            # the lane's W1 slice: selected in the memory data stage, registered with the
            # shared operands at the operand stage
            w1_sl = operand_slices(self.w1_word.word_select(lane, cfg.w1_bits), w1_op)
            w1x = _select(m, self.mem.kp, [w1_sl[jw] for _, jw, _ in pairs2], mul_shape,
                          f"w1x_c_{lane}")
            if sched.register_stages[0]:
                # held on stall like every stage register: its input (the memory data
                # stage's step) is the step after the one its output feeds, so loading it
                # while the stalled step waits would skip that step's slice
                reg = Signal(mul_shape, name=f"w1x_{lane}")
                m.d.sync += reg.eq(Mux(self.stall, reg, w1x))
                w1x = reg
            a_in = Signal(mul_shape, name=f"a_{lane}")
            x_in = Signal(mul_shape, name=f"x_{lane}")
            m.d.comb += [a_in.eq(_lane_window(lane, u, ops.carry, K, NB, _rt_const(cfg))),
                         x_in.eq(Mux(mul.phase2, w1x, _odd(ops.odd_x[lane % K])))]
            prod = Signal(signed(2 * s + 2), name=f"prod_{lane}")
            m.d.comb += prod.eq(a_in * x_in)
            if sched.register_stages[1]:     # a level-2 product is not odd: all its bits
                reg = Signal.like(prod, name=f"prod_r_{lane}")
                m.d.sync += reg.eq(Mux(self.stall, reg, prod))
                prod = reg
            total = Signal(acc_shape, name=f"w_{lane}_acc")
            term = Signal(acc_shape, name=f"w_{lane}_term")
            value = prod.shift_left(shifts[-1][0])
            for sh, cond in reversed(shifts[:-1]):
                value = Mux(cond, prod.shift_left(sh), value)
            m.d.comb += term.eq(value)
            with m.If(exec_acc):
                m.d.sync += total.eq(Mux(acc.first, 0, total) + term)
            m.d.comb += self.values[lane].eq(total[:cfg.acc_bits].as_signed())
            w1_fields.append(total[:cfg.w1_bits])
        # the W1 of a finished phase-1 block is in the accumulators one cycle after its last
        # step: write it then (the next block's first step replaces it at that edge)
        store, addr = Signal(), Signal.like(self.write_w1.addr, name="w1_store_addr")
        m.d.sync += store.eq(exec_acc & acc.store)
        with m.If(exec_acc & acc.store):
            m.d.sync += addr.eq(acc.o)
        m.d.comb += [self.write_w1.en.eq(store), self.write_w1.addr.eq(addr),
                     self.write_w1.data.eq(Cat(*w1_fields))]
        return m

    @staticmethod
    def _shift_conditions(m, pairs1, pairs2, kp_is, phase2):
        """Per distinct shift of either phase's pairs, a shared 'the step's shift is this'
        signal (phase 1: ``kp`` among ``pairs1``, phase 2: among ``pairs2``)."""
        by_shift: dict[int, list] = {}
        for phase, pairs in ((~phase2, pairs1), (phase2, pairs2)):
            for k, (_, _, sh) in enumerate(pairs):
                by_shift.setdefault(sh, []).append(phase & kp_is[k])
        out = []
        for sh, terms in sorted(by_shift.items()):
            cond = Signal(name=f"w_sh{sh}")
            m.d.comb += cond.eq(Cat(*terms).any())
            out.append((sh, cond))
        return out


class CodeLanes(_LaneArray):
    """Both levels off: each lane's weight is the odd value of its own B code, latched in
    the memory data stage (no multiply)."""

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        for idx, lane in enumerate(self._lane_ids):
            accb = Signal(signed(cfg.qb + 1), name=f"wb_{lane}")
            # its control is the memory data stage's (the stages after it are the same step)
            with m.If(self.acc.valid & ~self.stall):
                m.d.sync += accb.eq(odd_from_code(self.operands.b_word.word_select(lane, cfg.qb),
                                                  cfg.qb))
            m.d.comb += self.values[idx].eq(accb)
        return m


#: The lane array of each datapath form (:func:`_datapath_form`).
_LANES = {"ux": OneSumLanes, "vb_off1": OneSumLanes, "w1": W1Lanes, "codes": CodeLanes,
          "w1once": W1OnceLanes}


class Generator(wiring.Component):
    """Whole-layer MLG weight generator; see the module docstring for the contract.

    Its figures (cycles, memories) are those of ``Schedule(cfg)``, also readable
    without building the component: ``Generator.figures(cfg)``."""

    def __init__(self, cfg: GeneratorConfig, *, drain: str | None = None):
        if not isinstance(cfg, GeneratorConfig):
            raise TypeError(f"Generator needs a GeneratorConfig, not {cfg!r}")
        self._cfg = cfg
        self._schedule = sched = Schedule(cfg)
        # the drain of Schedule.drain; "bank" may replace "skew" (same beats and cycles),
        # to measure one against the other
        self._drain = sched.drain if drain is None else drain
        if (self._drain, sched.drain) not in (("bank", "skew"), (sched.drain, sched.drain)):
            raise ValueError(f"drain {drain!r} is not possible here: the schedule's drain is "
                             f"{sched.drain!r} (\"bank\" may replace \"skew\")")
        super().__init__(generator_signature(cfg))

    @staticmethod
    def figures(cfg: GeneratorConfig) -> Schedule:
        """The figures of the generator for ``cfg`` (a plain :class:`Schedule`, nothing
        elaborated or built)."""
        return Schedule(cfg)

    @property
    def cfg(self) -> GeneratorConfig:
        return self._cfg

    @property
    def schedule(self) -> Schedule:
        return self._schedule


    # ---- elaboration ----------------------------------------------------------------------
    def _lane_groups(self, m, ctl, shared, stall):
        """The lane array(s): one array of all lanes, or, for the skewed drain, one array
        per group of ``beat`` lanes, group ``g`` fed the shared operands and the multiply /
        accumulate control ``g`` cycles late (registers held on ``stall``). Returns every
        lane's value (lane order), 'a delayed group still has a step in flight' and the
        lane arrays."""
        cfg, sched = self._cfg, self._schedule
        cls = _LANES[_datapath_form(sched)]
        groups = sched.beats_per_round if self._drain == "skew" else 1
        size = cfg.lanes // groups
        names = list(operand_signature(cfg).members)
        feed = {"operands": {n: getattr(shared.operands, n) for n in names},
                "mul": ctl.mul, "acc": ctl.acc}
        if _registered_adds(cfg):
            feed["acc_add"] = ctl.acc_add
        values, in_flight, arrays = [], [], []
        for g in range(groups):
            if g:
                prev = feed
                feed = {"operands": {n: _held_register(m, v, stall, f"skew{g}_op_{n}")
                                     for n, v in feed["operands"].items()},
                        "mul": _held_register(m, feed["mul"], stall, f"skew{g}_mul"),
                        "acc": _held_register(m, feed["acc"], stall, f"skew{g}_acc")}
                if "acc_add" in prev:
                    feed["acc_add"] = _held_register(m, prev["acc_add"], stall,
                                                     f"skew{g}_acc_add")
                in_flight.append(feed["mul"].valid | feed["acc"].valid)
            lanes = cls(cfg, range(g * size, (g + 1) * size) if groups > 1 else None)
            m.submodules[f"lanes{g}" if groups > 1 else "lanes"] = lanes
            m.d.comb += [getattr(lanes.operands, n).eq(v) for n, v in feed["operands"].items()]
            m.d.comb += [lanes.mul.eq(feed["mul"]), lanes.acc.eq(feed["acc"]),
                         lanes.stall.eq(stall)]
            if "acc_add" in feed:
                m.d.comb += lanes.acc_add.eq(feed["acc_add"])
            values += [lanes.values[k] for k in range(size)]
            arrays.append(lanes)
        return values, Cat(*in_flight).any() if in_flight else Const(0, 1), arrays

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        mems = {}
        for name, (depth, width) in self.memory_shapes.items():
            mem = Memory(shape=unsigned(width), depth=depth, init=[])
            m.submodules[f"mem_{name}"] = mem
            mems[name] = mem

        # code loader: codes -> memory write ports
        loader = m.submodules.loader = CodeLoader(cfg)
        busy = Signal()
        wiring.connect(m, wiring.flipped(self.codes), loader.codes)
        for name, mem in mems.items():
            wiring.connect(m, getattr(loader, f"write_{name}"), mem.write_port(
                granularity=cfg.code_bits[name]))
        m.d.comb += [loader.busy.eq(busy), self.loaded.eq(loader.loaded)]

        # step sequencer: pass requests, step counters, gated memory reads
        stall = Signal()
        seq = m.submodules.sequencer = Sequencer(cfg)
        m.d.comb += [seq.start.eq(self.start), seq.loaded.eq(loader.loaded),
                     seq.code_fire.eq(loader.fire), seq.stall.eq(stall)]
        rports = {name: [mem.read_port(domain="sync")] for name, mem in mems.items()}
        if cfg.level1:
            rports["U"].append(mems["U"].read_port(domain="sync"))
        for name, ports in rports.items():
            for k, port in enumerate(ports):
                wiring.connect(m, getattr(seq, f"read_{name}{k if k else ''}"), port)
        # the read enables, for tests that count reads against Schedule.reads_per_pass
        self.read_enables = {name: [port.en for port in ports] for name, ports in rports.items()}

        # lane datapath: control of each stage, shared operands, per-lane multiply-accumulate
        ctl = m.submodules.pipeline = ControlPipeline(cfg)
        shared = m.submodules.operands = SharedOperands(cfg)
        m.d.comb += [ctl.step.eq(seq.step), ctl.stall.eq(stall), shared.ctl.eq(ctl.mem),
                     shared.stall.eq(stall), shared.b_word.eq(rports["B"][0].data)]
        if _rt_one_hot(cfg):
            m.d.comb += shared.rt_is.eq(ctl.mem_rt_is)
        if cfg.level1:
            m.d.comb += [shared.u_words[k].eq(port.data) for k, port in enumerate(rports["U"])]
        if cfg.level2:
            m.d.comb += shared.v_word.eq(rports["V"][0].data)
        values, late, arrays = self._lane_groups(m, ctl, shared, stall)
        if self._schedule.order == "w1once":
            self._w1_buffer(m, arrays[0], seq, ctl, stall)

        # requantize and emit: accumulators -> weights
        emit = m.submodules.emit = Requantizer(cfg, skewed=self._drain == "skew")
        wiring.connect(m, emit.weights, wiring.flipped(self.weights))
        m.d.comb += [emit.round_end.eq(ctl.acc.valid & ctl.acc.end_round),
                     emit.last_round.eq(ctl.acc.last_round), emit.last.eq(ctl.acc.last),
                     stall.eq(emit.stall)]
        m.d.comb += [emit.values[k].eq(v) for k, v in enumerate(values)]
        m.d.comb += busy.eq(seq.running | ctl.in_flight | late | emit.holding)
        m.d.comb += self.busy.eq(busy)
        return m

    def _w1_buffer(self, m, lanes, seq, ctl, stall):
        """The w1once order's W1 buffer (:attr:`Schedule.w1_buffer_shape`): the lanes write
        it, :class:`W1BufferReads` reads it as a level-2 block's first step is issued."""
        depth, width = self._schedule.w1_buffer_shape
        mem = m.submodules.mem_W1 = Memory(shape=unsigned(width), depth=depth, init=[])
        wiring.connect(m, lanes.write_w1, mem.write_port())
        port = mem.read_port(domain="sync")
        reads = m.submodules.w1_reads = W1BufferReads(self._cfg)
        wiring.connect(m, reads.read, port)
        m.d.comb += [reads.ctl.eq(seq.step), reads.stall.eq(stall), lanes.w1_word.eq(port.data),
                     lanes.mem.eq(ctl.mem)]
        self.read_enables["W1"] = [port.en]
        self.w1_write_enable = lanes.write_w1.en        # for tests counting buffer writes


for _name in _SCHEDULE_FIGURES:
    setattr(Generator, _name, property(lambda self, _n=_name: getattr(self._schedule, _n),
                                       doc=f"``Schedule.{_name}`` of the config."))
del _name
