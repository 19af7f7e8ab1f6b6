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
* level 1 off (``base_in = 0``): ``W1 = m_B[o, c, t]`` (the odd B code, sliced
  as an odd code); per ``o`` only level-2 steps;
* level 2 off (``base_out = 0``): ``o = j``; only level-1 steps; ``W = W1``;
* both off: ``W = m_B[j, c, t]``; one step per round.

With one level off (or both) the two product orders are the same datapath.
``W1`` is never buffered: a ``W1`` buffer for oihw order would hold
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
  product is registered too, splitting multiplier and accumulator adder.
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

Every memory is at least 2 words deep (Verilog cannot declare a zero-width
address). For the default config the memories hold exactly the codes:
B 2376 + U 67584 + V 16896 = 86856 bits.

Requantization: :func:`hdl.arith.round_shift_saturate` with
``cfg.out_bits`` / ``cfg.shift`` / ``cfg.rounding`` on the exact weight, in the
cycle after a round ends (``out_bits = 0``: the full ``cfg.acc_bits`` weight).

Structure: :class:`CodeLoader` (codes -> memory write ports), :class:`Sequencer`
(pass requests, step counters, gated memory reads -> the control of each step) and
:class:`Requantizer` (finished round -> output beat, and the stall) are components
joined with :func:`amaranth.lib.wiring.connect`; the lane datapath (control
pipeline, shared operands, per-lane multiply-accumulate of each product order) is
the generator's own ``elaborate``.

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
  "count": unsigned(bit_length(L)), "last": 1})))``. Beats are row-aligned:
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
``n_beats * steps_per_round + latency`` cycles after the clock edge that
samples ``start`` (``latency = 3 + register stages``: memory read, [operand
register], [product register], multiply-accumulate, output register). Back-to-back
passes add exactly ``n_beats * steps_per_round`` cycles each. The engine stalls only
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
        cfg, sched = self._cfg, self._schedule
        p, q, K, L = cfg.out_channels, cfg.in_channels, cfg.K, cfg.lanes
        N, R = sched.row_weights, sched.rounds_per_row
        Bo, Bi = cfg.Bo, cfg.Bi
        lv1, lv2 = cfg.level1, cfg.level2
        NB, u_rows = sched.window_channels, sched.u_rows
        code = self.codes.payload
        code_fire = Signal()
        m.d.comb += [self.codes.ready.eq(~self.busy),
                     code_fire.eq(self.codes.valid & self.codes.ready), self.fire.eq(code_fire)]
        tensors = list(cfg.code_shapes)                       # B, [U], [V] in load order
        ld_t = Signal(counter_shape(len(tensors)))
        ld_final = Signal()                    # the beat holds the layer's last code
        tensor_last = {}                       # name -> "this code is the tensor's last"
        loaded = self.loaded

        if lv1:
            ba = Signal(counter_shape(Bo * Bi))
            bt = Signal(counter_shape(K))
            wp = self.write_B
            m.d.comb += [wp.addr.eq(ba), wp.data.eq(Cat([code[:cfg.qb]] * K)),
                         wp.en.eq(Mux(code_fire & (ld_t == tensors.index("B")),
                                      Const(1, 1) << bt, 0))]
            tensor_last["B"] = (ba == Bo * Bi - 1) & (bt == K - 1)
            with m.If(code_fire & (ld_t == tensors.index("B"))):
                with m.If(bt == K - 1):
                    m.d.sync += [bt.eq(0), ba.eq(Mux(ba == Bo * Bi - 1, 0, ba + 1))]
                with m.Else():
                    m.d.sync += bt.eq(bt + 1)
            # U[o, c, i] -> word (c//NB * Bo + o) * Bi + i, field c % NB
            uo = Signal(counter_shape(Bo))
            uc = Signal(counter_shape(q))
            ucm = Signal(counter_shape(NB))
            ucr = Signal(counter_shape(u_rows))
            ui = Signal(counter_shape(Bi))
            wp = self.write_U
            m.d.comb += [wp.addr.eq((ucr * Bo + uo) * Bi + ui),
                         wp.data.eq(Cat([code[:cfg.qu]] * NB)),
                         wp.en.eq(Mux(code_fire & (ld_t == tensors.index("U")),
                                      Const(1, 1) << ucm, 0))]
            tensor_last["U"] = (uo == Bo - 1) & (uc == q - 1) & (ui == Bi - 1)
            with m.If(code_fire & (ld_t == tensors.index("U"))):
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
        else:
            # B[o, n] -> word (n // L) * Bo + o, field n % L
            bo_ = Signal(counter_shape(Bo))
            bnm = Signal(counter_shape(L))
            bnd = Signal(counter_shape(R))
            wp = self.write_B
            m.d.comb += [wp.addr.eq(bnd * Bo + bo_), wp.data.eq(Cat([code[:cfg.qb]] * L)),
                         wp.en.eq(Mux(code_fire & (ld_t == tensors.index("B")),
                                      Const(1, 1) << bnm, 0))]
            row_end = (bnd == (N - 1) // L) & (bnm == (N - 1) % L)
            tensor_last["B"] = (bo_ == Bo - 1) & row_end
            with m.If(code_fire & (ld_t == tensors.index("B"))):
                with m.If(row_end):
                    m.d.sync += [bnm.eq(0), bnd.eq(0), bo_.eq(Mux(bo_ == Bo - 1, 0, bo_ + 1))]
                with m.Elif(bnm == L - 1):
                    m.d.sync += [bnm.eq(0), bnd.eq(bnd + 1)]
                with m.Else():
                    m.d.sync += bnm.eq(bnm + 1)
        if lv2:
            va = Signal(counter_shape(p * Bo))
            wp = self.write_V
            m.d.comb += [wp.addr.eq(va), wp.data.eq(code[:cfg.qv]),
                         wp.en.eq(code_fire & (ld_t == tensors.index("V")))]
            tensor_last["V"] = va == p * Bo - 1
            with m.If(code_fire & (ld_t == tensors.index("V"))):
                m.d.sync += va.eq(Mux(va == p * Bo - 1, 0, va + 1))

        with m.Switch(ld_t):
            for k, name in enumerate(tensors):
                with (m.Case(k) if k < len(tensors) - 1 else m.Default()):
                    m.d.comb += ld_final.eq(tensor_last[name] & (k == len(tensors) - 1))
                    with m.If(code_fire & tensor_last[name]):
                        m.d.sync += ld_t.eq(0 if k == len(tensors) - 1 else k + 1)
        with m.If(code_fire):
            m.d.sync += loaded.eq(ld_final)
        return m


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
        self._schedule = sched = Schedule(cfg)
        members = {"start": In(1), "loaded": In(1), "code_fire": In(1), "stall": In(1),
                   "running": Out(1), "step": Out(step_layout(cfg))}
        ports = list(sched.memory_shapes.items())
        if cfg.level1:
            ports.append(("U1", sched.memory_shapes["U"]))
        for name, (depth, width) in ports:
            members[f"read_{name}"] = In(ReadPort.Signature(
                addr_width=W.bits_for_count(depth), shape=unsigned(width)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg, sched = self._cfg, self._schedule
        p, K, L = cfg.out_channels, cfg.K, cfg.lanes
        R = sched.rounds_per_row
        Bo, Bi, obl = cfg.Bo, cfg.Bi, sched.o_loop
        lv1, lv2 = cfg.level1, cfg.level2
        NB, u_rows = sched.window_channels, sched.u_rows
        p1 = sched.register_stages[0]
        pairs1, pairs2 = sched.pairs_level1, sched.pairs_level2
        NP1, NP2 = len(pairs1), len(pairs2)
        has1, has2 = NP1 > 0, NP2 > 0
        two_phase = has1 and has2                 # the w1 order: level 1, then level 2, per o
        stall = self.stall
        active = Signal()
        pending = Signal()
        j = Signal(counter_shape(p))
        r = Signal(counter_shape(R))
        o = Signal(counter_shape(obl))
        i = Signal(counter_shape(max(1, Bi)))
        kp = Signal(counter_shape(max(1, NP1, NP2)))
        phase2 = Signal() if two_phase else Const(int(has2), 1)   # 1 = a V x W1 step

        last_kp1 = kp == NP1 - 1 if NP1 else Const(1)
        last_kp2 = kp == NP2 - 1 if NP2 else Const(1)
        last_i = i == Bi - 1 if lv1 else Const(1)
        if two_phase:
            end_oblock = phase2 & last_kp2
        elif has1:
            end_oblock = last_kp1 & last_i
        elif has2:
            end_oblock = last_kp2
        else:
            end_oblock = Const(1)
        end_round = end_oblock & (o == obl - 1)
        end_row = end_round & (r == R - 1)
        end_pass = end_row & (j == p - 1)

        start_req = self.start & self.loaded & ~self.code_fire
        go = start_req | pending
        begin = go & (~active | end_pass) & ~stall
        with m.If(begin):
            m.d.sync += pending.eq(pending & start_req)
        with m.Else():
            m.d.sync += pending.eq(pending | start_req)

        # window tracking of level 1: n0 = r*L, rt = n0 % K, c_lo = n0 // K = crow*NB + cmod
        rt_const = (K == 1) or (L % K == 0)
        rt = Const(0, counter_shape(K)) if rt_const else Signal(counter_shape(K))
        cmod = Signal(counter_shape(NB)) if lv1 and NB > 1 else Const(0, 1)
        crow = Signal(counter_shape(u_rows)) if lv1 else Const(0, 1)

        with m.If(begin):
            m.d.sync += [active.eq(1), j.eq(0), r.eq(0), o.eq(0), i.eq(0), kp.eq(0)]
            if two_phase:
                m.d.sync += phase2.eq(0)
            if not rt_const:
                m.d.sync += rt.eq(0)
            if lv1:
                m.d.sync += crow.eq(0)
                if NB > 1:
                    m.d.sync += cmod.eq(0)
        with m.Elif(active & ~stall):
            with m.If(end_pass):
                m.d.sync += active.eq(0)
            # step within the o-block
            if two_phase:
                with m.If(~phase2):
                    with m.If(last_kp1):
                        m.d.sync += kp.eq(0)
                        with m.If(last_i):
                            m.d.sync += [i.eq(0), phase2.eq(1)]
                        with m.Else():
                            m.d.sync += i.eq(i + 1)
                    with m.Else():
                        m.d.sync += kp.eq(kp + 1)
                with m.Else():
                    with m.If(last_kp2):
                        m.d.sync += [kp.eq(0), phase2.eq(0)]
                    with m.Else():
                        m.d.sync += kp.eq(kp + 1)
            elif has1:
                with m.If(last_kp1):
                    m.d.sync += kp.eq(0)
                    with m.If(last_i):
                        m.d.sync += i.eq(0)
                    with m.Else():
                        m.d.sync += i.eq(i + 1)
                with m.Else():
                    m.d.sync += kp.eq(kp + 1)
            elif has2:
                m.d.sync += kp.eq(Mux(last_kp2, 0, kp + 1))
            with m.If(end_oblock):
                m.d.sync += o.eq(Mux(o == obl - 1, 0, o + 1))
            with m.If(end_round):
                m.d.sync += r.eq(Mux(r == R - 1, 0, r + 1))
                with m.If(r == R - 1):
                    m.d.sync += j.eq(Mux(j == p - 1, 0, j + 1))
                if lv1:
                    with m.If(r == R - 1):
                        if not rt_const:
                            m.d.sync += rt.eq(0)
                        m.d.sync += crow.eq(0)
                        if NB > 1:
                            m.d.sync += cmod.eq(0)
                    with m.Else():
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

        o_eff = o if lv2 else j          # basis row of the step
        fused = cfg.recombination == "fused"
        kp0 = kp == 0
        # first-term flags: a fused accumulator restarts at the first step of its sum, a
        # separate partial at the first step of its slice pair (kp == k)
        first_single = ((o == 0) if lv2 else Const(1)) & ((i == 0) if has1 else Const(1))
        if two_phase:
            first = Mux(phase2, (o == 0) & (kp0 if fused else 1), (i == 0) & (kp0 if fused else 1))
        else:
            first = first_single & (kp0 if fused else 1)

        # ---- memory reads: each word read once, at the first step that needs it --------------
        rports = {name: [getattr(self, f"read_{name}")] for name in sched.memory_shapes}
        not_p2 = ~phase2 if two_phase else Const(1)
        if lv1:
            rports["U"].append(self.read_U1)
            rb, ub, ua = rports["B"][0], rports["U"][1], rports["U"][0]
            m.d.comb += rb.addr.eq(o_eff * Bi + i)
            m.d.comb += ua.addr.eq((crow * Bo + o_eff) * Bi + i)
            crow_b = Mux(crow + 1 < u_rows, crow + 1, 0) if u_rows > 1 else Const(0, 1)
            m.d.comb += ub.addr.eq((crow_b * Bo + o_eff) * Bi + i)
            new_bu = Signal()
            m.d.comb += new_bu.eq(~stall & active & kp0 & not_p2)
            for port in (rb, ua, ub):
                m.d.comb += port.en.eq(new_bu)
        else:
            # B is per-lane data: read it in the stage before the lane multiply (the
            # registers below repeat those of the datapath's stage 1; synthesis merges them)
            late = {"r": r, "o": o_eff, "valid": active, "kp0": kp0}
            if p1:
                for key, sig in list(late.items()):
                    reg = Signal.like(sig, name=f"late_{key}")
                    m.d.sync += reg.eq(Mux(stall, reg, sig))
                    late[key] = reg
            rb = rports["B"][0]
            m.d.comb += [rb.addr.eq(late["r"] * Bo + late["o"]),
                         rb.en.eq(~stall & late["valid"] & late["kp0"])]
        if lv2:
            rv = rports["V"][0]
            new_v = kp0 & not_p2 & ((i == 0) if has1 else Const(1))
            m.d.comb += [rv.addr.eq(j * Bo + o), rv.en.eq(~stall & active & new_v)]
        step = self.step
        m.d.comb += [step.valid.eq(active), step.phase2.eq(phase2), step.kp.eq(kp),
                     step.first.eq(first), step.end_round.eq(active & end_round),
                     step.last_round.eq(r == R - 1), step.last.eq(end_pass), step.kp0.eq(kp0),
                     step.rt.eq(rt), step.cmod.eq(cmod), step.r.eq(r), step.o.eq(o_eff),
                     self.running.eq(active | pending)]
        return m


def step_layout(cfg: GeneratorConfig) -> data.StructLayout:
    """The control of one step as the :class:`Sequencer` issues it: ``valid``, ``phase2``
    (a V x W1 step of the w1 order), ``kp`` (slice pair), ``first`` (the step restarts its
    accumulator or partial), ``end_round``, ``last_round`` (of a row), ``last`` (of the
    pass), ``kp0``, ``rt`` / ``cmod`` (level-1 window: ``n0 % K``, channel offset in the U
    row), ``r`` (round), ``o`` (basis row)."""
    sched = Schedule(cfg)
    npairs = max(1, len(sched.pairs_level1), len(sched.pairs_level2))
    return data.StructLayout({
        "valid": 1, "phase2": 1, "kp": counter_shape(npairs), "first": 1, "end_round": 1,
        "last_round": 1, "last": 1, "kp0": 1, "rt": counter_shape(cfg.K),
        "cmod": counter_shape(sched.window_channels), "r": counter_shape(sched.rounds_per_row),
        "o": counter_shape(sched.o_loop if cfg.level2 else cfg.out_channels)})


#: Figures of the generator read from its :class:`~insitugen.schedule.Schedule`.
_SCHEDULE_FIGURES = ("lanes", "rounds_per_row", "n_beats", "steps_per_round", "latency",
                     "pass_cycles", "cycles_lower_bound", "algorithmic_minimum",
                     "window_channels", "memory_shapes", "memory_bits", "reads_per_pass")


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
        sched = self._schedule
        K, L = cfg.K, cfg.lanes
        Bo, Bi, obl = cfg.Bo, cfg.Bi, sched.o_loop
        lv1 = cfg.level1
        NB = sched.window_channels
        mems = {}
        for name, (depth, width) in self.memory_shapes.items():
            mem = Memory(shape=unsigned(width), depth=depth, init=[])
            m.submodules[f"mem_{name}"] = mem
            mems[name] = mem

        # ======================= code loader: codes -> memories ==============================
        loader = m.submodules.loader = CodeLoader(cfg)
        busy = Signal()
        wiring.connect(m, wiring.flipped(self.codes), loader.codes)
        for name, mem in mems.items():
            wiring.connect(m, getattr(loader, f"write_{name}"), mem.write_port(
                granularity=cfg.code_bits[name]))
        code_fire, loaded = loader.fire, loader.loaded
        m.d.comb += [loader.busy.eq(busy), self.loaded.eq(loaded)]

        # ======================= step sequencer: counters, gated memory reads ==============
        p1, p2 = sched.register_stages
        pairs1, pairs2 = sched.pairs_level1, sched.pairs_level2
        NP1, NP2 = len(pairs1), len(pairs2)
        has1, has2 = NP1 > 0, NP2 > 0
        two_phase = has1 and has2                 # the w1 order: level 1, then level 2, per o
        vb = sched.order == "vb"
        fused = cfg.recombination == "fused"
        rt_const = (K == 1) or (L % K == 0)
        stall = Signal()
        seq = m.submodules.sequencer = Sequencer(cfg)
        m.d.comb += [seq.start.eq(self.start), seq.loaded.eq(loaded),
                     seq.code_fire.eq(code_fire), seq.stall.eq(stall)]
        rports = {}
        for name, mem in mems.items():
            rports[name] = [mem.read_port(domain="sync")]
        if lv1:
            rports["U"].append(mems["U"].read_port(domain="sync"))
        for name, ports in rports.items():
            for k, port in enumerate(ports):
                wiring.connect(m, getattr(seq, f"read_{name}{k if k else ''}"), port)
        # the read enables, for tests that count reads against Schedule.reads_per_pass
        self.read_enables = {name: [port.en for port in ports] for name, ports in rports.items()}
        step = seq.step
        # fields that are constant in this form stay constants (no pipeline register)
        ctl0 = {"valid": step.valid, "phase2": step.phase2 if two_phase else Const(int(has2), 1),
                "kp": step.kp, "first": step.first, "end_round": step.end_round,
                "last_round": step.last_round, "last": step.last, "kp0": step.kp0,
                "rt": Const(0, counter_shape(K)) if rt_const else step.rt,
                "cmod": step.cmod if lv1 and NB > 1 else Const(0, 1), "r": step.r,
                "o": step.o}
        ctls = [ctl0]
        # ---- control of the later stages: stage 0's values, registered once per stage -------
        n_ctl = 2 + int(p1) + int(p2)           # stage 0, memory data, [operands], [product]
        for st in range(1, n_ctl):
            prev, cur = ctls[-1], {}
            for key, sig in prev.items():
                if isinstance(sig, Const):
                    cur[key] = sig
                    continue
                reg = Signal.like(sig, name=f"s{st}_{key}")
                m.d.sync += reg.eq(Mux(stall, reg, sig))
                cur[key] = reg
            ctls.append(cur)
        s1 = ctls[1]                       # the memory data stage
        smac = ctls[1 + int(p1)]           # the lane multiply stage
        sacc = ctls[-1]                    # the accumulate stage


        # ======================= stage 1: shared operands from the memory words ================
        s = cfg.engine_bits
        u_op, b_op, v_op, w1_op = cfg.u_operand, cfg.b_operand, cfg.v_operand, cfg.w1_operand
        x1_op = cfg.vb_operand if vb else b_op        # the x operand of the level-1-type steps

        def stage_reg(value, name):
            """``value`` as seen by the multiply stage: registered once when the operand
            stage is present."""
            sig = Signal(value.shape(), name=name)
            if p1:
                m.d.sync += sig.eq(Mux(stall, sig, value))
            else:
                m.d.comb += sig.eq(value)
            return sig

        def stage_reg_odd(value, name):
            """:func:`stage_reg` of an odd value: its LSB is always 1, so only the bits above
            it are registered and the constant 1 stays visible to the multiplier (an odd
            times odd product has fewer partial products)."""
            return Cat(Const(1, 1), stage_reg(value[1:], name)).as_signed()

        def select(m, sel, options, shape, name):
            """``options[sel]`` as a named signal (the last option is the default)."""
            sig = Signal(shape, name=name)
            with m.Switch(sel):
                for k, opt in enumerate(options):
                    with (m.Case(k) if k < len(options) - 1 else m.Default()):
                        m.d.comb += sig.eq(opt)
            return sig

        mul_shape = signed(s + 1)
        lane_a, lane_x = [None] * L, [None] * L       # multiplier inputs of each lane
        lane_code = [None] * L                        # both levels off: the lane's B code
        if lv1:
            bword = rports["B"][0].data
            res_code, res_carry = [], []
            for a in range(K):
                if rt_const:
                    res_carry.append(Const(0, 1))
                    res_code.append(bword.word_select(a, cfg.qb))
                else:
                    cond = Signal(name=f"carry_{a}")
                    code_a = Signal(cfg.qb, name=f"bcode_{a}")
                    t_a = Mux(cond, s1["rt"] + a - K, s1["rt"] + a)
                    m.d.comb += [cond.eq((s1["rt"] >= K - a) if a else 0),
                                 code_a.eq(bword.word_select(t_a[:W.bits_for_count(K)], cfg.qb))]
                    res_carry.append(cond)
                    res_code.append(code_a)
            win_all = Cat(rports["U"][0].data, rports["U"][1].data)
            win = Signal(NB * cfg.qu)
            m.d.comb += win.eq(win_all.bit_select(s1["cmod"] * cfg.qu, NB * cfg.qu) if NB > 1
                               else win_all[:cfg.qu])
            carry_m = [c if isinstance(c, Const) else stage_reg(c, f"carry_m_{a}")
                       for a, c in enumerate(res_carry)]

            def lane_window(lane, values):
                """The lane's window channel among ``values`` (one per window channel)."""
                a, d0 = lane % K, min(lane // K, NB - 1)
                d1 = min(lane // K + 1, NB - 1)
                if d0 == d1 or rt_const:
                    return values[d0]
                return Mux(carry_m[a], values[d1], values[d0])

        if has1 and not two_phase:
            # vb order / level 2 off: one x value per residue, one U slice per window
            # channel, both selected for the step's slice pair before they fan out to lanes
            if vb:
                vcode = rports["V"][0].data
                x_codes = []
                for a in range(K):
                    vbp = Signal(signed(cfg.qv + cfg.qb + 2), name=f"vb_{a}")
                    m.d.comb += vbp.eq(odd_from_code(vcode, cfg.qv)
                                       * odd_from_code(res_code[a], cfg.qb))
                    # the odd product as its vb_bits-bit odd code: inverse of odd_from_code
                    nb_ = cfg.vb_bits
                    x_codes.append(Cat(vbp[1:nb_], ~vbp[nb_]) if nb_ > 1 else ~vbp[1])
            else:
                x_codes = res_code
            xsel = []
            for a in range(K):
                sl = operand_slices(x_codes[a], x1_op)
                xsel.append(stage_reg_odd(select(m, s1["kp"], [sl[jx] for _, jx, _ in pairs1],
                                                 mul_shape, f"xsel_c_{a}"), f"xsel_{a}"))
            usel = []
            for d in range(NB):
                sl = operand_slices(win.word_select(d, cfg.qu), u_op)
                usel.append(stage_reg_odd(select(m, s1["kp"], [sl[ju] for ju, _, _ in pairs1],
                                                 mul_shape, f"usel_c_{d}"), f"usel_{d}"))
            for lane in range(L):
                lane_a[lane] = lane_window(lane, usel)
                lane_x[lane] = xsel[lane % K]
        elif has2 and not has1:
            # level 1 off: V broadcast, each lane's own B code from the (late) B word
            v_sl = operand_slices(rports["V"][0].data, v_op)
            vsel = stage_reg_odd(select(m, s1["kp"], [v_sl[jv] for jv, _, _ in pairs2],
                                        mul_shape, "vsel_c"), "vsel")
            bword = rports["B"][0].data
            for lane in range(L):
                b_sl = operand_slices(bword.word_select(lane, cfg.qb), b_op)
                lane_a[lane] = vsel
                lane_x[lane] = select(m, smac["kp"], [b_sl[jw] for _, jw, _ in pairs2],
                                      mul_shape, f"x_{lane}")
        elif not has1 and not has2:
            bword = rports["B"][0].data
            lane_code = [bword.word_select(lane, cfg.qb) for lane in range(L)]
        else:
            # w1 order: shared words (registered in the operand stage), per-lane selection
            # in the multiply stage, where each lane's W1 is fed back as the level-2 operand
            code_m = [stage_reg(c, f"bcode_m_{a}") for a, c in enumerate(res_code)]
            win_m = stage_reg(win, "win_m")
            v_sl = operand_slices(stage_reg(rports["V"][0].data, "vcode_m"), v_op)
            win_words = [win_m.word_select(d, cfg.qu) for d in range(NB)]

        # ======================= multiply and accumulate, per lane ==============================
        exec_acc = Signal()
        m.d.comb += exec_acc.eq(sacc["valid"] & ~stall)
        kp_is = [Signal(name=f"kp_is_{k}") for k in range(max(1, NP1, NP2))]
        m.d.comb += [sig.eq(sacc["kp"] == k) for k, sig in enumerate(kp_is)]

        def shift_conditions(pairs, name):
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

        def lane_product(lane):
            prod = Signal(signed(2 * s + 2), name=f"prod_{lane}")
            m.d.comb += prod.eq(lane_a[lane] * lane_x[lane])
            if not p2:
                return prod
            # every form with a product stage multiplies two odd values: the product is odd,
            # its LSB a constant 1 that is not registered
            reg = Signal(2 * s + 1, name=f"prod_r_{lane}")
            m.d.sync += reg.eq(Mux(stall, reg, prod[1:]))
            return Cat(Const(1, 1), reg).as_signed()

        def lane_sum(name, pairs, a_op, x_op, terms, out_bits, prod, shifts, enable, first):
            """The lane's exact sum of ``terms`` sliced products, as a signed ``out_bits``
            value: a fused accumulator or separate partials with their shift-add tree."""
            if fused:
                acc = _fused_accumulator(m, f"{name}_acc", pairs, a_op, x_op, terms, prod,
                                         shifts, enable, first)
                return acc[:out_bits].as_signed()
            return _separate_recombination(m, name, a_op, x_op, terms, out_bits, prod, kp_is,
                                           enable, first)

        wvals = []
        if not has1 and not has2:
            for lane in range(L):
                # both levels off: the weight is the odd value of the B code
                accb = Signal(signed(cfg.qb + 1), name=f"wb_{lane}")
                with m.If(s1["valid"] & ~stall):
                    m.d.sync += accb.eq(odd_from_code(lane_code[lane], cfg.qb))
                wvals.append(accb)
        elif not two_phase:
            # one accumulator per lane: vb order (U x VB over Bo*Bi terms), level 2 off
            # (U x B over Bi terms) or level 1 off (V x B over Bo terms)
            if has1:
                pairs, a_op, x_op, terms = pairs1, u_op, x1_op, obl * Bi
            else:
                pairs, a_op, x_op, terms = pairs2, v_op, b_op, Bo
            shifts = shift_conditions(pairs, "w") if fused else None
            for lane in range(L):
                prod = lane_product(lane)
                w_val = lane_sum(f"w_{lane}", pairs, a_op, x_op, terms, cfg.acc_bits, prod,
                                 shifts, exec_acc, sacc["first"])
                wvals.append(w_val[:cfg.acc_bits].as_signed())
        else:
            ph2 = smac["phase2"]
            exec1, exec2 = Signal(), Signal()
            m.d.comb += [exec1.eq(exec_acc & ~ph2), exec2.eq(exec_acc & ph2)]
            shifts1 = shift_conditions(pairs1, "w1") if fused else None
            shifts2 = shift_conditions(pairs2, "w2") if fused else None
            for lane in range(L):
                a_in = Signal(mul_shape, name=f"a_{lane}")
                x_in = Signal(mul_shape, name=f"x_{lane}")
                lane_a[lane], lane_x[lane] = a_in, x_in
                prod = lane_product(lane)
                u_sl = operand_slices(lane_window(lane, win_words), u_op)
                b_sl = operand_slices(code_m[lane % K], b_op)
                w1_val = lane_sum(f"w1_{lane}", pairs1, u_op, b_op, Bi, cfg.w1_bits, prod,
                                  shifts1, exec1, smac["first"])
                w1_sl = operand_slices(w1_val, w1_op)
                with m.If(~ph2):
                    with m.Switch(smac["kp"]):
                        for k, (ju, jb, _) in enumerate(pairs1):
                            with (m.Case(k) if k < NP1 - 1 else m.Default()):
                                m.d.comb += [a_in.eq(u_sl[ju]), x_in.eq(b_sl[jb])]
                with m.Else():
                    with m.Switch(smac["kp"]):
                        for k, (jv, jw, _) in enumerate(pairs2):
                            with (m.Case(k) if k < NP2 - 1 else m.Default()):
                                m.d.comb += [a_in.eq(v_sl[jv]), x_in.eq(w1_sl[jw])]
                w_val = lane_sum(f"w_{lane}", pairs2, v_op, w1_op, Bo, cfg.acc_bits, prod,
                                 shifts2, exec2, smac["first"])
                wvals.append(w_val[:cfg.acc_bits].as_signed())

        # ======================= requantize and emit: accumulators -> weights ===============
        emit = m.submodules.emit = Requantizer(cfg)
        wiring.connect(m, emit.weights, wiring.flipped(self.weights))
        m.d.comb += [emit.round_end.eq(sacc["valid"] & sacc["end_round"]),
                     emit.last_round.eq(sacc["last_round"]), emit.last.eq(sacc["last"]),
                     stall.eq(emit.stall)]
        m.d.comb += [emit.values[lane].eq(wvals[lane]) for lane in range(L)]

        in_flight = [c["valid"] for c in ctls[1:]]
        m.d.comb += busy.eq(seq.running | Cat(*in_flight).any() | emit.holding)
        m.d.comb += self.busy.eq(busy)
        return m


for _name in _SCHEDULE_FIGURES:
    setattr(Generator, _name, property(lambda self, _n=_name: getattr(self._schedule, _n),
                                       doc=f"``Schedule.{_name}`` of the config."))
del _name
