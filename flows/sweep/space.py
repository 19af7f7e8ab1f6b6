# SPDX-License-Identifier: Apache-2.0
"""The space file of a sweep: parsing and validation (:func:`parse_space`,
:func:`load_space`) and expansion into points (:func:`expand_space`)."""

from __future__ import annotations

import dataclasses
import itertools
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from insitugen.config import GeneratorConfig
from insitugen.errors import ConfigError, clip

__all__ = ["SweepSpace", "RangeAxis", "Point", "parse_space", "load_space", "expand_space",
           "CONFIG_FIELDS", "MAX_POINTS", "SYNTH_FLAGS"]

#: Fields of the generator config (the only keys a space may set).
CONFIG_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(GeneratorConfig))

#: Most points one space may expand to (a typo like lanes = {min=1, max=100000}
#: in a grid would otherwise run for weeks).
MAX_POINTS = 100_000

#: Flags a space's ``[synth] option_sets`` may use (options of Yosys' ``synth``).
SYNTH_FLAGS = ("-booth", "-arith_tree")

_RANDOM_KEYS = ("samples", "seed")
_TOP_KEYS = ("base", "grid", "random", "synth")


@dataclass(frozen=True)
class RangeAxis:
    """An integer range ``min, min + step, ..., <= max`` (``[random]`` only)."""

    lo: int
    hi: int
    step: int = 1

    @property
    def values(self) -> range:
        return range(self.lo, self.hi + 1, self.step)

    def to_json(self) -> dict[str, int]:
        return {"min": self.lo, "max": self.hi, "step": self.step}


@dataclass(frozen=True)
class SweepSpace:
    """A parsed space file: base fields, the swept axes, and how to combine them."""

    base: Mapping[str, Any]
    mode: str                                   # "grid" | "random"
    axes: Mapping[str, tuple | RangeAxis]       # field -> values (in the order written)
    samples: int = 0                            # random: distinct points to draw
    seed: int = 0                               # random: seed of the draw
    source: str = "<space>"
    option_sets: tuple[tuple[str, ...], ...] | None = None   # [synth]; None = all

    @property
    def size(self) -> int:
        """Number of distinct parameter combinations of the axes."""
        n = 1
        for values in self.axes.values():
            n *= len(values.values if isinstance(values, RangeAxis) else values)
        return n

    @property
    def n_points(self) -> int:
        return self.size if self.mode == "grid" else self.samples

    def to_json(self) -> dict[str, Any]:
        axes = {k: (v.to_json() if isinstance(v, RangeAxis) else list(v))
                for k, v in self.axes.items()}
        out: dict[str, Any] = {"source": self.source, "mode": self.mode,
                               "base": dict(self.base), "axes": axes}
        if self.mode == "random":
            out.update(samples=self.samples, seed=self.seed)
        if self.option_sets is not None:
            out["synth"] = {"option_sets": [list(o) for o in self.option_sets]}
        return out


def _space_error(source: str, msg: str) -> ConfigError:
    return ConfigError(f"sweep space '{source}': {msg}")


def _check_field(source: str, table: str, name: str) -> None:
    if name == "block":
        raise _space_error(source, f"[{table}] key 'block' is not allowed: a sweep varies "
                                   f"generator configs only")
    if name not in CONFIG_FIELDS:
        raise _space_error(source, f"[{table}] key '{clip(name)}' is not a generator config field; "
                                   f"known fields are {', '.join(CONFIG_FIELDS)}")


def _scalar_ok(v: Any) -> bool:
    def is_int(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)
    return is_int(v) or isinstance(v, str) or (isinstance(v, list) and all(map(is_int, v)))


def _check_values(source: str, table: str, name: str, values: Any) -> tuple:
    if not isinstance(values, list):
        raise _space_error(source, f"[{table}] '{name}' must be a list of values "
                                   f"(e.g. {name} = [2, 3]), not {clip(repr(values))}")
    if not values:
        raise _space_error(source, f"[{table}] '{name}' is an empty list: give at least one "
                                   f"value")
    for v in values:
        if not _scalar_ok(v):
            raise _space_error(source, f"[{table}] '{name}' has the value {clip(repr(v))}: "
                                       f"values must be integers or strings")
    # Lists stay lists in the TOML (slice lists); make them hashable tuples.
    out = tuple(tuple(v) if isinstance(v, list) else v for v in values)
    if len(set(out)) != len(out):
        raise _space_error(source, f"[{table}] '{name}' lists a value twice: {clip(list(values))}")
    return out


