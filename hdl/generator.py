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
  the step's pair, chosen among the distinct shifts by signals shared by all lanes).
  Accumulator width: ``insitugen.widths.sum_abs_bound`` over all terms (holds
  every prefix sum).
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
signed, products ``(2s+2)``-bit signed. With every slice count 1 both forms
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

Requantization: :func:`hdl.arith.round_shift_saturate` with
``cfg.out_bits`` / ``cfg.shift`` / ``cfg.rounding`` on the exact weight, in the
cycle after a round ends (``out_bits = 0``: the full ``cfg.acc_bits`` weight).

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
  :class:`CodeLanes` (both levels off), one exact weight per lane;
* :class:`Requantizer`: finished round -> output beat, and the stall.

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
* ``weights``: ``Out(stream.Signature(StructLayout({"w": ArrayLayout(signed(wb), L),
  "count": unsigned(bit_length(L)), "last": 1})))``. In the w1once order (``order =
  "tile"``) beat ``r*p + j`` carries tile ``r`` of row ``j`` instead
  (:mod:`golden.order`), ``count = N - (R-1)*L`` on every beat of the last tile. Otherwise
  beats are row-aligned:
  row ``j`` is ``R`` beats; beat ``r`` carries ``W[j].flat[r*L : r*L+count]``
  in lanes ``0..count-1`` (``count = L`` except ``N - (R-1)*L`` on the last
  beat of a row), unused lanes are 0; ``last`` marks the final beat of a pass.
  Verilog payload packing, LSB first: lane 0 .. lane L-1 (``wb`` bits each),
  then ``count``, then ``last``.
* ``busy``: ``Out(1)``: a pass is requested or running or its last beat is not
  yet taken. ``loaded``: ``Out(1)``: a complete layer is in the memories.

Timing
------
With ``weights.ready`` held high, the last beat of a pass is taken
``cycles_per_pass + latency`` cycles after the clock edge that samples ``start``
(``cycles_per_pass = n_beats * steps_per_round``; w1once: ``R * tile_cycles``;
``latency = 3 + register stages``: memory read, [operand register], [product
register], multiply-accumulate, output register). Back-to-back
passes add exactly ``cycles_per_pass`` cycles each. The engine stalls only
when a round ends while the one-beat output register still holds an untaken beat.
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

