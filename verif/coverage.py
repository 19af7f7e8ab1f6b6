# SPDX-License-Identifier: Apache-2.0
"""Functional coverage of the testbenches (issue 6), on cocotb-coverage.

``cocotb_coverage.coverage`` is pure Python (it imports nothing from cocotb), so
it works unchanged under cocotb 2.1; its ``CoverPoint`` decorators hold the
bins and count the hits. This module defines the bins, gives the testbenches
one sampling function per event, and writes / merges per-test coverage files
(JSON, our own format: cocotb-coverage exports only XML / YAML and has no
reset, so a test exports the *difference* to a snapshot taken at its start).

Bins (every point lives under ``insitugen.``):

=================================  ===============================================================
point                              bins
=================================  ===============================================================
``recombination.a_slices``         ``{n}x{enc}``: slice count n = 1..4 of operand a x encoding
                                   odd/twos
``recombination.x_slices``         the same for operand x
``recombination.mode``             ``parallel``, ``serial``
``recombination.pipeline_stages``  ``0``, ``1``, ``2+``
``requant.floor``                  ``tie_pos``, ``tie_neg``: a value exactly halfway between two
                                   outputs (remainder ``2^(shift-1)``), positive / negative
``requant.half_up``                ``tie_pos``, ``tie_neg`` (rounding away from zero both ways)
``requant.half_even``              ``tie_pos``, ``tie_neg``, ``tie_to_even_down`` (even quotient
                                   kept), ``tie_to_even_up`` (odd quotient rounded up)
``requant.saturation``             ``high``, ``low`` (clamped at the +/- rail), ``in_range``
``codes.B`` / ``codes.U`` /        ``zero`` (code 0), ``max`` (code 2^bits - 1) seen in a code set
``codes.V``
``backpressure``                   ``no_stall``, ``stall_first_beat`` (first beat of a pass waited),
                                   ``stall_middle_beat``, ``stall_last_beat``,
                                   ``long_stall_8plus`` (a beat waited >= 8 cycles), from the
                                   output stream's protocol monitor
``generator.beat``                 ``one_per_round`` (beat = lanes), ``drained`` (beat < lanes:
                                   several beats per round), ``drain_stalls`` (the drain
                                   stalls the datapath: fewer steps per round than beats),
                                   ``partial_last_beat`` (a row's last beat holds fewer than
                                   beat weights)
``generator.events``               ``reload_while_idle``, ``regenerate_back_to_back``,
                                   ``reset_mid_load``, ``reset_mid_generation`` (each then
                                   followed by a correct pass)
=================================  ===============================================================

Sampling: :func:`sample_recombination_config`, :func:`sample_requant` (the
full-precision values entering the requantizer, an array), :func:`sample_codes`,
:func:`sample_stream` (the counters of a stream's protocol monitor,
:mod:`verif.protocol`), :func:`sample_generator_event`. Each sampler hits
each bin at most once per call, so a bin's count is "sample calls (layers,
streams) that hit it", not elements -- cheap on million-weight layers.

Who samples: :func:`verif.runner.run_sim`, in the process that runs
the golden model, when a coverage folder is set (``coverage_dir`` or
``$INSITUGEN_COVERAGE_DIR``): the config, codes and requantizer inputs of the
stimulus, then -- only once the run has passed every check -- the output
stream's monitor counters and the generator events the testbench reports, and
writes one file per run. ``tests/conftest.py`` points every run of the test
suite at one folder and merges the files into the report at the end.

Files: :class:`CoverageSession` (``session.write(path, test=...)``) writes
``{"format": FORMAT, "test": name, "points": {point: {"bins": {bin: hits},
"at_least": n}}}``; :func:`merge_files` sums them; :func:`format_summary` /
:func:`write_report` list each bin, its hits and the missing bins.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from cocotb_coverage.coverage import CoverPoint, coverage_db

from insitugen.config import (
    MAX_GENERATOR_STAGES,
    ORDERS,
    PRODUCT_ORDERS,
    RECOMBINATION_FORMS,
    ROUNDINGS,
)
from insitugen.errors import InsitugenError
from insitugen.schedule import Schedule
from insitugen.widths import ENCODINGS

__all__ = ["FORMAT", "point_names", "point_bins", "sample_recombination_config",
           "sample_requant", "sample_codes", "sample_generator_config", "sample_stream",
           "sample_generator_event",
           "GENERATOR_EVENTS", "CoverageSession", "merge_files", "missing_bins",
           "format_summary", "write_report", "write_folder_report", "REPORT_STEM"]

FORMAT = "insitugen-coverage-1"
PREFIX = "insitugen"
GENERATOR_EVENTS = ("reload_while_idle", "regenerate_back_to_back", "reset_mid_load",
                    "reset_mid_generation")

_SAMPLERS: dict[str, Any] = {}
_BINS: dict[str, tuple[str, ...]] = {}
_AT_LEAST: dict[str, int] = {}


def _define(point: str, bins: Sequence[str], at_least: int = 1) -> None:
    name = f"{PREFIX}.{point}"

    @CoverPoint(name, xf=lambda label: label, bins=list(bins), at_least=at_least)
    def sample(label):
        return None

    _SAMPLERS[name] = sample
    _BINS[name] = tuple(bins)
    _AT_LEAST[name] = at_least


_define("recombination.a_slices", [f"{n}x{e}" for n in range(1, 5) for e in ENCODINGS])
_define("recombination.x_slices", [f"{n}x{e}" for n in range(1, 5) for e in ENCODINGS])
_define("recombination.mode", ["parallel", "serial"])
_define("recombination.pipeline_stages", ["0", "1", "2+"])
_define("requant.floor", ["tie_pos", "tie_neg"])
_define("requant.half_up", ["tie_pos", "tie_neg"])
_define("requant.half_even", ["tie_pos", "tie_neg", "tie_to_even_down", "tie_to_even_up"])
_define("requant.saturation", ["high", "low", "in_range"])
for _t in ("B", "U", "V"):
    _define(f"codes.{_t}", ["zero", "max"])
_define("backpressure", ["no_stall", "stall_first_beat", "stall_middle_beat", "stall_last_beat",
                         "long_stall_8plus"])
_define("generator.events", list(GENERATOR_EVENTS))
# the generator forms of the config: every product order, register-stage count and
# recombination form must have run (bins from the config's own domain)
_define("generator.product_order", list(PRODUCT_ORDERS))
_define("generator.pipeline_stages", [str(n) for n in range(MAX_GENERATOR_STAGES + 1)])
_define("generator.recombination", list(RECOMBINATION_FORMS))
# the output beat (beat_weights): one beat per round, or a round drained in several beats
# through shared requantizers, with and without drain stalls, and a row's partial last beat
_define("generator.beat", ["one_per_round", "drained", "drain_stalls", "partial_last_beat"])
_define("generator.order", list(ORDERS))            # the output order of the weight stream


def point_names() -> list[str]:
    return list(_SAMPLERS)


def point_bins(name: str) -> tuple[str, ...]:
    return _BINS[name]


def _hit(point: str, labels: Iterable[str]) -> None:
    name = f"{PREFIX}.{point}"
    for label in labels:
        if label not in _BINS[name]:
            raise ValueError(f"coverage point '{name}' has no bin '{label}'")
        _SAMPLERS[name](label)


# ---- sampling -------------------------------------------------------------------------------

def sample_recombination_config(cfg) -> None:
    """Slice counts x encodings, mode and pipeline depth of a RecombinationConfig
    (slice counts above 4 fall in no bin)."""
    for op, point in ((cfg.a, "a_slices"), (cfg.x, "x_slices")):
        if op.count <= 4:
            _hit(f"recombination.{point}", [f"{op.count}x{op.encoding}"])
    _hit("recombination.mode", [cfg.mode])
    stages = cfg.pipeline_stages
    _hit("recombination.pipeline_stages", [str(stages) if stages < 2 else "2+"])


def sample_generator_config(cfg) -> None:
    """Output beat of a GeneratorConfig; its product order, register stages and
    recombination form (only where a multiply runs: with both levels off none of them
    shapes the datapath)."""
    sched = Schedule(cfg)
    beat = ["one_per_round" if sched.beat == cfg.lanes else "drained"]
    beat += ["drain_stalls"] * (sched.drain_stall_cycles > 0)
    beat += ["partial_last_beat"] * (sched.row_weights % sched.beat != 0)
    _hit("generator.beat", beat)
    if cfg.level1 or cfg.level2:
        _hit("generator.product_order", [cfg.product_order])
        _hit("generator.pipeline_stages", [str(cfg.pipeline_stages)])
        _hit("generator.recombination", [cfg.recombination])
        _hit("generator.order", [cfg.order])


def sample_requant(values, *, shift: int, rounding: str, out_bits: int) -> None:
    """Ties of the rounding mode and saturation, over the full-precision values entering
    the requantizer (any int array; ``out_bits = 0``: nothing to sample)."""
    from golden.arith import as_int64, round_shift
    from insitugen.widths import twos_range

    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, not {rounding!r}")
    if out_bits == 0:
        return
    v = as_int64(values).reshape(-1)
    labels = []
    if shift > 0:
        q = v >> shift
        tie = (v - (q << shift)) == (1 << (shift - 1))
        if bool((tie & (v >= 0)).any()):
            labels.append("tie_pos")
        if bool((tie & (v < 0)).any()):
            labels.append("tie_neg")
        if rounding == "half_even":
            if bool((tie & ((q & 1) == 0)).any()):
                labels.append("tie_to_even_down")
            if bool((tie & ((q & 1) == 1)).any()):
                labels.append("tie_to_even_up")
    _hit(f"requant.{rounding}", labels)
    r = round_shift(v, shift, rounding)
    lo, hi = twos_range(out_bits)
    sat = []
    if bool((r > hi).any()):
        sat.append("high")
    if bool((r < lo).any()):
        sat.append("low")
    if bool(((r >= lo) & (r <= hi)).any()):
        sat.append("in_range")
    _hit("requant.saturation", sat)


def sample_codes(tensor: str, codes, bits: int) -> None:
    """Whether a code set of tensor ``B`` / ``U`` / ``V`` holds code 0 and code ``2^bits - 1``."""
    from golden.arith import as_int64

    if tensor not in ("B", "U", "V"):
        raise ValueError(f"tensor must be B, U or V, not {tensor!r}")
    c = as_int64(codes)
    labels = []
    if bool((c == 0).any()):
        labels.append("zero")
    if bool((c == (1 << bits) - 1).any()):
        labels.append("max")
    _hit(f"codes.{tensor}", labels)


def sample_stream(counts) -> None:
    """Back-pressure bins from a stream's protocol-monitor counters
    (:data:`verif.protocol.COUNTERS`, as ``read_monitor`` returns them)."""
    labels = [label for label, counter in (("no_stall", "beats_no_stall"),
                                           ("stall_first_beat", "stalled_first"),
                                           ("stall_middle_beat", "stalled_middle"),
                                           ("stall_last_beat", "stalled_last"),
                                           ("long_stall_8plus", "long_stalls"))
              if int(counts[counter]) > 0]
    _hit("backpressure", labels)


def sample_generator_event(event: str) -> None:
    """One of :data:`GENERATOR_EVENTS`: ``reload_while_idle`` (codes loaded between
    passes), ``regenerate_back_to_back`` (a start accepted while a pass runs, no reload
    between), ``reset_mid_load`` / ``reset_mid_generation`` (reset asserted there)."""
    _hit("generator.events", [event])


# ---- per-test files -------------------------------------------------------------------------

def _current() -> dict[str, dict[str, Any]]:
    out = {}
    for name in _SAMPLERS:
        item = coverage_db[name]
        out[name] = {"bins": {str(b): int(h) for b, h in item.detailed_coverage.items()},
                     "at_least": _AT_LEAST[name]}
    return out


class CoverageSession:
    """Coverage of one test: hits since this object was created (cocotb-coverage keeps
    one process-wide database without a reset, so a test subtracts its start)."""

    def __init__(self):
        self._base = _current()

    def snapshot_delta(self) -> dict[str, dict[str, Any]]:
        now = _current()
        for name, point in now.items():
            base = self._base[name]["bins"]
            point["bins"] = {b: h - base.get(b, 0) for b, h in point["bins"].items()}
        return now

    def write(self, path, *, test: str | None = None) -> dict[str, Any]:
        """Write this test's coverage file (atomically) and return its content."""
        from insitugen.files import atomic_write

        data = {"format": FORMAT, "test": test or Path(path).stem,
                "points": self.snapshot_delta()}
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
        return json.loads(text)