def _check_range(source: str, name: str, spec: Mapping[str, Any]) -> RangeAxis:
    unknown = sorted(set(spec) - {"min", "max", "step"})
    if unknown:
        raise _space_error(source, f"[random] '{name}' range has the unknown key "
                                   f"'{clip(unknown[0])}': use {{min = A, max = B}} with an "
                                   f"optional step")
    for key in ("min", "max"):
        if key not in spec:
            raise _space_error(source, f"[random] '{name}' range needs '{key}': use "
                                       f"{{min = A, max = B}}")
    lo, hi, step = spec["min"], spec["max"], spec.get("step", 1)
    for key, v in (("min", lo), ("max", hi), ("step", step)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise _space_error(source, f"[random] '{name}' range '{key}' must be an integer, "
                                       f"not {v!r}")
    if step < 1:
        raise _space_error(source, f"[random] '{name}' range step = {step}: must be >= 1")
    if lo > hi:
        raise _space_error(source, f"[random] '{name}' range is empty: min = {lo} > "
                                   f"max = {hi}")
    return RangeAxis(lo, hi, step)


def _check_synth(source: str, table: Any) -> tuple[tuple[str, ...], ...] | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise _space_error(source, "'synth' must be a table ([synth])")
    unknown = sorted(set(table) - {"option_sets"})
    if unknown:
        raise _space_error(source, f"[synth] key '{clip(unknown[0])}' is unknown: the only key is "
                                   f"option_sets")
    sets = table.get("option_sets")
    if sets is None:
        return None
    if not isinstance(sets, list) or not sets or not all(isinstance(o, list) for o in sets):
        raise _space_error(source, "[synth] option_sets must be a non-empty list of lists of "
                                   "Yosys synth flags, e.g. [[\"-booth\", \"-arith_tree\"]]")
    for o in sets:
        for flag in o:
            if flag not in SYNTH_FLAGS:
                raise _space_error(source, f"[synth] option_sets has the flag {flag!r}: "
                                           f"allowed flags are {', '.join(SYNTH_FLAGS)}")
    return tuple(tuple(o) for o in sets)


def parse_space(data: Mapping[str, Any], source: str = "<space>") -> SweepSpace:
    """Validate a space (the parsed TOML) into a :class:`SweepSpace`; errors are
    :class:`~insitugen.errors.ConfigError` naming the table and key."""
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise _space_error(source, f"unknown table or key '{clip(unknown[0])}': a space has "
                                   f"[base], one of [grid] or [random], and optionally "
                                   f"[synth]")
    base = data.get("base", {})
    if not isinstance(base, dict):
        raise _space_error(source, "'base' must be a table ([base])")
    for name in base:
        _check_field(source, "base", name)
    if ("grid" in data) == ("random" in data):
        raise _space_error(source, "give exactly one of [grid] (cartesian product) or "
                                   "[random] (samples drawn from the axes)")
    mode = "grid" if "grid" in data else "random"
    table = data[mode]
    if not isinstance(table, dict):
        raise _space_error(source, f"'{mode}' must be a table ([{mode}])")
    axes: dict[str, tuple | RangeAxis] = {}
    samples = seed = 0
    for name, spec in table.items():
        if mode == "random" and name in _RANDOM_KEYS:
            continue
        _check_field(source, mode, name)
        if mode == "random" and isinstance(spec, dict):
            axes[name] = _check_range(source, name, spec)
        else:
            axes[name] = _check_values(source, mode, name, spec)
    if not axes:
        raise _space_error(source, f"[{mode}] sweeps no field: add e.g. engine_bits = [2, 3]")
    if mode == "random":
        for key in _RANDOM_KEYS:
            v = table.get(key)
            if v is None:
                raise _space_error(source, f"[random] needs '{key}' (e.g. {key} = 10)")
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if key == "samples" else 0):
                raise _space_error(source, f"[random] '{key}' must be an integer >= "
                                           f"{1 if key == 'samples' else 0}, not {v!r}")
        samples, seed = table["samples"], table["seed"]
    space = SweepSpace(base=dict(base), mode=mode, axes=axes, samples=samples, seed=seed,
                       source=source, option_sets=_check_synth(source, data.get("synth")))
    if mode == "random" and samples > space.size:
        raise _space_error(source, f"[random] samples = {samples} exceeds the {space.size} "
                                   f"distinct points of the axes: lower samples or use [grid]")
    if space.n_points > MAX_POINTS:
        raise _space_error(source, f"the space has {space.n_points} points, more than "
                                   f"{MAX_POINTS}: narrow the axes or use [random] samples")
    return space


def load_space(path: str | Path) -> SweepSpace:
    """Read and validate a space TOML file."""
    from insitugen.config import read_toml

    data = read_toml(path, "sweep space", "pass the path of a space TOML file (see "
                                          "examples/sweep/)")
    return parse_space(data, source=str(path))


@dataclass(frozen=True)
class Point:
    """One point of a space: the swept values and the config (or why there is none)."""

    index: int
    params: Mapping[str, Any]              # swept field -> value
    config: GeneratorConfig | None
    error: str | None = None               # ConfigError message of an invalid point


def _make_point(index: int, space: SweepSpace, params: dict[str, Any]) -> Point:
    fields = {**space.base, **params}
    try:
        cfg = GeneratorConfig.from_dict(fields)
    except ConfigError as e:
        return Point(index, params, None, str(e))
    return Point(index, params, cfg)


def expand_space(space: SweepSpace) -> list[Point]:
    """All points of a grid (in the order the axes are written, last axis fastest), or
    ``samples`` distinct points of a random space drawn with ``random.Random(seed)``
    (listed in grid order, so the same seed always gives the same file)."""
    names = list(space.axes)
    value_lists = [v.values if isinstance(v, RangeAxis) else v for v in space.axes.values()]
    if space.mode == "grid":
        combos = itertools.product(*value_lists)
    else:
        rng = random.Random(space.seed)
        total = space.size
        if total <= sys.maxsize:
            picked = rng.sample(range(total), space.samples)
        else:                                  # range() longer than sys.maxsize: rejection
            chosen: set[int] = set()
            while len(chosen) < space.samples:
                chosen.add(rng.randrange(total))
            picked = list(chosen)

        def decode(i: int) -> tuple:
            out = []
            for values in reversed(value_lists):
                i, r = divmod(i, len(values))
                out.append(values[r])
            return tuple(reversed(out))

        combos = (decode(i) for i in sorted(picked))
    points = []
    for index, combo in enumerate(combos):
        params = {n: (list(v) if isinstance(v, tuple) else v)
                  for n, v in zip(names, combo, strict=True)}
        points.append(_make_point(index, space, params))
    return points
