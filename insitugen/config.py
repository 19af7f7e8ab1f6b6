# SPDX-License-Identifier: Apache-2.0
"""The one frozen config, loaded from TOML and validated once, at the edge.

Two blocks can be generated, chosen by the ``block`` key of the flat TOML table:

* ``block = "generator"`` (the default): a whole MLG layer generator,
  :class:`GeneratorConfig` (fields: README, Configs).
* ``block = "recombination"``: the stand-alone bit-level recombination unit,
  :class:`RecombinationConfig`.

Every invalid field raises :class:`~insitugen.errors.ConfigError` naming the
field, the value and what is allowed. Derived widths come from
:mod:`insitugen.widths`, which the golden model and the hardware both call.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Mapping

from . import widths as W
from .errors import ConfigError, clip
from .levels import GenerationLevels
from .paths import describe_file

ROUNDINGS = ("floor", "half_up", "half_even")
MODES = ("parallel", "serial")
RECOMBINATION_FORMS = ("fused", "separate")
#: Product orders of the generator (hdl.generator, insitugen.schedule): ``vb`` (W1-free),
#: ``w1`` (W1 recomputed per weight), ``w1once`` (each W1 computed once per column tile
#: into a W1 buffer; needs ``order = "tile"`` with both levels on).
PRODUCT_ORDERS = ("vb", "w1", "w1once")
#: Extra register stages the generator's datapath may take (see hdl.generator).
MAX_GENERATOR_STAGES = 2
#: Output orders of the weight stream: ``oihw`` (row-major ``W[p, q, k, k]``, beats
#: row-aligned) or ``tile`` (tile-major ``[tile][row][lane]``: tile ``r`` = columns ``r*L ..
#: r*L+L-1`` of the flattened ``q*K`` row, row = output channel; the order of the
#: ``w1once`` product order).
ORDERS = ("oihw", "tile")
LAYERS = ("conv", "linear")
BLOCKS = ("generator", "recombination")

#: Widest value any datapath may carry: the golden model and the cocotb
#: scoreboard use int64, so every derived width must stay at or below this.
MAX_DATAPATH_BITS = 62


def _check_int(name: str, value: Any, lo: int, hi: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"config field '{name}' must be an integer in [{lo}, {hi}], "
                          f"not {clip(repr(value))}{hint}")
    if not lo <= value <= hi:
        raise ConfigError(f"config field '{name}' = {clip(value)} is out of range: allowed "
                          f"[{lo}, {hi}]{hint}")
    return value


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        allowed = " | ".join(choices)
        raise ConfigError(f"config field '{name}' = {clip(repr(value))} is not allowed: use one "
                          f"of {allowed}")
    return value


def _check_slices(name: str, value: Any, bits: int, engine_bits: int) -> tuple[int, ...]:
    if (not isinstance(value, (list, tuple)) or not value
            or any(isinstance(w, bool) or not isinstance(w, int) for w in value)):
        raise ConfigError(f"config field '{name}' must be a non-empty list of slice widths "
                          f"(integers), not {clip(repr(value))}")
    if any(not 1 <= w <= engine_bits for w in value):
        raise ConfigError(f"config field '{name}' = {clip(list(value))}: every slice width "
                          f"must be in [1, engine_bits = {engine_bits}]")
    if sum(value) != bits:
        raise ConfigError(f"config field '{name}' = {clip(list(value))} sums to {sum(value)} "
                          f"bits, but the operand has {bits} bits: the slices must cover it "
                          f"exactly")
    return tuple(value)


class _ConfigBase:
    """Shared loading and hashing of the frozen configs."""

    BLOCK: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, Any]]      # every subclass is a dataclass

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        data = dict(data)
        data.pop("block", None)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown config field '{clip(unknown[0])}' for block "
                              f"'{cls.BLOCK}': known fields are {', '.join(sorted(names))}")
        for f in dataclasses.fields(cls):
            if f.name in data and isinstance(data[f.name], list):
                data[f.name] = tuple(data[f.name])
        try:
            return cls(**data)
        except TypeError as e:  # missing required field
            missing = [f.name for f in dataclasses.fields(cls)
                       if f.default is dataclasses.MISSING and f.name not in data]
            if missing:
                raise ConfigError(f"config field '{missing[0]}' is missing "
                                  f"(block '{cls.BLOCK}')") from None
            raise ConfigError(str(e)) from None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"block": self.BLOCK}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    def to_toml(self) -> str:
        lines = []
        for k, v in self.to_dict().items():
            if isinstance(v, str):
                lines.append(f'{k} = "{v}"')
            elif isinstance(v, list):
                lines.append(f"{k} = [{', '.join(str(x) for x in v)}]")
            else:
                lines.append(f"{k} = {v}")
        return "\n".join(lines) + "\n"

    def digest(self) -> str:
        """Stable hash of the config (for caches and build folder names)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class RecombinationConfig(_ConfigBase):
    """Stand-alone bit-level recombination unit: ``a * x`` from its sliced partials.

    The engine multiplies slice ``j`` of ``a`` by slice ``l`` of ``x`` (optionally
    accumulating ``terms`` such products of a dot product) and hands the unit the
    partials; the unit returns ``sum_{j,l} 2^{o_j + p_l} P[j][l]`` exactly.
    """

    BLOCK = "recombination"

    engine_bits: int = 3
    a_bits: int = 6
    a_encoding: str = "odd"
    a_slices: tuple[int, ...] = ()      # () = fewest slices of at most engine_bits
    x_bits: int = 6
    x_encoding: str = "odd"
    x_slices: tuple[int, ...] = ()
    terms: int = 1                      # products accumulated by the engine per partial
    partial_bits: int = 0               # 0 = derived (fewest bits that hold every partial)
    mode: str = "parallel"
    pipeline_stages: int = 0

    def __post_init__(self):
        _check_int("engine_bits", self.engine_bits, 1, 16)
        for op in ("a", "x"):
            _check_int(f"{op}_bits", getattr(self, f"{op}_bits"), 1, 32)
            _check_choice(f"{op}_encoding", getattr(self, f"{op}_encoding"), W.ENCODINGS)
            sl = getattr(self, f"{op}_slices")
            if sl == () or sl == []:
                sl = W.default_slice_widths(getattr(self, f"{op}_bits"), self.engine_bits)
            else:
                sl = _check_slices(f"{op}_slices", sl, getattr(self, f"{op}_bits"),
                                   self.engine_bits)
            object.__setattr__(self, f"{op}_slices", tuple(sl))
        _check_int("terms", self.terms, 1, 1 << 20)
        _check_int("partial_bits", self.partial_bits, 0, 48,
                   " (0 derives the width from the operands)")
        _check_choice("mode", self.mode, MODES)
        count = len(self.a_slices) * len(self.x_slices)
        _check_int("pipeline_stages", self.pipeline_stages, 0, 4)
        if self.mode == "parallel" and self.pipeline_stages > W.bits_for_count(count) + 1:
            raise ConfigError(
                f"config field 'pipeline_stages' = {self.pipeline_stages} is out of range: a "
                f"{count}-partial shift-add tree has {W.bits_for_count(count)} adder levels, "
                f"allowed [0, {W.bits_for_count(count) + 1}]")
        need = W.recombination_widths(self.a, self.x, self.terms).partial_bits
        if self.partial_bits and self.partial_bits < need:
            raise ConfigError(f"config field 'partial_bits' = {self.partial_bits} is out of "
                              f"range: the partials need at least {need} bits (or use 0)")
        if self.widths.out_bits > MAX_DATAPATH_BITS:
            raise ConfigError(f"config fields a_bits/x_bits/terms/partial_bits give a "
                              f"{self.widths.out_bits}-bit result; at most {MAX_DATAPATH_BITS} "
                              f"bits are supported: use narrower operands or fewer terms")

    @property
    def a(self) -> W.SlicedOperand:
        return W.SlicedOperand(self.a_encoding, self.a_bits, self.a_slices)

    @property
    def x(self) -> W.SlicedOperand:
        return W.SlicedOperand(self.x_encoding, self.x_bits, self.x_slices)

    @cached_property
    def widths(self) -> W.RecombinationWidths:
        return W.recombination_widths(self.a, self.x, self.terms, self.partial_bits)


