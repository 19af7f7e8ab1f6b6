# SPDX-License-Identifier: Apache-2.0
"""Running a sweep: every point of a space, cached ones read back, new ones evaluated
through one executor (:mod:`flows.sweep.executor`), one row per point."""

from __future__ import annotations

import functools
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from insitugen.errors import ConfigError, InsitugenError

from .cache import cache_key, cache_versions, evaluator_name, read_cache, write_json
from .evaluate import Evaluator, config_figures, evaluate_point
from .executor import Task, make_backend, run_tasks
from .outputs import mark_pareto
from .space import Point, SweepSpace, expand_space

__all__ = ["SweepResult", "run_sweep"]


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


def _failure_message(exc: BaseException) -> str:
    if isinstance(exc, InsitugenError):
        return str(exc)
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return f"internal error: {last}"


def _progress(total: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, file=sys.stderr, disable=not enabled or total == 0,
                desc="sweep", unit="pt", dynamic_ncols=True)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def _plan_row(pt: Point, space: SweepSpace, result: SweepResult, cache_dir: Path,
              todo: list[Task]) -> dict[str, Any]:
    """The row of one point: invalid (with the reason), cached (with its metrics), or
    to evaluate (appended to ``todo``)."""
    row: dict[str, Any] = {"index": pt.index, "status": "", "cached": False,
                           "reason": "", "digest": ""}
    if pt.config is None:                                # the fields as written, and why
        row.update({"block": "generator", **space.base, **pt.params})
        row.update(status="invalid", reason=pt.error)
        result.n_invalid += 1
        return row
    cfg = pt.config
    row["digest"] = cfg.digest()
    row.update(cfg.to_dict())
    row.update(config_figures(cfg))
    key = cache_key(cfg, result.versions, result.evaluator)
    row["cache_key"] = key
    entry = read_cache(cache_dir / f"{key}.json", cfg)
    if entry is not None:
        row.update(entry["metrics"])
        row.update(status="ok", cached=True, seconds=entry.get("seconds"))
        result.n_cached += 1
    else:
        todo.append((pt.index, key, cfg))
    return row


def _finisher(rows: list[dict[str, Any]], result: SweepResult, cache_dir: Path,
              log: Callable[[str], None], bar) -> Callable[[Task, Any], None]:
    """``on_done`` of the executor: cache a new result and fill its row, or record why
    the point failed (a failure is not cached, so a rerun retries it)."""
    def finish(task: Task, outcome: Any) -> None:
        index, key, cfg = task
        row = rows[index]
        if isinstance(outcome, BaseException):
            row.update(status="error", reason=_failure_message(outcome))
            result.n_failed += 1
            log(f"point {index} ({cfg.digest()}) failed: {row['reason']}")
        else:
            metrics, seconds = outcome
            write_json(cache_dir / f"{key}.json",
                       {"config": cfg.to_dict(), "versions": result.versions,
                        "evaluator": result.evaluator, "metrics": metrics,
                        "seconds": round(seconds, 3)})
            row.update(metrics)
            row.update(status="ok", seconds=round(seconds, 3))
            result.n_new += 1
        bar.update()
    return finish


def run_sweep(space: SweepSpace, *, evaluate: Evaluator | None = None,
              liberty: str | Path | None = None, jobs: int = 1, scheduler: Any = None,
              cache_dir: str | Path, versions: Mapping[str, str] | None = None,
              progress: bool = True, log: Callable[[str], None] | None = None,
              target: str = "asic") -> SweepResult:
    """Evaluate every valid point of ``space`` that is not cached; return all rows.

    ``evaluate``: ``(cfg, liberty) -> dict`` of flat metrics, picklable when
    ``jobs > 1`` or with a scheduler (a module-level function or a
    ``functools.partial`` of one); default :func:`~flows.sweep.evaluate.evaluate_point`
    (Yosys). ``versions``: the cache key's versions; default
    :func:`~flows.sweep.cache.cache_versions` (runs ``yosys -V`` once) for the default
    evaluator, insitugen + Amaranth + liberty hash for an injected one. ``scheduler``: a
    Dask scheduler address (or a ``Cluster`` / ``Client``) to run the points on instead
    of local processes. ``log``: where the one-line notes go (default: stderr).
    ``target``: ``asic`` or an FPGA target of the default evaluator (part of the cache
    key: the evaluator's keywords).
    """
    log = log or _stderr
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs must be an integer >= 1, not {jobs!r}")
    t_start = time.perf_counter()
    liberty = str(Path(liberty).resolve()) if liberty is not None else None
    real = evaluate is None
    if real:
        kw: dict[str, Any] = {} if target == "asic" else {"target": target}
        if space.option_sets is not None:
            kw["option_sets"] = space.option_sets
        evaluate = functools.partial(evaluate_point, **kw) if kw else evaluate_point
    if versions is None:
        versions = cache_versions(liberty, yosys=real)
    cache_dir = Path(cache_dir)
    result = SweepResult(space=space, rows=[], versions=dict(versions),
                         evaluator=evaluator_name(evaluate))

    points = expand_space(space)
    todo: list[Task] = []
    rows = [_plan_row(pt, space, result, cache_dir, todo) for pt in points]
    where = (f" (Dask scheduler {scheduler})" if scheduler is not None
             else f" (jobs {jobs})")
    log(f"sweep {space.source}: {len(points)} points, {result.n_cached} cached, "
        f"{len(todo)} new, {result.n_invalid} invalid" + (where if todo else ""))
    if todo:
        bar = _progress(len(todo), progress)
        try:
            run_tasks(make_backend(jobs, scheduler, len(todo)), evaluate, liberty, todo,
                      _finisher(rows, result, cache_dir, log, bar))
        finally:
            bar.close()

    mark_pareto(rows)
    result.rows = rows
    result.seconds = time.perf_counter() - t_start
    return result
