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

* both levels on: for ``o < Bo``: level-1 steps (``i < Bi``, U slice, B slice)
  accumulate ``W1[o, c, t]``; then level-2 steps (V slice, W1 slice)
  accumulate ``W[j, c, t]``;
* level 1 off (``base_in = 0``): ``W1 = m_B[o, c, t]`` (the odd B code, sliced
  as an odd code); per ``o`` only level-2 steps;
* level 2 off (``base_out = 0``): ``o = j``; only level-1 steps; ``W = W1``;
* both off: ``W = m_B[j, c, t]``; one step per round.

``W1`` is **recomputed** per weight, never buffered: a ``W1`` buffer for oihw
order would hold ``Bo*q*K*w1_bits`` bits (557 kbit for the default config,
6.4x its codes) and defeat the compression; recomputing costs ``Bo *
level1_steps`` extra multiplies per weight and no buffer. Engine multiplies
per weight: ``cfg.macs_per_weight = Bo*(Bi*S_U*S_B + S_V*S_W1)`` (both on),
``Bi*S_U*S_B`` (level 2 off), ``Bo*S_V*S_B`` (level 1 off), 0 (both off).
Steps per round: ``steps_per_round = max(1, macs_per_weight)``.

Recombination (``cfg.recombination``):

* ``"fused"``: per lane one ``W1`` and one ``W`` accumulator; each step adds
  ``product << shift`` (shift = sum of the slice offsets of the step's pair).
  Accumulator width: ``insitugen.widths.sum_abs_bound`` over all terms (holds
  every prefix sum).
* ``"separate"``: per lane one partial accumulator per slice pair (level 1:
  ``S_U*S_B`` partials summing ``Bi`` products; level 2: ``S_V*S_W1`` partials
  summing ``Bo`` products); ``W1`` / ``W`` are the shift-add trees
  (:func:`hdl.arith.shift_add_levels`) of the partials.

Nothing is ever truncated before the final value, whose exact range is
``cfg.w1_range`` / ``cfg.acc_range``. Multiplier inputs are ``(s+1)``-bit
signed, products ``(2s+2)``-bit signed. With every slice count 1 both forms
are the same single-MAC datapath.

Memories (one write port each, synchronous read; ``memory_bits`` gives bits):

* ``V`` (level 2 on): ``p*Bo`` words of ``qv`` bits, address ``j*Bo + o``;
  one read per step, broadcast to all lanes.
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
samples ``start`` (``latency = 3``: memory read, multiply-accumulate, output
register). Back-to-back passes add exactly ``n_beats * steps_per_round``
cycles each. The engine stalls only when a round ends while the one-beat
output register still holds an untaken beat.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from insitugen import widths as W
from insitugen.config import GeneratorConfig

from .arith import counter_shape, odd_from_code, operand_slices, round_shift_saturate, shift_add_levels

__all__ = ["Generator", "weights_layout"]

#: Pipeline cycles added to ``n_beats * steps_per_round`` (see the module docstring).
LATENCY = 3


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
                       x_op: W.SlicedOperand, terms: int, prod, pair_index, enable, first):
    """A lane accumulator of the ``fused`` form: adds ``prod << shift`` of the step's slice
    pair (``pairs[pair_index] = (a slice, x slice, shift)``) when ``enable``, restarting
    on ``first``. Its width holds every prefix sum of ``terms`` such sums
    (:func:`insitugen.widths.sum_abs_bound`)."""
    bound = W.sum_abs_bound([(W.product_range(a_op.ranges[ja], x_op.ranges[jx]), sh)
                             for ja, jx, sh in pairs] * terms)
    acc = Signal(signed(W.signed_bits(-bound, bound)), name=name)
    term = Signal.like(acc, name=f"{name}_term")
    with m.Switch(pair_index):
        for k, (_, _, sh) in enumerate(pairs):
            with (m.Case(k) if k < len(pairs) - 1 else m.Default()):
                m.d.comb += term.eq(prod.shift_left(sh))
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
    for k, (rng, sh) in enumerate(zip(rw.partial_ranges, rw.shifts)):
        part = Signal(signed(W.signed_bits(*rng)), name=f"{name}_p{k}")
        with m.If(enable & pair_is[k]):
            m.d.sync += part.eq(Mux(first, 0, part) + prod)
        parts.append((part, sh))
    value = Signal(signed(out_bits), name=name)
    m.d.comb += value.eq(shift_add_levels(sorted(parts, key=lambda t: t[1]))[-1][0])
    return value


