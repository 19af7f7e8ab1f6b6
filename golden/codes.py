"""Code files (``.npz``): load with validation, make random or corner-case codes, save.

A code file holds unsigned integer arrays ``B``, ``U``, ``V`` with the shapes of
:attr:`GeneratorConfig.code_shapes` (``U`` / ``V`` absent when that level is
off) and optional float scales ``sB``, ``sU``, ``sV``. Files are opened with
``allow_pickle=False``: a code file a user is handed cannot run code.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from insitugen.config import GeneratorConfig
from insitugen.errors import CodesError
from insitugen.files import save_npz

#: Named corner cases of code sets (each a test id).
CORNERS = ("random", "max", "min", "alternating", "zero_heavy")


def validate_codes(cfg: GeneratorConfig, arrays: Mapping[str, np.ndarray],
                   source: str = "codes") -> dict[str, torch.Tensor]:
    """Check names, shapes, integer type and range; return int64 tensors."""
    shapes, bits = cfg.code_shapes, cfg.code_bits
    out = {}
    for name, shape in shapes.items():
        if name not in arrays:
            raise CodesError(f"{source}: array '{name}' is missing: this config needs "
                             f"{', '.join(sorted(shapes))} (shape {name} {shape})")
        a = np.asarray(arrays[name])
        if a.dtype.kind not in "iu":
            raise CodesError(f"{source}: array '{name}' has dtype {a.dtype}; codes must be "
                             f"unsigned integers in [0, {(1 << bits[name]) - 1}]")
        if tuple(a.shape) != tuple(shape):
            raise CodesError(f"{source}: array '{name}' has shape {tuple(a.shape)}, the config "
                             f"needs {tuple(shape)}")
        hi = (1 << bits[name]) - 1
        if a.size and (a.min() < 0 or a.max() > hi):
            bad = a.min() if a.min() < 0 else a.max()
            raise CodesError(f"{source}: array '{name}' holds code {int(bad)} outside "
                             f"[0, {hi}] (q{name.lower()} = {bits[name]} bits)")
        out[name] = torch.from_numpy(a.astype(np.int64))
    extra = sorted(set(k for k in arrays if k in ("B", "U", "V")) - set(shapes))
    if extra:
        raise CodesError(f"{source}: array '{extra[0]}' is present but its level is off in the "
                         f"config (base_in/base_out = 0); remove it or turn the level on")
    return out


def load_order(cfg: GeneratorConfig, codes: Mapping) -> np.ndarray:
    """The codes as the generator's ``codes`` stream takes them: ``B``, then ``U``, then
    ``V`` (those present), each row-major; int64."""
    return np.concatenate([np.asarray(codes[name]).reshape(-1)
                           for name in cfg.code_shapes]).astype(np.int64)


_SAVE_HINT = "with np.savez(path, B=..., U=..., V=...)"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")    # a zip with members / an empty zip
_NPY_MAGIC = b"\x93NUMPY"


def _check_npz_archive(path: Path) -> None:
    """Refuse a file that is not a zip archive before ``np.load`` sees it: for anything
    else ``np.load`` falls back to unpickling and its refusal describes a text file as
    "pickled data", which misdescribes the file."""
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(_ZIP_MAGICS):
        return
    what = ("a single .npy array" if head == _NPY_MAGIC
            else "empty" if not head else "not a zip archive")
    raise CodesError(f"code file '{path}' is not an npz archive ({what}): a code file is "
                     f"a zip of arrays B, U, V; write one {_SAVE_HINT}")


def load_codes(cfg: GeneratorConfig, path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CodesError(f"code file '{path}' does not exist")
    _check_npz_archive(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as e:
        if "pickle" not in str(e):
            raise CodesError(f"code file '{path}' is not a readable .npz archive: "
                             f"{e}") from None
        raise CodesError(f"code file '{path}' holds object arrays (pickled Python objects), "
                         f"which are never loaded: save the codes as integer arrays "
                         f"{_SAVE_HINT}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise CodesError(f"code file '{path}' is not a readable .npz archive: {e}") from None
    return validate_codes(cfg, arrays, source=f"code file '{path}'")


def random_codes(cfg: GeneratorConfig, seed: int,
                 corner: str = "random") -> dict[str, torch.Tensor]:
    """Codes for a config: uniform random, or a named corner case.

    ``max`` / ``min``: every code at its top / bottom (the extreme weights);
    ``alternating``: max and min codes in a checkerboard (large cancellations and
    sign changes); ``zero_heavy``: codes around the middle (small odd values).
    """
    if corner not in CORNERS:
        raise ValueError(f"corner must be one of {CORNERS}, not {corner!r}")
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in cfg.code_shapes.items():
        hi = (1 << cfg.code_bits[name]) - 1
        if corner == "random":
            t = torch.randint(0, hi + 1, shape, generator=gen, dtype=torch.int64)
        elif corner == "max":
            t = torch.full(shape, hi, dtype=torch.int64)
        elif corner == "min":
            t = torch.zeros(shape, dtype=torch.int64)
        elif corner == "alternating":
            idx = torch.arange(int(np.prod(shape)), dtype=torch.int64).reshape(shape)
            t = torch.where(idx % 2 == 0, hi, 0).to(torch.int64)
        else:
            mid = hi // 2
            t = torch.randint(max(0, mid - 1), min(hi, mid + 1) + 1, shape, generator=gen,
                              dtype=torch.int64)
        out[name] = t
    return out


def save_codes(path: str | Path, codes: Mapping[str, torch.Tensor], **scales) -> None:
    arrays = {k: v.numpy().astype(np.int64) for k, v in codes.items()}
    arrays.update({k: np.float64(v) for k, v in scales.items()})
    save_npz(path, **arrays)
