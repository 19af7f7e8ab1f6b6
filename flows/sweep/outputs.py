# SPDX-License-Identifier: Apache-2.0
"""What a sweep leaves behind: the Pareto flags of its rows (:func:`pareto_front`),
``results.csv``, ``results.json`` and the plots (:func:`write_outputs`)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from insitugen import __version__
from insitugen.files import atomic_write_text

from .cache import write_json
from .space import CONFIG_FIELDS

if TYPE_CHECKING:
    from .run import SweepResult

__all__ = ["pareto_front", "mark_pareto", "write_outputs"]


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


def mark_pareto(rows: list[dict[str, Any]]) -> None:
    """Set each row's ``pareto`` flag: on the front of memory saved vs logic added."""
    idx = [i for i, r in enumerate(rows)
           if r["status"] == "ok"
           and isinstance(r.get("memory_saved_bits"), (int, float))
           and isinstance(r.get("logic_added"), (int, float))]
    front = pareto_front([(rows[i]["memory_saved_bits"], rows[i]["logic_added"]) for i in idx])
    for r in rows:
        r["pareto"] = False
    for i, on in zip(idx, front, strict=True):
        rows[i]["pareto"] = on


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


def write_outputs(result: SweepResult, out_dir: str | Path, *,
                  plots: bool = True) -> dict[str, Path]:
    """Write ``results.csv``, ``results.json`` and (``plots``) ``plots/*.png`` under
    ``out_dir``; returns name -> path of everything written."""
    out_dir = Path(out_dir)
    cols = _columns(result.rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in result.rows:
        writer.writerow({k: _csv_cell(r.get(k)) for k in cols})
    written: dict[str, Path] = {}
    csv_path = out_dir / "results.csv"
    atomic_write_text(csv_path, buf.getvalue())
    written["csv"] = csv_path
    json_path = out_dir / "results.json"
    write_json(json_path, {
        "insitugen_version": __version__, "space": result.space.to_json(),
        "versions": result.versions, "evaluator": result.evaluator,
        "counts": {"points": len(result.rows), "cached": result.n_cached,
                   "new": result.n_new, "invalid": result.n_invalid,
                   "failed": result.n_failed},
        "seconds": round(result.seconds, 3), "rows": result.rows})
    written["json"] = json_path
    if plots:
        from .plots import draw_plots
        for name, path in draw_plots(result.rows, out_dir / "plots").items():
            written[name] = path
    return written
