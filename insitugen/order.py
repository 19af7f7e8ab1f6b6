# SPDX-License-Identifier: Apache-2.0
"""The output orders of the weight stream: oihw <-> the order the hardware streams.

numpy and the standard library only (no torch), so the cocotb scoreboard in the
simulator's embedded Python can use it.

* ``"oihw"``: row-major ``W[p, q, k, k]``; row ``j`` (``N = q*K`` weights) is ``R =
  ceil(N / L)`` beats of ``L`` lanes (the last beat of a row holds ``N - (R-1)*L``).
* ``"tile"`` (the w1once product order): tile-major ``[tile][row][lane]``; tile ``r``
  holds columns ``r*L .. min(N, r*L+L) - 1`` of every row's flattened ``q*K`` weights, and
  beat ``r*p + j`` carries tile ``r`` of row ``j``.

Both streams hold every weight exactly once; a permutation maps one to the other.
"""

from __future__ import annotations

import numpy as np

__all__ = ["OUTPUT_ORDERS", "stream_permutation", "to_stream", "from_stream", "beat_counts"]

OUTPUT_ORDERS = ("oihw", "tile")


def _check(order: str, p: int, n: int, lanes: int) -> None:
    if order not in OUTPUT_ORDERS:
        raise ValueError(f"output order must be one of {' | '.join(OUTPUT_ORDERS)}, "
                         f"not {order!r}")
    if min(p, n, lanes) < 1:
        raise ValueError(f"rows, row weights and lanes must be >= 1, not {(p, n, lanes)}")


def stream_permutation(order: str, p: int, n: int, lanes: int) -> np.ndarray:
    """``perm`` (int64, ``p*n``) with ``stream[k] = oihw_flat[perm[k]]`` for ``p`` rows of
    ``n`` weights on ``lanes`` lanes."""
    _check(order, p, n, lanes)
    if order == "oihw":
        return np.arange(p * n, dtype=np.int64)
    tiles = -(-n // lanes)
    col = np.arange(tiles * lanes, dtype=np.int64).reshape(tiles, 1, lanes)   # [tile, 1, lane]
    row = np.arange(p, dtype=np.int64).reshape(1, p, 1)
    index = np.broadcast_to(row * n + col, (tiles, p, lanes))
    keep = np.broadcast_to(col < n, (tiles, p, lanes))
    return index[keep]


def to_stream(oihw, order: str, p: int, n: int, lanes: int) -> np.ndarray:
    """The weights ``oihw`` (any shape holding ``p*n`` values row-major) in stream order,
    flat."""
    flat = np.asarray(oihw).reshape(-1)
    return flat[stream_permutation(order, p, n, lanes)]


def from_stream(stream, order: str, p: int, n: int, lanes: int) -> np.ndarray:
    """The inverse of :func:`to_stream`: stream-order weights back to flat oihw."""
    flat = np.asarray(stream).reshape(-1)
    out = np.empty_like(flat)
    out[stream_permutation(order, p, n, lanes)] = flat
    return out


def beat_counts(order: str, p: int, n: int, lanes: int) -> np.ndarray:
    """Valid lanes (``count``) of each beat of a pass, in stream order."""
    _check(order, p, n, lanes)
    tiles = -(-n // lanes)
    last = n - (tiles - 1) * lanes
    counts = np.full((tiles, p) if order == "tile" else (p, tiles), lanes, np.int64)
    if order == "tile":
        counts[-1, :] = last
    else:
        counts[:, -1] = last
    return counts.reshape(-1)