def weights_layout(cfg: GeneratorConfig) -> data.StructLayout:
    """Payload layout of the ``weights`` stream."""
    return data.StructLayout({
        "w": data.ArrayLayout(signed(cfg.weight_bits), cfg.lanes),
        "count": unsigned(cfg.lanes.bit_length()),
        "last": 1,
    })


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _fused_accumulator(m: Module, name: str, pairs, a_op: W.SlicedOperand,
                       x_op: W.SlicedOperand, terms: int, prod, shifts, enable, first):
    """A lane accumulator of the ``fused`` form: adds ``prod << shift`` of the step's slice
    pair (``pairs[k] = (a slice, x slice, shift)``) when ``enable``, restarting on
    ``first``. ``shifts``: ``(shift, condition)`` per distinct shift, the conditions shared
    by every lane (one mux input per distinct shift, not per pair). Its width holds every
    prefix sum of ``terms`` such sums (:func:`insitugen.widths.sum_abs_bound`)."""
    bound = W.sum_abs_bound([(W.product_range(a_op.ranges[ja], x_op.ranges[jx]), sh)
                             for ja, jx, sh in pairs] * terms)
    acc = Signal(signed(W.signed_bits(-bound, bound)), name=name)
    term = Signal.like(acc, name=f"{name}_term")
    value = prod.shift_left(shifts[-1][0])
    for sh, cond in reversed(shifts[:-1]):
        value = Mux(cond, prod.shift_left(sh), value)
    m.d.comb += term.eq(value)
    with m.If(enable):
        m.d.sync += acc.eq(Mux(first, 0, acc) + term)
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
    """Requantizes a finished round of lane values into the one-beat output register.

    Ports: ``values`` (``In(ArrayLayout(signed(acc_bits), L))``: each lane's exact
    weight, read in the cycle after ``round_end``), ``round_end`` / ``last_round`` /
    ``last`` (``In(1)``: the accumulate stage's step ends a round / the round is a
    row's last / the pass's last), ``weights`` (the generator's output stream),
    ``stall`` (``Out(1)``: a finished round waits for the output register; the
    pipeline must hold) and ``holding`` (``Out(1)``: a round or a beat is in here).
    :func:`hdl.arith.round_shift_saturate` with ``cfg.out_bits`` / ``cfg.shift`` /
    ``cfg.rounding``; lanes past a row's last weight carry 0.
    """

    def __init__(self, cfg: GeneratorConfig):
        self._cfg = cfg
        self._schedule = Schedule(cfg)
        super().__init__({
            "values": In(data.ArrayLayout(signed(cfg.acc_bits), cfg.lanes)),
            "round_end": In(1), "last_round": In(1), "last": In(1),
            "weights": Out(stream.Signature(weights_layout(cfg))),
            "stall": Out(1), "holding": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, sched = self._cfg, self._schedule
        L, N, R = cfg.lanes, sched.row_weights, sched.rounds_per_row
        stall = self.stall
        e_valid = Signal()
        e_last_round = Signal()
        e_last = Signal()
        with m.If(~stall):
            m.d.sync += [e_valid.eq(self.round_end), e_last_round.eq(self.last_round),
                         e_last.eq(self.last)]
        out = self.weights
        out_fire = out.valid & out.ready
        m.d.comb += [stall.eq(e_valid & out.valid & ~out.ready),
                     self.holding.eq(e_valid | out.valid)]
        with m.If(out_fire):
            m.d.sync += out.valid.eq(0)
        count_last = N - (R - 1) * L
        with m.If(e_valid & ~stall):
            m.d.sync += [out.valid.eq(1), out.payload.last.eq(e_last),
                         out.payload.count.eq(Mux(e_last_round, count_last, L))]
            # round_shift_saturate reads the remainder from the value's own bits: give it at
            # least shift + 2 bits so a shift wider than the weight still sees the sign bits
            ext_bits = max(cfg.acc_bits, cfg.shift + 2)
            for lane in range(L):
                ext = Signal(signed(ext_bits), name=f"wfull_{lane}")
                m.d.comb += ext.eq(self.values[lane])
                rq = round_shift_saturate(ext, ext_bits, cfg.out_bits, cfg.shift, cfg.rounding)
                if lane >= N:
                    val = Const(0, signed(cfg.weight_bits))   # never a weight (L > N)
                elif lane >= count_last:
                    val = Mux(e_last_round, 0, rq)
                else:
                    val = rq
                m.d.sync += out.payload.w[lane].eq(val)
        return m


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
_SCHEDULE_FIGURES = ("lanes", "rounds_per_row", "n_beats", "steps_per_round", "latency",
                     "pass_cycles", "cycles_per_pass", "cycles_lower_bound",
                     "algorithmic_minimum", "window_channels", "memory_shapes", "memory_bits",
                     "reads_per_pass", "w1_buffer_shape", "w1_buffer_bits")


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
    puts the constant back where its multiplier sees it."""
    sched = Schedule(cfg)
    form = _datapath_form(sched)
    s, K, NB = cfg.engine_bits, cfg.K, sched.window_channels
    if form == "ux":
        return wiring.Signature({"odd_x": Out(data.ArrayLayout(unsigned(s), K)),
                                 "odd_u": Out(data.ArrayLayout(unsigned(s), NB)),
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


def _rt_const(cfg: GeneratorConfig) -> bool:
    """Every round's window starts at tap 0 (``K == 1`` or ``K`` divides ``L``): the tap
    offset ``rt`` is the constant 0 and no lane needs a window carry."""
    return cfg.K == 1 or cfg.lanes % cfg.K == 0


def _word_bits(cfg: GeneratorConfig, name: str) -> int:
    """Width of one word of memory ``name``."""
    return Schedule(cfg).memory_shapes[name][1]


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


def _shift_conditions(m: Module, pairs, kp_is, name: str):
    """Per distinct shift of ``pairs``, a shared 'the step's shift is this' signal."""
    by_shift = {}
    for k, (_, _, sh) in enumerate(pairs):
        by_shift.setdefault(sh, []).append(k)
    out = []
    for sh, ks in sorted(by_shift.items()):
        cond = Signal(name=f"{name}_sh{sh}")
        m.d.comb += cond.eq(Cat(*[kp_is[k] for k in ks]).any())
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


def _lane_sum(m: Module, fused: bool, name: str, pairs, a_op, x_op, terms: int, out_bits: int,
              prod, shifts, kp_is, enable, first):
    """The lane's exact sum of ``terms`` sliced products, as a signed ``out_bits`` value: a
    fused accumulator or separate partials with their shift-add tree."""
    if fused:
        acc = _fused_accumulator(m, f"{name}_acc", pairs, a_op, x_op, terms, prod, shifts,
                                 enable, first)
        return acc[:out_bits].as_signed()
    return _separate_recombination(m, name, a_op, x_op, terms, out_bits, prod, kp_is, enable,
                                   first)


class ControlPipeline(wiring.Component):
    """The step control of every pipeline stage: the :class:`Sequencer`'s ``step`` (stage 0),
    registered once per stage (memory data, [operands], [product]) and held on ``stall``.
    Fields that are constant in the config's form stay constants (no register).

    ``mem``, ``mul``, ``acc``: the control of the memory data, lane multiply and accumulate
    stages; ``in_flight``: a step is in a stage after stage 0."""

    def __init__(self, cfg: GeneratorConfig):
        self._cfg = cfg
        self._schedule = Schedule(cfg)
        layout = step_layout(cfg)
        super().__init__({"step": In(layout), "stall": In(1), "mem": Out(layout),
                          "mul": Out(layout), "acc": Out(layout), "in_flight": Out(1)})

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
        cfg, ctl, K = self._cfg, self.ctl, self._cfg.K
        res_code, res_carry = [], []
        for a in range(K):
            if _rt_const(cfg):
                res_carry.append(Const(0, 1))
                res_code.append(self.b_word.word_select(a, cfg.qb))
                continue
            cond = Signal(name=f"carry_{a}")
            code_a = Signal(cfg.qb, name=f"bcode_{a}")
            t_a = Mux(cond, ctl.rt + a - K, ctl.rt + a)
            m.d.comb += [cond.eq((ctl.rt >= K - a) if a else 0),
                         code_a.eq(self.b_word.word_select(t_a[:W.bits_for_count(K)], cfg.qb))]
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
        (slice pair ``ctl.kp`` of ``pairs``), into ``odd_x`` / ``odd_u``; with
        ``phase2_u``, that value replaces every U slice in a ``phase2`` step."""
        cfg, ops, kp = self._cfg, self.operands, self.ctl.kp
        for a in range(cfg.K):
            sl = operand_slices(x_codes[a], x_op)
            xsel = _select(m, kp, [sl[jx] for _, jx, _ in pairs], mul_shape, f"xsel_c_{a}")
            m.d.comb += ops.odd_x[a].eq(self._stage_reg(m, xsel[1:], f"xsel_{a}"))
        for d in range(self._schedule.window_channels):
            sl = operand_slices(win.word_select(d, cfg.qu), cfg.u_operand)
            usel = _select(m, kp, [sl[ju] for ju, _, _ in pairs], mul_shape, f"usel_c_{d}")
            if phase2_u is not None:
                usel = Mux(self.ctl.phase2, phase2_u, usel)
            m.d.comb += ops.odd_u[d].eq(self._stage_reg(m, usel[1:], f"usel_{d}"))

    def _vb_code(self, m, a, bcode):
        """``VB = m_V * m_B`` of residue ``a`` from a shared multiplier, as its
        ``vb_bits``-bit odd code (the inverse of ``odd_from_code``: free wiring)."""
        cfg = self._cfg
        vbp = Signal(signed(cfg.qv + cfg.qb + 2), name=f"vb_{a}")
        m.d.comb += vbp.eq(odd_from_code(self.v_word, cfg.qv) * odd_from_code(bcode, cfg.qb))
        nb_ = cfg.vb_bits
        return Cat(vbp[1:nb_], ~vbp[nb_]) if nb_ > 1 else ~vbp[1]


def _lanes_signature(cfg: GeneratorConfig) -> dict:
    """The ports every lane array has: the shared operands, the control of its multiply and
    accumulate stages, the stall, and one exact weight per lane."""
    layout = step_layout(cfg)
    return {"operands": In(operand_signature(cfg)), "mul": In(layout), "acc": In(layout),
            "stall": In(1),
            "values": Out(data.ArrayLayout(signed(cfg.acc_bits), cfg.lanes))}


class OneSumLanes(wiring.Component):
    """Per lane one multiplier and one exact sum: ``U x VB`` over ``Bo*Bi`` terms (vb
    order), ``U x B`` over ``Bi`` (level 2 off) or ``V x B`` over ``Bo`` (level 1 off),
    from the shared operands; no lane holds a ``W1``."""

    def __init__(self, cfg: GeneratorConfig):
        self._cfg = cfg
        self._schedule = Schedule(cfg)
        super().__init__(_lanes_signature(cfg))

    def _lane_operands(self, m, lane):
        """The lane's multiplier inputs: its window channel's U slice and its residue's x
        slice (level 1 on), or the broadcast V slice and its own B code's slice."""
        cfg, ops = self._cfg, self.operands
        sched = self._schedule
        if cfg.level1:
            u = [_odd(ops.odd_u[d]) for d in range(sched.window_channels)]
            rt_const = _rt_const(cfg)
            return (_lane_window(lane, u, ops.carry, cfg.K, sched.window_channels, rt_const),
                    _odd(ops.odd_x[lane % cfg.K]))
        b_sl = operand_slices(ops.b_word.word_select(lane, cfg.qb), cfg.b_operand)
        return _odd(ops.odd_v), _select(m, self.mul.kp,
                                        [b_sl[jw] for _, jw, _ in sched.pairs_level2],
                                        signed(cfg.engine_bits + 1), f"x_{lane}")

    def elaborate(self, platform):
        m = Module()
        cfg, sched = self._cfg, self._schedule
        if cfg.level1:
            pairs, terms = sched.pairs_level1, sched.o_loop * cfg.Bi
            a_op = cfg.u_operand
            x_op = cfg.vb_operand if sched.order == "vb" else cfg.b_operand
        else:
            pairs, a_op, x_op, terms = sched.pairs_level2, cfg.v_operand, cfg.b_operand, cfg.Bo
        fused = cfg.recombination == "fused"
        exec_acc = Signal()
        m.d.comb += exec_acc.eq(self.acc.valid & ~self.stall)
        kp_is = _pair_conditions(m, self.acc.kp, len(pairs))
        shifts = _shift_conditions(m, pairs, kp_is, "w") if fused else None
        for lane in range(cfg.lanes):
            a, x = self._lane_operands(m, lane)
            prod = _lane_product(m, lane, a, x, cfg.engine_bits, sched.register_stages[1],
                                 self.stall)
            w_val = _lane_sum(m, fused, f"w_{lane}", pairs, a_op, x_op, terms, cfg.acc_bits,
                              prod, shifts, kp_is, exec_acc, self.acc.first)
            m.d.comb += self.values[lane].eq(w_val)
        return m


class W1Lanes(wiring.Component):
    """The W1-recompute order: per lane one multiplier shared by two sums, level 1 (``U x
    B`` over ``Bi`` terms into the lane's ``W1``) and level 2 (``V x W1`` over ``Bo`` terms
    into its weight); each lane selects its slices in the multiply stage, where its ``W1``
    is fed back as the level-2 operand."""

    def __init__(self, cfg: GeneratorConfig):
        self._cfg = cfg
        self._schedule = Schedule(cfg)
        super().__init__(_lanes_signature(cfg))

    def elaborate(self, platform):
        m = Module()
        cfg, ops, mul = self._cfg, self.operands, self.mul
        sched = self._schedule
        pairs1, pairs2 = sched.pairs_level1, sched.pairs_level2
        u_op, b_op, v_op, w1_op = cfg.u_operand, cfg.b_operand, cfg.v_operand, cfg.w1_operand
        fused, NB = cfg.recombination == "fused", sched.window_channels
        mul_shape = signed(cfg.engine_bits + 1)
        rt_const = _rt_const(cfg)
        exec1, exec2 = Signal(), Signal()
        m.d.comb += [exec1.eq(self.acc.valid & ~self.stall & ~mul.phase2),
                     exec2.eq(self.acc.valid & ~self.stall & mul.phase2)]
        kp_is = _pair_conditions(m, self.acc.kp, max(len(pairs1), len(pairs2)))
        shifts1 = _shift_conditions(m, pairs1, kp_is, "w1") if fused else None
        shifts2 = _shift_conditions(m, pairs2, kp_is, "w2") if fused else None
        v_sl = operand_slices(ops.vcode, v_op)
        win_words = [ops.window.word_select(d, cfg.qu) for d in range(NB)]
        for lane in range(cfg.lanes):
            a_in = Signal(mul_shape, name=f"a_{lane}")
            x_in = Signal(mul_shape, name=f"x_{lane}")
            prod = _lane_product(m, lane, a_in, x_in, cfg.engine_bits, sched.register_stages[1],
                                 self.stall)
            u_sl = operand_slices(_lane_window(lane, win_words, ops.carry, cfg.K, NB, rt_const),
                                  u_op)
            b_sl = operand_slices(ops.bcode[lane % cfg.K], b_op)
            w1_val = _lane_sum(m, fused, f"w1_{lane}", pairs1, u_op, b_op, cfg.Bi, cfg.w1_bits,
                               prod, shifts1, kp_is, exec1, mul.first)
            w1_sl = operand_slices(w1_val, w1_op)
            for phase, pairs, a_sl, x_sl in ((0, pairs1, u_sl, b_sl), (1, pairs2, v_sl, w1_sl)):
                with (m.If(~mul.phase2) if phase == 0 else m.Else()):
                    with m.Switch(mul.kp):
                        for k, (ja, jx, _) in enumerate(pairs):
                            with (m.Case(k) if k < len(pairs) - 1 else m.Default()):
                                m.d.comb += [a_in.eq(a_sl[ja]), x_in.eq(x_sl[jx])]
            w_val = _lane_sum(m, fused, f"w_{lane}", pairs2, v_op, w1_op, cfg.Bo, cfg.acc_bits,
                              prod, shifts2, kp_is, exec2, mul.first)
            m.d.comb += self.values[lane].eq(w_val)
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


class W1OnceLanes(wiring.Component):
    """The w1once order: per lane one multiplier and one fused accumulator serving both
    phases of a tile. Phase 1 sums ``U x B`` over ``Bi`` terms (the lane's ``W1[o, c, t]``,
    written to the W1 buffer in the cycle after its last step: ``write_w1``, word ``o``,
    lane ``m``'s field ``w1_bits`` wide); phase 2 sums the broadcast ``V`` slice times the
    lane's ``W1`` slice (from the buffer word ``w1_word``, selected per step) over ``Bo``
    terms into the weight; the W1 slice is selected in the memory data stage (control
    ``mem``) and registered at the operand stage like the shared operands. No lane holds a
    ``W1`` register: the accumulator's width holds every prefix sum of either phase
    (:func:`insitugen.widths.sum_abs_bound`)."""

    def __init__(self, cfg: GeneratorConfig):
        self._cfg = cfg
        self._schedule = sched = Schedule(cfg)
        depth, width = sched.w1_buffer_shape
        members = _lanes_signature(cfg)
        members["mem"] = In(step_layout(cfg))
        members["w1_word"] = In(width)
        members["write_w1"] = In(WritePort.Signature(addr_width=W.bits_for_count(depth),
                                                     shape=unsigned(width)))
        super().__init__(members)

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
                # no hold on stall: the memory data stage's control and the buffer's read
                # data both hold then, so the register reloads the value it holds
                reg = Signal(mul_shape, name=f"w1x_{lane}")
                m.d.sync += reg.eq(w1x)
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


class CodeLanes(wiring.Component):
    """Both levels off: each lane's weight is the odd value of its own B code, latched in
    the memory data stage (no multiply)."""

    def __init__(self, cfg: GeneratorConfig):
        self._cfg = cfg
        self._schedule = Schedule(cfg)
        super().__init__(_lanes_signature(cfg))

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        for lane in range(cfg.lanes):
            accb = Signal(signed(cfg.qb + 1), name=f"wb_{lane}")
            # its control is the memory data stage's (the stages after it are the same step)
            with m.If(self.acc.valid & ~self.stall):
                m.d.sync += accb.eq(odd_from_code(self.operands.b_word.word_select(lane, cfg.qb),
                                                  cfg.qb))
            m.d.comb += self.values[lane].eq(accb)
        return m


#: The lane array of each datapath form (:func:`_datapath_form`).
_LANES = {"ux": OneSumLanes, "vb_off1": OneSumLanes, "w1": W1Lanes, "codes": CodeLanes,
          "w1once": W1OnceLanes}


class Generator(wiring.Component):
    """Whole-layer MLG weight generator; see the module docstring for the contract.

    Its figures (cycles, memories) are those of ``Schedule(cfg)``, also readable
    without building the component: ``Generator.figures(cfg)``."""

    def __init__(self, cfg: GeneratorConfig):
        if not isinstance(cfg, GeneratorConfig):
            raise TypeError(f"Generator needs a GeneratorConfig, not {cfg!r}")
        self._cfg = cfg
        self._schedule = Schedule(cfg)
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
        lanes = m.submodules.lanes = _LANES[_datapath_form(self._schedule)](cfg)
        m.d.comb += [ctl.step.eq(seq.step), ctl.stall.eq(stall), shared.ctl.eq(ctl.mem),
                     shared.stall.eq(stall), shared.b_word.eq(rports["B"][0].data),
                     lanes.mul.eq(ctl.mul), lanes.acc.eq(ctl.acc), lanes.stall.eq(stall)]
        if cfg.level1:
            m.d.comb += [shared.u_words[k].eq(port.data) for k, port in enumerate(rports["U"])]
        if cfg.level2:
            m.d.comb += shared.v_word.eq(rports["V"][0].data)
        wiring.connect(m, shared.operands, lanes.operands)
        if self._schedule.order == "w1once":
            self._w1_buffer(m, lanes, seq, ctl, stall)

        # requantize and emit: accumulators -> weights
        emit = m.submodules.emit = Requantizer(cfg)
        wiring.connect(m, emit.weights, wiring.flipped(self.weights))
        m.d.comb += [emit.round_end.eq(ctl.acc.valid & ctl.acc.end_round),
                     emit.last_round.eq(ctl.acc.last_round), emit.last.eq(ctl.acc.last),
                     stall.eq(emit.stall), emit.values.eq(lanes.values)]
        m.d.comb += busy.eq(seq.running | ctl.in_flight | emit.holding)
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
