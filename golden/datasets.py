"""Data sets of the training recipes: scikit-learn's digits (shipped, no download) and
CIFAR-10's binary version read from a folder the user gives; mini-batches and the
crop / flip augmentation.

Nothing here downloads anything, and no pickle is ever read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from insitugen.errors import InsitugenError

__all__ = ["batches", "random_crop_flip", "digits_data", "load_cifar10", "normalize_cifar",
           "DataError", "CIFAR_MEAN", "CIFAR_STD", "CIFAR_TRAIN_FILES", "CIFAR_TEST_FILE"]


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool,
            gen: torch.Generator | None = None, augment: Callable | None = None):
    """``(x, y)`` mini-batches of ``batch_size`` (shuffled with ``gen``), each image batch
    passed through ``augment(xb, gen)`` when given."""
    idx = torch.randperm(len(x), generator=gen) if shuffle else torch.arange(len(x))
    for i in range(0, len(x), batch_size):
        j = idx[i:i + batch_size]
        xb = x[j]
        if augment is not None:
            xb = augment(xb, gen)
        yield xb, y[j]


def random_crop_flip(x: torch.Tensor, gen: torch.Generator | None, pad: int,
                     flip: bool) -> torch.Tensor:
    """Random crop after zero padding by ``pad`` pixels (and random horizontal flip)."""
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])                  # [n, h]
    cols = (dx[:, None] + torch.arange(w)[None, :])                  # [n, w]
    out = xp[torch.arange(n)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None],
             rows[:, None, :, None], cols[:, None, None, :]]
    if flip:
        f = torch.rand(n, generator=gen) < 0.5
        out[f] = out[f].flip(-1)
    return out


def digits_data(seed: int = 0):
    """scikit-learn's 8x8 digits (shipped with the package, no download): a stratified
    75/25 split, pixels scaled to [0, 1], as float tensors ``[N, 1, 8, 8]``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=0.25, random_state=seed,
                                          stratify=d.target)

    def tensor(a):
        return torch.from_numpy(np.ascontiguousarray(a))
    return tensor(xtr), tensor(ytr).long(), tensor(xte), tensor(yte).long()


CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch.bin"


class DataError(InsitugenError, ValueError):
    """The data folder given with --data is missing files or holds the wrong format."""


def _read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    rec = 1 + 3 * 32 * 32
    if raw.size == 0 or raw.size % rec:
        raise DataError(f"'{path}' is not a CIFAR-10 binary batch: {raw.size} bytes is not a "
                        f"multiple of the {rec}-byte record (1 label byte + 3x32x32 pixels)")
    raw = raw.reshape(-1, rec)
    labels = raw[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"'{path}' holds label {labels.max()} > 9: not CIFAR-10")
    return raw[:, 1:].reshape(-1, 3, 32, 32), labels


def load_cifar10(path: str | Path):
    """CIFAR-10 from the *binary version* (``cifar-10-batches-bin``: ``data_batch_1..5.bin``,
    ``test_batch.bin``), given as that folder or its parent. The Python version is a
    pickle and is refused (it could run code). Returns uint8 ``[N, 3, 32, 32]`` images and
    int64 labels, train and test."""
    path = Path(path)
    for cand in (path, path / "cifar-10-batches-bin"):
        if (cand / CIFAR_TEST_FILE).is_file():
            path = cand
            break
    else:
        if (path / "data_batch_1").is_file() or (path / "cifar-10-batches-py").is_dir():
            raise DataError(f"'{path}' holds the Python (pickle) version of CIFAR-10, which is "
                            f"refused: use the binary version (cifar-10-batches-bin)")
        raise DataError(f"'{path}' holds no CIFAR-10 binary batches: pass the folder "
                        f"cifar-10-batches-bin (data_batch_1.bin .. data_batch_5.bin, "
                        f"test_batch.bin) or its parent")
    missing = [f for f in CIFAR_TRAIN_FILES if not (path / f).is_file()]
    if missing:
        raise DataError(f"'{path}' lacks {missing[0]} (CIFAR-10 binary version needs "
                        f"{', '.join(CIFAR_TRAIN_FILES)}, {CIFAR_TEST_FILE})")
    parts = [_read_cifar_bin(path / f) for f in CIFAR_TRAIN_FILES]
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    xte, yte = _read_cifar_bin(path / CIFAR_TEST_FILE)
    return (torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte),
            torch.from_numpy(yte))


def normalize_cifar(x: torch.Tensor) -> torch.Tensor:
    """uint8 CIFAR-10 images -> float, per channel ``(x / 255 - mean) / std``."""
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std
