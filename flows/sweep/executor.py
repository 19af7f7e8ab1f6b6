# SPDX-License-Identifier: Apache-2.0
"""One way to run the points of a sweep, in this process, in local processes or on Dask.

:func:`run_tasks` submits every task to a backend, takes the outcomes as they
complete (``concurrent.futures``-style futures: a result or an exception each) and
hands them to ``on_done`` in this process, which alone writes the cache and the
outputs. The three backends differ only in how a future is made and waited for:

* :class:`SerialBackend` -- this process, in submission order (``jobs = 1``);
* :class:`ProcessBackend` -- a :class:`concurrent.futures.ProcessPoolExecutor` of
  spawned workers (``jobs > 1``);
* :class:`DaskBackend` -- an existing Dask cluster (``scheduler = ADDRESS``).
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any, Callable, Hashable, Iterable, Iterator, Sequence

from insitugen.config import GeneratorConfig
from insitugen.errors import ToolError

from .evaluate import Evaluator

__all__ = ["Task", "evaluate_task", "SerialBackend", "ProcessBackend", "DaskBackend",
           "make_backend", "run_tasks"]

#: One point to evaluate: ``(index, cache key, config)``.
Task = tuple[int, str, GeneratorConfig]


def evaluate_task(evaluate: Evaluator, cfg: GeneratorConfig,
                  liberty: str | None) -> tuple[dict[str, Any], float]:
    """Worker side of one point (module level, so it pickles for processes and Dask):
    the metrics and the seconds they took."""
    t0 = time.perf_counter()
    metrics = dict(evaluate(cfg, liberty))
    return metrics, time.perf_counter() - t0


class SerialBackend:
    """Runs each task in this process when its future is waited for, in submission order,
    so progress and the cache advance point by point."""

    def __init__(self) -> None:
        self._calls: dict[int, tuple[Callable, tuple]] = {}

    def __enter__(self) -> SerialBackend:
        return self

    def __exit__(self, *exc) -> None:
        self._calls.clear()

    def submit(self, fn: Callable, *args: Any, name: str) -> Future:
        fut: Future = Future()
        self._calls[id(fut)] = (fn, args)
        return fut

    def key(self, fut: Future) -> Hashable:
        return fut

    def as_completed(self, futures: Sequence[Future]) -> Iterator[Future]:
        for fut in futures:
            fn, args = self._calls.pop(id(fut))
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn(*args))
                except Exception as e:                   # noqa: BLE001 - reported per point
                    fut.set_exception(e)
            yield fut

    def outcome(self, fut: Future) -> Any:
        return fut.exception() or fut.result()

    def cancel(self, futures: Iterable[Future]) -> None:
        for fut in futures:
            fut.cancel()


class ProcessBackend:
    """``workers`` spawned processes: a fresh interpreter each, so no lock held by a thread
    of this process (tqdm's monitor, Dask, torch) is copied into a forked child."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = None

    def __enter__(self) -> ProcessBackend:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                         mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True, cancel_futures=exc[0] is not None)

    def submit(self, fn: Callable, *args: Any, name: str) -> Future:
        return self._pool.submit(fn, *args)

    def key(self, fut: Future) -> Hashable:
        return fut

    def as_completed(self, futures: Sequence[Future]) -> Iterator[Future]:
        from concurrent.futures import as_completed
        return as_completed(futures)

    def outcome(self, fut: Future) -> Any:
        from concurrent.futures.process import BrokenProcessPool
        try:
            return fut.result()
        except BrokenProcessPool as e:
            raise ToolError(
                f"the sweep's worker processes died ({e}); the points finished so far are "
                f"cached. Causes: out of memory (lower --jobs), or a script that calls "
                f"run_sweep without an 'if __name__ == \"__main__\":' guard (worker "
                f"processes are spawned and import the main module)") from None
        except Exception as e:                           # noqa: BLE001 - reported per point
            return e

    def cancel(self, futures: Iterable[Future]) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class DaskBackend:
    """An existing Dask cluster: a scheduler address, a ``Cluster`` or a ``Client``
    (a client made here is closed at the end; one handed in is left open)."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self._client, self._owned = None, False

    def __enter__(self) -> DaskBackend:
        self._client, self._owned = _dask_client(self.scheduler)
        return self

    def __exit__(self, *exc) -> None:
        if self._owned:
            self._client.close()

    def submit(self, fn: Callable, *args: Any, name: str):
        return self._client.submit(fn, *args, pure=False, key=name)

    def key(self, fut) -> Hashable:
        return fut.key

    def as_completed(self, futures: Sequence) -> Iterator:
        from dask.distributed import as_completed
        return iter(as_completed(futures))

    def outcome(self, fut) -> Any:
        try:
            return fut.result()
        except Exception as e:                           # noqa: BLE001 - reported per point
            return e

    def cancel(self, futures: Iterable) -> None:
        self._client.cancel(list(futures))


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
    # the connect timeout is dask's own setting, distributed.comm.timeouts.connect
    try:
        return Client(scheduler), True
    except (OSError, TimeoutError) as e:
        raise ToolError(f"could not connect to the Dask scheduler '{scheduler}': {e}; start "
                        f"the cluster first and pass its address (tcp://HOST:PORT)") from None


def make_backend(jobs: int, scheduler: Any, n_tasks: int):
    """Dask with a scheduler, else local processes for ``jobs > 1``, else this process."""
    if scheduler is not None:
        return DaskBackend(scheduler)
    if jobs > 1:
        return ProcessBackend(min(jobs, n_tasks))
    return SerialBackend()


def run_tasks(backend, evaluate: Evaluator, liberty: str | None, tasks: Sequence[Task],
              on_done: Callable[[Task, Any], None]) -> None:
    """Evaluate every task on ``backend``; call ``on_done(task, outcome)`` in this process
    as each completes (``outcome``: ``(metrics, seconds)`` or the exception it raised).
    An interrupt or a dead worker pool cancels what has not run yet."""
    with backend:
        futures, by_key = [], {}
        for task in tasks:
            index, key, cfg = task
            fut = backend.submit(evaluate_task, evaluate, cfg, liberty,
                                 name=f"insitugen-sweep-{key[:24]}-{index}")
            futures.append(fut)
            by_key[backend.key(fut)] = task
        try:
            for fut in backend.as_completed(futures):
                on_done(by_key[backend.key(fut)], backend.outcome(fut))
        except BaseException:
            backend.cancel(futures)
            raise