# ---- merging and reporting ---------------------------------------------------------------------

def _load(path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InsitugenError(f"coverage file '{path}' does not exist: pass files written by "
                             f"CoverageSession.write")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InsitugenError(f"coverage file '{path}' is not valid JSON: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InsitugenError(f"coverage file '{path}' has format "
                             f"{data.get('format') if isinstance(data, dict) else None!r}, "
                             f"expected {FORMAT!r}")
    return data


def merge_files(paths: Iterable) -> dict[str, Any]:
    """Sum the hits of per-test coverage files; bins missing from a file count 0.

    Returns ``{"format", "tests", "points": {point: {"bins", "at_least"}},
    "covered_bins", "total_bins", "missing": {point: [bins]}}``.
    """
    tests, points = [], {}
    for path in paths:
        data = _load(path)
        tests.append(data.get("test") or Path(path).stem)
        for name, point in data["points"].items():
            merged = points.setdefault(name, {"bins": {},
                                              "at_least": int(point.get("at_least", 1))})
            merged["at_least"] = max(merged["at_least"], int(point.get("at_least", 1)))
            for b, h in point["bins"].items():
                merged["bins"][b] = merged["bins"].get(b, 0) + int(h)
    out = {"format": FORMAT, "tests": tests, "points": dict(sorted(points.items()))}
    out["missing"] = missing_bins(out)
    out["total_bins"] = sum(len(p["bins"]) for p in points.values())
    out["covered_bins"] = out["total_bins"] - sum(len(v) for v in out["missing"].values())
    return out


def missing_bins(merged: dict[str, Any]) -> dict[str, list[str]]:
    """Bins hit fewer than ``at_least`` times, per point (points without any omitted)."""
    out = {}
    for name, point in merged["points"].items():
        miss = [b for b, h in point["bins"].items() if h < point.get("at_least", 1)]
        if miss:
            out[name] = miss
    return out


def format_summary(merged: dict[str, Any]) -> str:
    """Plain-text coverage report: every point, every bin with its hits, missing bins flagged."""
    total, covered = merged["total_bins"], merged["covered_bins"]
    pct = 100.0 * covered / total if total else 100.0
    lines = [f"functional coverage: {covered}/{total} bins ({pct:.1f}%) over "
             f"{len(merged['tests'])} test(s)"]
    for name, point in merged["points"].items():
        miss = set(merged["missing"].get(name, ()))
        n = len(point["bins"])
        lines.append(f"  {name}: {n - len(miss)}/{n}")
        for b, h in point["bins"].items():
            lines.append(f"    {b:22s} {h:8d}{'   MISSING' if b in miss else ''}")
    if merged["missing"]:
        lines.append("missing: " + "; ".join(f"{p}: {', '.join(bs)}"
                                             for p, bs in merged["missing"].items()))
    return "\n".join(lines) + "\n"


def write_report(paths: Iterable, json_path, *, text_path=None) -> dict[str, Any]:
    """Merge per-test files into ``json_path`` (and a text summary into ``text_path``)."""
    from insitugen.files import atomic_write

    merged = merge_files(paths)
    blob = json.dumps(merged, indent=1) + "\n"
    atomic_write(json_path, lambda tmp: Path(tmp).write_text(blob))
    if text_path is not None:
        text = format_summary(merged)
        atomic_write(text_path, lambda tmp: Path(tmp).write_text(text))
    return merged


#: File names of a merged report in its folder (``.json`` and the text summary ``.txt``).
REPORT_STEM = "functional_coverage"


def write_folder_report(parts_dir, out_dir) -> dict[str, Any]:
    """Merge every per-run file in ``parts_dir`` into ``out_dir/functional_coverage.json``
    and ``.txt`` (the test suite's and ``insitugen sim --coverage``'s report)."""
    out_dir = Path(out_dir)
    return write_report(sorted(Path(parts_dir).glob("*.json")), out_dir / f"{REPORT_STEM}.json",
                        text_path=out_dir / f"{REPORT_STEM}.txt")

