# SPDX-License-Identifier: Apache-2.0
"""Data sets of the training recipes: scikit-learn's digits (shipped, no download), a
harder task generated from them (``digits-hard``: upscaled, warped, noisy) and
CIFAR-10 read from a folder the user gives (binary or Python version); mini-batches and
the crop / flip augmentation.

Nothing here downloads anything. The Python version of CIFAR-10 is a pickle: it is read
with an unpickler that builds only plain containers and numpy arrays of numbers (any
other class or function in the file is refused), so a file cannot run code.
"""

from __future__ import annotations

import importlib
import io
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from insitugen.errors import InsitugenError

from .train_settings import CIFAR_MEAN, CIFAR_STD, DIGITS_SETS

__all__ = ["batches", "random_crop_flip", "digits_data", "hard_digits_data", "digits_set",
           "DIGITS_SETS", "load_cifar10", "normalize_cifar",
           "DataError", "CIFAR_MEAN", "CIFAR_STD", "CIFAR_TRAIN_FILES", "CIFAR_TEST_FILE",
           "CIFAR_PY_TRAIN_FILES", "CIFAR_PY_TEST_FILE"]


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


#: The fixed seed of the generated data set: every training seed sees the same images.
HARD_DIGITS_SEED = 2021


def hard_digits_data(size: int = 16, train_copies: int = 3, test_copies: int = 2,
                     seed: int = HARD_DIGITS_SEED):
    """A harder offline task made from scikit-learn's digits (no download): each 8x8 image
    upscaled (bilinear) to ``size x size``, then per copy a random affine warp (rotation
    +-30 degrees, scale 0.8..1.2, shear +-0.2, shift +-15 % of the side), random contrast
    0.5..1.0, Gaussian noise (sigma 0.2) and a random distractor blob, clipped to [0, 1].
    Train copies come from the digits' train split, test copies from its test split
    (:func:`digits_data` with seed 0), so no test digit is seen in training.
    Deterministic for a given ``seed``. Returns float ``[N, 1, size, size]`` images and
    int64 labels, train and test."""
    for name, v, lo in (("size", size, 8), ("train_copies", train_copies, 1),
                        ("test_copies", test_copies, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise DataError(f"{name} = {v!r} must be an integer >= {lo}")
    xtr, ytr, xte, yte = digits_data(0)
    gen = torch.Generator().manual_seed(seed)

    def warp(x, y, copies):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        x = x.repeat(copies, 1, 1, 1)
        n = len(x)

        def uniform(lo, hi):
            return lo + (hi - lo) * torch.rand(n, generator=gen)
        angle = uniform(-30.0, 30.0) * (torch.pi / 180.0)
        scale = uniform(0.8, 1.2)
        shear = uniform(-0.2, 0.2)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin + shear, uniform(-0.3, 0.3)], 1),
                             torch.stack([sin, cos, uniform(-0.3, 0.3)], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        x = x * uniform(0.5, 1.0)[:, None, None, None]
        # a distractor: a Gaussian blob of random place, width and strength
        coords = torch.linspace(-1.0, 1.0, size)
        cy, cx = uniform(-1.0, 1.0), uniform(-1.0, 1.0)
        width = uniform(0.1, 0.3)
        blob = torch.exp(-((coords[None, :, None] - cy[:, None, None]) ** 2
                           + (coords[None, None, :] - cx[:, None, None]) ** 2)
                         / (2 * width[:, None, None] ** 2))
        x = x + uniform(0.0, 0.8)[:, None, None, None] * blob[:, None]
        x = x + 0.2 * torch.randn(x.shape, generator=gen)
        return x.clamp(0.0, 1.0), y.repeat(copies)

    xtr, ytr = warp(xtr, ytr, train_copies)
    xte, yte = warp(xte, yte, test_copies)
    return xtr.contiguous(), ytr, xte.contiguous(), yte


def digits_set(name: str, seed: int = 0, size: int = 16):
    """The data set ``name`` of :data:`DIGITS_SETS`: ``digits`` (split by ``seed``) or
    ``digits-hard`` (:func:`hard_digits_data` at ``size``, its own fixed seed)."""
    if name == "digits":
        return digits_data(seed)
    if name == "digits-hard":
        return hard_digits_data(size)
    raise DataError(f"dataset '{name}' is unknown: use one of {', '.join(DIGITS_SETS)}")


CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch.bin"
CIFAR_PY_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_PY_TEST_FILE = "test_batch"


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


#: The only globals a CIFAR-10 Python batch may name: numpy's array reconstruction, and
#: ``_codecs.encode``, with which Python 3 writes bytes at pickle protocol 2 (pure data).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        if module == "numpy":
            return getattr(np, name)
        # numpy 2 renamed numpy.core to numpy._core; files name either
        mod = module.replace("numpy.core.", "numpy._core.")
        return getattr(importlib.import_module(mod), name)


def _read_cifar_py(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch of the Python version: a pickled dict with ``b'data'`` uint8 ``[N, 3072]``
    and ``b'labels'`` (read as bytes keys, as the files were written by Python 2)."""
    try:
        d = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except Exception as e:  # UnpicklingError, EOFError, ValueError from a damaged file
        raise DataError(f"'{path}' is not a CIFAR-10 Python batch: {e}") from None
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise DataError(f"'{path}' is not a CIFAR-10 Python batch: need a dict with b'data' "
                        f"and b'labels'")
    data = d[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"'{path}': b'data' must be a uint8 array [N, 3072], not "
                        f"{getattr(data, 'dtype', type(data).__name__)} "
                        f"{getattr(data, 'shape', '')}")
    try:
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"'{path}': b'labels' must be a list of integers") from None
    if labels.shape != (len(data),) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise DataError(f"'{path}': b'labels' must hold {len(data)} labels in 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def _find_cifar(path: Path) -> tuple[Path, tuple[str, ...], str, Callable]:
    """The folder, file names and reader of the CIFAR-10 version found at ``path``."""
    versions = ((CIFAR_TRAIN_FILES, CIFAR_TEST_FILE, _read_cifar_bin, "cifar-10-batches-bin"),
                (CIFAR_PY_TRAIN_FILES, CIFAR_PY_TEST_FILE, _read_cifar_py, "cifar-10-batches-py"))
    for train_files, test_file, reader, sub in versions:
        for cand in (path, path / sub):
            if (cand / test_file).is_file():
                return cand, train_files, test_file, reader
    raise DataError(f"'{path}' holds no CIFAR-10 batches: pass the folder cifar-10-batches-bin "
                    f"(data_batch_1.bin .. data_batch_5.bin, test_batch.bin) or "
                    f"cifar-10-batches-py (data_batch_1 .. data_batch_5, test_batch), or "
                    f"their parent")


def load_cifar10(path: str | Path):
    """CIFAR-10 from the binary version (``cifar-10-batches-bin``: ``data_batch_1..5.bin``,
    ``test_batch.bin``) or the Python version (``cifar-10-batches-py``: ``data_batch_1..5``,
    ``test_batch``, read with the restricted unpickler), given as that folder or its
    parent. Returns uint8 ``[N, 3, 32, 32]`` images and int64 labels, train and test."""
    folder, train_files, test_file, reader = _find_cifar(Path(path))
    missing = [f for f in train_files if not (folder / f).is_file()]
    if missing:
        raise DataError(f"'{folder}' lacks {missing[0]} (CIFAR-10 needs "
                        f"{', '.join(train_files)}, {test_file})")
    parts = [reader(folder / f) for f in train_files]
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    xte, yte = reader(folder / test_file)
    return (torch.from_numpy(np.ascontiguousarray(xtr)), torch.from_numpy(ytr),
            torch.from_numpy(np.ascontiguousarray(xte)), torch.from_numpy(yte))


def normalize_cifar(x: torch.Tensor, std: tuple[float, float, float] = CIFAR_STD) -> torch.Tensor:
    """uint8 CIFAR-10 images -> float, per channel ``(x / 255 - mean) / std`` (the reference
    recipe passes :data:`~golden.train_settings.CIFAR_STD_REFERENCE`)."""
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std