class Generator(wiring.Component):
    """Whole-layer MLG weight generator; see the module docstring for the contract."""

    def __init__(self, cfg: GeneratorConfig):
        if not isinstance(cfg, GeneratorConfig):
            self._MustUse__silence = True
            raise TypeError(f"Generator needs a GeneratorConfig, not {cfg!r}")
        self._cfg = cfg
        q, K, L = cfg.in_channels, cfg.K, cfg.lanes
        self._N = N = q * K
        self._R = _ceil_div(N, L)
        self._obl = cfg.Bo if cfg.level2 else 1           # o-loop length inside a round
        u, b, v, w1 = cfg.u_operand, cfg.b_operand, cfg.v_operand, cfg.w1_operand
        # slice pairs of each level: (a slice, x slice, shift)
        self._pairs1 = ([(ju, jb, ou + ob) for ju, ou in enumerate(u.offsets)
                         for jb, ob in enumerate(b.offsets)] if cfg.level1 else [])
        self._pairs2 = ([(jv, jw, ov + ow) for jv, ov in enumerate(v.offsets)
                         for jw, ow in enumerate(w1.offsets)] if cfg.level2 else [])
        self._l1_steps = cfg.Bi * len(self._pairs1)
        self._l2_steps = len(self._pairs2)
        self._NB = min(q, (L + K - 2) // K + 1)
        self._u_rows = _ceil_div(q, self._NB)
        code_bits = max(cfg.code_bits[name] for name in cfg.code_shapes)
        self._code_bits = code_bits
        super().__init__({
            "codes": In(stream.Signature(unsigned(code_bits))),
            "start": In(1),
            "weights": Out(stream.Signature(weights_layout(cfg))),
            "busy": Out(1),
            "loaded": Out(1),
        })

    @classmethod
    def figures(cls, cfg: GeneratorConfig) -> "Generator":
        """An instance read only for its properties (cycle counts, memory bits), never
        elaborated: Amaranth's warning about an unused elaboratable is silenced."""
        model = cls(cfg)
        model._MustUse__silence = True
        return model

    # ---- properties for the testbench, the benchmarks and the synthesis report ----------
    @property
    def cfg(self) -> GeneratorConfig:
        return self._cfg

    @property
    def lanes(self) -> int:
        return self._cfg.lanes

    @property
    def rounds_per_row(self) -> int:
        """``R = ceil(q*K / L)`` beats per output channel."""
        return self._R

    @property
    def n_beats(self) -> int:
        """Beats per pass: ``p * R``."""
        return self._cfg.out_channels * self._R

    @property
    def steps_per_round(self) -> int:
        """Engine cycles per round: ``max(1, cfg.macs_per_weight)``."""
        return max(1, self._obl * (self._l1_steps + self._l2_steps))

    @property
    def latency(self) -> int:
        """Fixed pipeline cycles of a pass beyond ``n_beats * steps_per_round``."""
        return LATENCY

    @property
    def pass_cycles(self) -> int:
        """Cycles from the edge sampling ``start`` to the last beat's handshake, ready high."""
        return self.n_beats * self.steps_per_round + self.latency

    @property
    def cycles_lower_bound(self) -> int:
        """``ceil(p*q*K*macs_per_weight / L)``; both levels off: the number of rounds."""
        cfg = self._cfg
        macs = cfg.n_weights * cfg.macs_per_weight
        if macs == 0:
            return self.n_beats
        return _ceil_div(macs, cfg.lanes)

    @property
    def window_channels(self) -> int:
        """``NB``: input channels one round touches at most (U row width)."""
        return self._NB

    @property
    def memory_shapes(self) -> dict[str, tuple[int, int]]:
        """Memory name -> (depth, word bits); depth at least 2."""
        cfg = self._cfg
        shapes = {}
        if cfg.level1:
            shapes["B"] = (cfg.Bo * cfg.Bi, cfg.K * cfg.qb)
            shapes["U"] = (self._u_rows * cfg.Bo * cfg.Bi, self._NB * cfg.qu)
        else:
            shapes["B"] = (self._R * cfg.Bo, cfg.lanes * cfg.qb)
        if cfg.level2:
            shapes["V"] = (cfg.out_channels * cfg.Bo, cfg.qv)
        # at least two words: a one-word memory has a zero-width address, which Verilog
        # cannot declare
        return {k: (max(2, d), w) for k, (d, w) in shapes.items()}

    @property
    def memory_bits(self) -> dict[str, int]:
        """Memory name -> bits (``depth * word bits``; includes padding of partial rows)."""
        return {k: d * w for k, (d, w) in self.memory_shapes.items()}

    # ---- elaboration ----------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        p, q, K, L, N, R = cfg.out_channels, cfg.in_channels, cfg.K, cfg.lanes, self._N, self._R
        Bo, Bi, obl = cfg.Bo, cfg.Bi, self._obl
        lv1, lv2 = cfg.level1, cfg.level2
        NB, u_rows = self._NB, self._u_rows
        P1, P2 = len(self._pairs1), len(self._pairs2)
        mems = {}
        for name, (depth, width) in self.memory_shapes.items():
            mem = Memory(shape=unsigned(width), depth=depth, init=[])
            m.submodules[f"mem_{name}"] = mem
            mems[name] = mem
        wports = {name: mem.write_port(granularity={"B": cfg.qb, "U": cfg.qu, "V": cfg.qv}[name])
                  for name, mem in mems.items()}

        # ======================= code loader =====================================================
        code = self.codes.payload
        busy = Signal()
        code_fire = Signal()
        m.d.comb += [self.codes.ready.eq(~busy), code_fire.eq(self.codes.valid & self.codes.ready)]
        tensors = list(cfg.code_shapes)                       # B, [U], [V] in load order
        ld_t = Signal(counter_shape(len(tensors)))
        ld_final = Signal()                                   # the beat holds the layer's last code
        tensor_last = {}                                      # name -> "this code is the tensor's last"
        loaded = Signal()
        m.d.comb += self.loaded.eq(loaded)

        if lv1:
            ba = Signal(counter_shape(Bo * Bi))
            bt = Signal(counter_shape(K))
            wp = wports["B"]
            m.d.comb += [wp.addr.eq(ba), wp.data.eq(Cat([code[:cfg.qb]] * K)),
                         wp.en.eq(Mux(code_fire & (ld_t == tensors.index("B")), Const(1, 1) << bt, 0))]
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
            wp = wports["U"]
            m.d.comb += [wp.addr.eq((ucr * Bo + uo) * Bi + ui), wp.data.eq(Cat([code[:cfg.qu]] * NB)),
                         wp.en.eq(Mux(code_fire & (ld_t == tensors.index("U")), Const(1, 1) << ucm, 0))]
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
            wp = wports["B"]
            m.d.comb += [wp.addr.eq(bnd * Bo + bo_), wp.data.eq(Cat([code[:cfg.qb]] * L)),
                         wp.en.eq(Mux(code_fire & (ld_t == tensors.index("B")), Const(1, 1) << bnm, 0))]
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
            wp = wports["V"]
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

        # ======================= stage 0: step controller, memory addresses ======================
        stall = Signal()
        active = Signal()
        pending = Signal()
        j = Signal(counter_shape(p))
        r = Signal(counter_shape(R))
        o = Signal(counter_shape(obl))
        i = Signal(counter_shape(max(1, Bi)))
        kp = Signal(counter_shape(max(1, P1, P2)))
        both = lv1 and lv2
        phase2 = Signal() if both else Const(int(lv2 and not lv1), 1)   # 1 = level-2 step

        last_kp1 = kp == P1 - 1 if P1 else Const(1)
        last_kp2 = kp == P2 - 1 if P2 else Const(1)
        last_i = i == Bi - 1 if lv1 else Const(1)
        if both:
            end_oblock = phase2 & last_kp2
        elif lv1:
            end_oblock = last_kp1 & last_i
        elif lv2:
            end_oblock = last_kp2
        else:
            end_oblock = Const(1)
        end_round = end_oblock & (o == obl - 1)
        end_row = end_round & (r == R - 1)
        end_pass = end_row & (j == p - 1)

        start_req = self.start & loaded & ~code_fire
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
            if both:
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
            if both:
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
            elif lv1:
                with m.If(last_kp1):
                    m.d.sync += kp.eq(0)
                    with m.If(last_i):
                        m.d.sync += i.eq(0)
                    with m.Else():
                        m.d.sync += i.eq(i + 1)
                with m.Else():
                    m.d.sync += kp.eq(kp + 1)
            elif lv2:
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
        # first-term flags: fused accumulators restart per o-block (W1) / per round (W);
        # separate partials restart at i == 0 (level 1) / o == 0 (level 2)
        first1 = ((i == 0) & (kp == 0)) if fused else (i == 0)
        first2 = ((o == 0) & (kp == 0)) if fused else (o == 0)

        rports = {}
        for name, mem in mems.items():
            rports[name] = [mem.read_port(domain="sync")]
        if lv1:
            rports["U"].append(mems["U"].read_port(domain="sync"))
            rb, ub, ua = rports["B"][0], rports["U"][1], rports["U"][0]
            m.d.comb += rb.addr.eq(o_eff * Bi + i)
            m.d.comb += ua.addr.eq((crow * Bo + o_eff) * Bi + i)
            crow_b = Mux(crow + 1 < u_rows, crow + 1, 0) if u_rows > 1 else Const(0, 1)
            m.d.comb += ub.addr.eq((crow_b * Bo + o_eff) * Bi + i)
        else:
            m.d.comb += rports["B"][0].addr.eq(r * Bo + o_eff)
        if lv2:
            m.d.comb += rports["V"][0].addr.eq(j * Bo + o)
        for ports in rports.values():
            for port in ports:
                m.d.comb += port.en.eq(~stall)

        # ======================= stage 1 control (registered from stage 0) =======================
        s1_valid = Signal()
        s1_phase2 = Signal() if both else phase2
        s1_kp = Signal.like(kp)
        s1_first = Signal()
        s1_end_round = Signal()
        s1_last_round = Signal()
        s1_last = Signal()
        s1_rt = Signal.like(rt) if not rt_const else rt
        s1_cmod = Signal.like(cmod) if isinstance(cmod, Signal) else cmod
        with m.If(~stall):
            if both:
                m.d.sync += s1_phase2.eq(phase2)
            m.d.sync += [s1_valid.eq(active), s1_kp.eq(kp),
                         s1_first.eq(Mux(phase2, first2, first1)),
                         s1_end_round.eq(active & end_round), s1_last_round.eq(r == R - 1),
                         s1_last.eq(end_pass)]
            if not rt_const:
                m.d.sync += s1_rt.eq(rt)
            if isinstance(cmod, Signal):
                m.d.sync += s1_cmod.eq(cmod)

        # ======================= stage 1: operand selection, multiply-accumulate =================
        # shared control and operand values are named signals: the netlist builder emits an
        # expression anew at every use, and every lane uses these
        exec1, exec2 = Signal(), Signal()
        m.d.comb += [exec1.eq(s1_valid & ~s1_phase2 & ~stall), exec2.eq(s1_valid & s1_phase2 & ~stall)]
        kp_is = [Signal(name=f"kp_is_{k}") for k in range(max(1, P1, P2))]
        m.d.comb += [sig.eq(s1_kp == k) for k, sig in enumerate(kp_is)]
        s = cfg.engine_bits
        u_op, b_op, v_op, w1_op = cfg.u_operand, cfg.b_operand, cfg.v_operand, cfg.w1_operand
        v_slices = []
        for k, sl in enumerate(operand_slices(rports["V"][0].data, v_op) if lv2 else []):
            sig = Signal(sl.shape(), name=f"v_slice_{k}")
            m.d.comb += sig.eq(sl)
            v_slices.append(sig)

        # per-residue B code (level 1 on): lane m uses residue m % K
        lane_b, lane_u = [], []
        if lv1:
            bword = rports["B"][0].data
            win_all = Cat(rports["U"][0].data, rports["U"][1].data)
            win = Signal(NB * cfg.qu)
            m.d.comb += win.eq(win_all.bit_select(s1_cmod * cfg.qu, NB * cfg.qu) if NB > 1
                               else win_all[:cfg.qu])
            res_code, res_carry = [], []
            for a in range(K):
                if rt_const:
                    res_carry.append(Const(0, 1))
                    res_code.append(bword.word_select(a, cfg.qb))
                else:
                    cond = Signal(name=f"carry_{a}")
                    code_a = Signal(cfg.qb, name=f"bcode_{a}")
                    t_a = Mux(cond, s1_rt + a - K, s1_rt + a)
                    m.d.comb += [cond.eq((s1_rt >= K - a) if a else 0),
                                 code_a.eq(bword.word_select(t_a[:W.bits_for_count(K)], cfg.qb))]
                    res_carry.append(cond)
                    res_code.append(code_a)
            for lane in range(L):
                a = lane % K
                d0 = min(lane // K, NB - 1)
                d1 = min(lane // K + 1, NB - 1)
                lane_b.append(res_code[a])
                if d0 == d1 or rt_const:
                    lane_u.append(win.word_select(d0, cfg.qu))
                else:
                    lane_u.append(Mux(res_carry[a], win.word_select(d1, cfg.qu),
                                      win.word_select(d0, cfg.qu)))
        else:
            bword = rports["B"][0].data
            lane_b = [bword.word_select(lane, cfg.qb) for lane in range(L)]

        mul_shape = signed(s + 1)
        wvals = []
        for lane in range(L):
            a_in = Signal(mul_shape, name=f"a_{lane}")
            x_in = Signal(mul_shape, name=f"x_{lane}")
            prod = Signal(signed(2 * s + 2), name=f"prod_{lane}")
            m.d.comb += prod.eq(a_in * x_in)
            u_sl = operand_slices(lane_u[lane], u_op) if lv1 else []
            b_sl = operand_slices(lane_b[lane], b_op)
            w1_val = None
            if lv1:
                if fused:
                    acc1 = _fused_accumulator(m, f"w1acc_{lane}", self._pairs1, u_op, b_op, Bi,
                                              prod, s1_kp, exec1, s1_first)
                    w1_val = acc1[:cfg.w1_bits].as_signed()
                else:
                    w1_val = _separate_recombination(m, f"w1_{lane}", u_op, b_op, Bi, cfg.w1_bits,
                                                     prod, kp_is, exec1, s1_first)
            w1_sl = (operand_slices(w1_val, w1_op) if lv1 else b_sl) if lv2 else []
            # operand selection: one multiplier per lane
            if lv1:
                with m.If(~s1_phase2):
                    with m.Switch(s1_kp):
                        for k, (ju, jb, sh) in enumerate(self._pairs1):
                            with (m.Case(k) if k < P1 - 1 else m.Default()):
                                m.d.comb += [a_in.eq(u_sl[ju]), x_in.eq(b_sl[jb])]
            if lv2:
                with m.If(s1_phase2):
                    with m.Switch(s1_kp):
                        for k, (jv, jw, sh) in enumerate(self._pairs2):
                            with (m.Case(k) if k < P2 - 1 else m.Default()):
                                m.d.comb += [a_in.eq(v_slices[jv]), x_in.eq(w1_sl[jw])]
            if lv2:
                if fused:
                    w_val = _fused_accumulator(m, f"wacc_{lane}", self._pairs2, v_op, w1_op, Bo,
                                               prod, s1_kp, exec2, s1_first)
                else:
                    w_val = _separate_recombination(m, f"w_{lane}", v_op, w1_op, Bo, cfg.acc_bits,
                                                    prod, kp_is, exec2, s1_first)
            elif lv1:
                w_val = w1_val
            else:
                # both levels off: the weight is the odd value of the B code
                accb = Signal(signed(cfg.qb + 1), name=f"wb_{lane}")
                with m.If(s1_valid & ~stall):
                    m.d.sync += accb.eq(odd_from_code(lane_b[lane], cfg.qb))
                w_val = accb
            wvals.append(w_val[:cfg.acc_bits].as_signed())

        # ======================= emit stage: requantize into the output register =================
        e_valid = Signal()
        e_last_round = Signal()
        e_last = Signal()
        with m.If(~stall):
            m.d.sync += [e_valid.eq(s1_valid & s1_end_round), e_last_round.eq(s1_last_round),
                         e_last.eq(s1_last)]
        out = self.weights
        out_fire = out.valid & out.ready
        m.d.comb += stall.eq(e_valid & out.valid & ~out.ready)
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
                m.d.comb += ext.eq(wvals[lane])
                rq = round_shift_saturate(ext, ext_bits, cfg.out_bits, cfg.shift, cfg.rounding)
                if lane >= N:
                    val = Const(0, signed(cfg.weight_bits))   # never a weight (L > N)
                elif lane >= count_last:
                    val = Mux(e_last_round, 0, rq)
                else:
                    val = rq
                m.d.sync += out.payload.w[lane].eq(val)

        m.d.comb += busy.eq(active | pending | s1_valid | e_valid | out.valid)
        m.d.comb += self.busy.eq(busy)
        return m