@dataclass(frozen=True)
class GeneratorConfig(_ConfigBase, GenerationLevels):
    """A whole MLG layer generator (fields: README, Configs).

    ``base_in = 0`` turns the intra-kernel level off (``B`` is ``[Bo, q, K]``);
    ``base_out = 0`` turns the cross-kernel level off (``Bo = p``, no ``V``).
    """

    BLOCK = "generator"

    out_channels: int = 128
    in_channels: int = 128
    kernel: int = 3
    layer: str = "conv"                 # conv | linear (linear: kernel must be 1, W is [p, q])
    base_in: int = 2
    base_out: int = 44
    qb: int = 3
    qu: int = 6
    qv: int = 3
    engine_bits: int = 3
    lanes: int = 64
    out_bits: int = 8
    shift: int = 10
    rounding: str = "half_even"
    order: str = "oihw"
    recombination: str = "fused"        # fused | separate (see hdl.generator)
    product_order: str = "vb"           # vb (W1-free) | w1 (W1 recomputed) | w1once (W1 buffer)
    pipeline_stages: int = 1            # extra datapath register stages, 0..2
    beat_weights: int = 0               # weights per output beat; 0 = auto (see beat)

    def __post_init__(self):
        _check_int("out_channels", self.out_channels, 1, 4096)
        _check_int("in_channels", self.in_channels, 1, 4096)
        _check_choice("layer", self.layer, LAYERS)
        _check_int("kernel", self.kernel, 1, 11)
        if self.layer == "linear" and self.kernel != 1:
            raise ConfigError(f"config field 'kernel' = {self.kernel} is not allowed for "
                              f"layer = \"linear\": a linear layer has kernel = 1")
        _check_int("base_in", self.base_in, 0, 64, " (0 turns the intra-kernel level off)")
        _check_int("base_out", self.base_out, 0, 4096, " (0 turns the cross-kernel level off)")
        _check_int("qb", self.qb, 1, 16)
        _check_int("qu", self.qu, 1, 16)
        _check_int("qv", self.qv, 1, 16)
        _check_int("engine_bits", self.engine_bits, 1, 16)
        _check_int("lanes", self.lanes, 1, 1024)
        _check_int("out_bits", self.out_bits, 0, 32, " (0 = full precision)")
        if self.out_bits == 1:
            raise ConfigError("config field 'out_bits' = 1 is out of range: allowed 0 (full "
                              "precision) or [2, 32]")
        _check_int("shift", self.shift, 0, MAX_DATAPATH_BITS)
        _check_choice("rounding", self.rounding, ROUNDINGS)
        _check_choice("order", self.order, ORDERS)
        _check_choice("recombination", self.recombination, RECOMBINATION_FORMS)
        _check_choice("product_order", self.product_order, PRODUCT_ORDERS)
        _check_int("pipeline_stages", self.pipeline_stages, 0, MAX_GENERATOR_STAGES)
        if (self.pipeline_stages == 2 and self.product_order == "w1" and self.level1
                and self.level2):
            raise ConfigError("config field 'pipeline_stages' = 2 needs product_order = "
                              "\"vb\": the w1 order feeds W1 back into the multiplier, so "
                              "its product cannot be registered (use 0 or 1)")
        _check_int("beat_weights", self.beat_weights, 0, self.lanes,
                   " (0 = auto; otherwise a divisor of lanes)")
        if self.beat_weights and self.lanes % self.beat_weights:
            divisors = [d for d in range(1, self.lanes + 1) if self.lanes % d == 0]
            raise ConfigError(f"config field 'beat_weights' = {self.beat_weights} does not "
                              f"divide lanes = {self.lanes}: use 0 (auto) or one of "
                              f"{clip(divisors)}")
        both = self.level1 and self.level2
        once = self.product_order == "w1once" and both
        if once != (self.order == "tile"):
            raise ConfigError(
                f"config fields 'product_order' = \"{self.product_order}\" and 'order' = "
                f"\"{self.order}\" do not go together: the tile order is the output order of "
                f"product_order = \"w1once\" with both levels on (base_in, base_out > 0) and "
                f"of nothing else: use " + ("order = \"tile\"" if once else
                                            "order = \"oihw\""))
        if once and self.recombination != "fused":
            raise ConfigError("config field 'recombination' = \"separate\" needs another "
                              "product_order: the w1once order sums both levels in one fused "
                              "accumulator per lane (use recombination = \"fused\")")
        if once and self.beat_weights not in (0, self.lanes):
            raise ConfigError(f"config field 'beat_weights' = {self.beat_weights} needs "
                              f"another product_order: the w1once order emits one beat of "
                              f"lanes = {self.lanes} weights per row of a tile (use "
                              f"beat_weights = 0 or {self.lanes})")
        if self.out_bits == 0 and self.shift != 0:
            raise ConfigError(f"config field 'shift' = {self.shift} needs out_bits > 0: with "
                              f"out_bits = 0 (full precision) the shift must be 0")
        if self.acc_bits > MAX_DATAPATH_BITS:
            raise ConfigError(f"config fields qb/qu/qv/base_in/base_out give {self.acc_bits}-bit "
                              f"weights; at most {MAX_DATAPATH_BITS} bits are supported")

    # ---- shape (levels, Bo, Bi: insitugen.levels) ---------------------------------
    @property
    def K(self) -> int:
        return self.kernel * self.kernel

    @property
    def weight_shape(self) -> tuple[int, ...]:
        p, q, k = self.out_channels, self.in_channels, self.kernel
        return (p, q) if self.layer == "linear" else (p, q, k, k)

    @property
    def code_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the code arrays: ``B`` always, ``U`` / ``V`` when their level is on."""
        return self.level_shapes(self.in_channels, self.K)

    @property
    def code_bits(self) -> dict[str, int]:
        return {"B": self.qb, "U": self.qu, "V": self.qv}

    @property
    def n_weights(self) -> int:
        return self.out_channels * self.in_channels * self.K

    # ---- widths -------------------------------------------------------------------
    @property
    def w1_range(self) -> W.Range:
        """Range of the level-1 result ``W1`` (``m_B`` itself when level 1 is off)."""
        if self.level1:
            return W.scale_range(W.product_range(W.odd_range(self.qu), W.odd_range(self.qb)),
                                 self.Bi)
        return W.odd_range(self.qb)

    @property
    def w1_bits(self) -> int:
        return W.signed_bits(*self.w1_range)

    @property
    def acc_range(self) -> W.Range:
        """Range of the full-precision generated weight ``W``."""
        if self.level2:
            return W.scale_range(W.product_range(W.odd_range(self.qv), self.w1_range), self.Bo)
        return self.w1_range

    @property
    def acc_bits(self) -> int:
        return W.signed_bits(*self.acc_range)

    @property
    def weight_bits(self) -> int:
        """Width of a weight on the output stream."""
        return self.out_bits if self.out_bits else self.acc_bits

    @property
    def beat(self) -> int:
        """Weights per beat of the output stream (``beat_weights``; 0 = :func:`auto_beat`).
        A round's ``lanes`` weights leave in ``lanes / beat`` beats through ``beat``
        requantizers (hdl.generator, Requantizer)."""
        if self.product_order == "w1once" and self.level1 and self.level2:
            return self.lanes       # its tile rows leave whole; the drain serves vb and w1
        return self.beat_weights or auto_beat(self.lanes, max(1, self.macs_per_weight))

    # ---- slicing on the engine ------------------------------------------------------
    @property
    def u_operand(self) -> W.SlicedOperand:
        return W.SlicedOperand("odd", self.qu, W.default_slice_widths(self.qu, self.engine_bits))

    @property
    def b_operand(self) -> W.SlicedOperand:
        return W.SlicedOperand("odd", self.qb, W.default_slice_widths(self.qb, self.engine_bits))

    @property
    def v_operand(self) -> W.SlicedOperand:
        return W.SlicedOperand("odd", self.qv, W.default_slice_widths(self.qv, self.engine_bits))

    @property
    def w1_operand(self) -> W.SlicedOperand:
        """``W1`` as the level-2 operand: the odd ``B`` codes when level 1 is off, else a
        two's-complement integer sliced for the engine."""
        if not self.level1:
            return self.b_operand
        return W.SlicedOperand("twos", self.w1_bits,
                               W.default_slice_widths(self.w1_bits, self.engine_bits))

    @property
    def vb_bits(self) -> int:
        """Code width of the shared product ``m_V * m_B`` (an odd integer) as an odd code:
        the fewest ``b`` with ``2^b - 1 >= (2^qv - 1)(2^qb - 1)``."""
        top = ((1 << self.qv) - 1) * ((1 << self.qb) - 1)
        return top.bit_length()

    @property
    def vb_operand(self) -> W.SlicedOperand:
        """``m_V[j,o] * m_B[o,i,t]`` as the engine operand of the ``vb`` product order: an
        odd code of ``vb_bits`` bits, sliced for the engine."""
        return W.SlicedOperand("odd", self.vb_bits,
                               W.default_slice_widths(self.vb_bits, self.engine_bits))

    @property
    def level1_steps(self) -> int:
        """Engine multiplies per ``W1`` value: ``Bi * S_U * S_B`` (0 when level 1 is off)."""
        return self.Bi * self.u_operand.count * self.b_operand.count if self.level1 else 0

    @property
    def level2_steps(self) -> int:
        """Engine multiplies per (weight, basis row ``o``): ``S_V * S_W1`` (0 when off)."""
        return self.v_operand.count * self.w1_operand.count if self.level2 else 0

    @property
    def macs_per_weight(self) -> int:
        """Engine multiplies per generated weight in the chosen ``product_order``.

        Both levels on: ``Bo * Bi * S_U * S_VB`` (``vb``), ``Bo * (level1_steps +
        level2_steps)`` (``w1``, W1 recomputed per weight) or ``Bo * level2_steps``
        (``w1once``: level 1 runs once per column, ``Bo * level1_steps`` per column shared
        by the ``p`` rows, which :class:`insitugen.schedule.Schedule` counts); one level
        off: that level's steps (times ``Bo`` for level 2); both off: 0 (the weight is the
        odd value of its ``B`` code).
        """
        if not self.level2:
            return self.level1_steps
        if self.level1 and self.product_order == "vb":
            return self.Bo * self.Bi * self.u_operand.count * self.vb_operand.count
        if self.level1 and self.product_order == "w1once":
            return self.Bo * self.level2_steps
        return self.Bo * (self.level1_steps + self.level2_steps)

    @property
    def code_memory_bits(self) -> int:
        shapes, bits = self.code_shapes, self.code_bits
        total = 0
        for name, shape in shapes.items():
            n = 1
            for d in shape:
                n *= d
            total += n * bits[name]
        return total

    @property
    def weight_memory_bits(self) -> int:
        """Bits of the full weights at the output width (what the codes replace)."""
        return self.n_weights * self.weight_bits


Config = GeneratorConfig | RecombinationConfig


#: ``beat_weights = 0``: (fewest lanes, beats per round) from the most beats down; the
#: smallest measured forms (BENCHMARKS.md section 10): 4 beats of 16 at 64 lanes, 2 of 8
#: at 16 lanes (where 4 beats cost more in skew registers than they save).
AUTO_BEATS = ((32, 4), (16, 2))


def auto_beat(lanes: int, steps_per_round: int) -> int:
    """The output beat width ``beat_weights = 0`` chooses: ``lanes / D`` with ``D`` = 4
    beats per round from 32 lanes up, 2 from 16 lanes up, else 1 (``lanes``), taking the
    largest such ``D <= `` the target that divides ``lanes`` and is at most
    ``steps_per_round`` (so the skewed drain applies: no bank, no cycle cost)."""
    target = next((d for least, d in AUTO_BEATS if lanes >= least), 1)
    for d in range(target, 1, -1):
        if lanes % d == 0 and steps_per_round >= d:
            return lanes // d
    return lanes


def config_from_dict(data: Mapping[str, Any]) -> Config:
    block = data.get("block", "generator")
    _check_choice("block", block, BLOCKS)
    cls = GeneratorConfig if block == "generator" else RecombinationConfig
    return cls.from_dict(data)


#: Largest TOML file read (bytes): a config or a sweep space is a few lines.
MAX_TOML_BYTES = 1 << 20


def read_toml(path: str | Path, what: str, hint: str) -> dict[str, Any]:
    """Read a TOML file; a missing, non-regular, oversized or malformed file is one
    :class:`ConfigError` that says ``what`` the file was for and, for a missing one, the
    ``hint``. A UTF-8 byte-order mark is skipped (editors on Windows write one)."""
    path = Path(path)
    src = f"{what} '{clip(str(path))}'"
    problem = describe_file(path)
    if problem == "does not exist":
        raise ConfigError(f"{src} does not exist: {hint}")
    if problem:
        raise ConfigError(f"{src} {problem}: {hint}")
    try:
        size = path.stat().st_size
        if size > MAX_TOML_BYTES:
            raise ConfigError(f"{src} is {size} bytes; a {what} is a few lines of TOML "
                              f"(at most {MAX_TOML_BYTES} bytes read)")
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{src} cannot be read: {clip(e.strerror or e)}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{src} is not UTF-8 text (byte {e.start}): save it as UTF-8 "
                          f"TOML") from None
    if not text.strip():    # only whitespace (a bare carriage return is not even TOML)
        return {}
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise ConfigError(f"{src} nests arrays or tables too deeply to read: a config is "
                          f"a flat table of numbers and strings") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{src} is not valid TOML: {clip(e, 120)}") from None
    except ValueError as e:         # int(): an integer literal past 4300 digits
        if "digits" in str(e):
            raise ConfigError(f"{src} holds an integer literal of more than "
                              f"{sys.get_int_max_str_digits()} digits: integers in a config "
                              f"have a few digits") from None
        raise ConfigError(f"{src} holds a value TOML cannot read: {clip(e)}") from None


def require_fields(data: Mapping[str, Any], path: str | Path, what: str) -> None:
    """Refuse a file that names no field at all (empty, whitespace or comments only):
    almost always the wrong file or an unsaved one, and the built-in defaults are one
    line away (``block = "generator"``)."""
    if not data:
        raise ConfigError(f"{what} '{clip(str(path))}' names no field (it is empty or holds "
                          f"only whitespace and comments): to use the built-in defaults "
                          f"write block = \"generator\" in it")


def load_config(path: str | Path) -> Config:
    """Load and validate a config TOML file; every problem is one :class:`ConfigError`."""
    data = read_toml(path, "config file", "pass the path of a TOML config (see examples/)")
    require_fields(data, path, "config file")
    return config_from_dict(data)


def default_config() -> GeneratorConfig:
    """The built-in default of ``insitugen flow``: a ResNet-18 3x3 layer, 128 -> 128
    channels, (Bi, Bo, qb, qu, qv) = (2, 44, 3, 6, 3) on a 3-bit engine of 64
    multipliers, 8-bit output with shift 10 and half-even rounding."""
    return GeneratorConfig()
