# SPDX-License-Identifier: Apache-2.0
"""Code files (``.npz``): load with validation, make random or corner-case codes, save.

A code file holds unsigned integer arrays ``B``, ``U``, ``V`` with the shapes of
:attr:`GeneratorConfig.code_shapes` (``U`` / ``V`` absent when that level is
off; axis order :func:`code_axes`), optional float scales ``sB``, ``sU``, ``sV``
and an optional ``meta`` entry (:func:`code_metadata`) naming the axes, shapes
and code bits it was written for. Nothing else: :func:`load_codes` reads through
:mod:`golden.npz_reader`, which checks every member's header before its data and
never unpickles, so a code file a user is handed cannot run code or exhaust memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from insitugen.config import GeneratorConfig
from insitugen.errors import CodesError, clip
from insitugen.files import save_npz

from .npz_reader import ArraySpec, read_npz

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


#: Name of the optional metadata array of a code file: a 0-d text array holding JSON
#: with the format name, the axis order, shape and code bits of every code array.
META = "meta"
META_FORMAT = "insitugen codes"
META_VERSION = 1
#: Longest metadata text read (characters).
META_MAX_CHARS = 4096
SCALES = ("sB", "sU", "sV")


def code_axes(cfg: GeneratorConfig) -> dict[str, tuple[str, ...]]:
    """Axis names of each code array, in storage order (row-major): ``o`` basis row
    (``Bo``), ``i`` intra-kernel basis (``Bi``), ``c`` input channel (``q``), ``t`` kernel
    tap (``K``, row-major over the ``k x k`` window), ``j`` output channel (``p``)."""
    axes = {"B": ("o", "i", "t") if cfg.level1 else ("o", "c", "t")}
    if cfg.level1:
        axes["U"] = ("o", "c", "i")
    if cfg.level2:
        axes["V"] = ("j", "o")
    return axes


def code_metadata(cfg: GeneratorConfig) -> dict:
    """The metadata a code file written for ``cfg`` carries (see :data:`META`)."""
    return {"format": META_FORMAT, "version": META_VERSION,
            "axes": {k: list(v) for k, v in code_axes(cfg).items()},
            "shapes": {k: list(v) for k, v in cfg.code_shapes.items()},
            "bits": {k: cfg.code_bits[k] for k in cfg.code_shapes}}


def code_specs(cfg: GeneratorConfig) -> dict[str, ArraySpec]:
    """The arrays a code file for ``cfg`` may hold, for :func:`golden.npz_reader.read_npz`."""
    specs = {name: ArraySpec(tuple(shape), "iu", what=f"{cfg.code_bits[name]}-bit unsigned codes")
             for name, shape in cfg.code_shapes.items()}
    specs.update({name: ArraySpec((), "fiu", required=False, what="a scalar scale")
                  for name in SCALES})
    specs[META] = ArraySpec((), "U", required=False, what="JSON text",
                            max_itemsize=4 * META_MAX_CHARS)
    return specs


def load_codes(cfg: GeneratorConfig, path: str | Path) -> dict[str, torch.Tensor]:
    """Read and check the code file at ``path`` for ``cfg``: exactly the arrays of the
    format (each array's shape and dtype checked on its header before its data is
    read), the metadata when present, the code ranges; returns int64 tensors."""
    path = Path(path)
    src = f"code file '{clip(str(path))}'"
    refused = {name: "is present but its level is off in the config (base_in/base_out = 0); "
                     "remove it or turn the level on"
               for name in ("B", "U", "V") if name not in cfg.code_shapes}
    arrays = read_npz(path, code_specs(cfg), label="code file", refused=refused,
                      fix=": save the codes with np.savez(path, B=..., U=..., V=...)")
    if META in arrays:
        check_metadata(cfg, arrays.pop(META), src)
    return validate_codes(cfg, arrays, source=src)


def check_metadata(cfg: GeneratorConfig, meta: np.ndarray, src: str) -> None:
    """Refuse a code file whose metadata names another layout, shape or code width than
    ``cfg``'s: the shapes alone cannot tell ``U`` from its transpose when ``q = Bi``, nor
    3-bit codes from 4-bit ones."""
    try:
        data = json.loads(str(meta[()]))
    except ValueError as e:
        raise CodesError(f"{src}: its '{META}' entry is not JSON: {clip(e)}") from None
    if not isinstance(data, dict) or data.get("format") != META_FORMAT:
        raise CodesError(f"{src}: its '{META}' entry is not insitugen code metadata "
                         f"(format \"{META_FORMAT}\"): remove it")
    if data.get("version") != META_VERSION:
        raise CodesError(f"{src}: its metadata has version {clip(repr(data.get('version')))}; "
                         f"this insitugen reads version {META_VERSION}")
    want = code_metadata(cfg)
    for key in ("axes", "shapes", "bits"):
        got = data.get(key)
        if got != want[key]:
            if isinstance(got, dict):
                names = sorted(set(got) | set(want[key]), key=str)
                name = next(n for n in names if got.get(n) != want[key].get(n))
                raise CodesError(f"{src} was written for {key} {name} = {clip(got.get(name))}, "
                                 f"this config has {want[key].get(name)}: use the config it "
                                 f"was written for (axis order: {_axes_text(cfg)})")
            raise CodesError(f"{src}: its metadata field '{key}' is {clip(repr(got))}, "
                             f"not a table of arrays")


def _axes_text(cfg: GeneratorConfig) -> str:
    return ", ".join(f"{n}[{']['.join(a)}]" for n, a in code_axes(cfg).items())


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


def save_codes(path: str | Path, codes: Mapping[str, torch.Tensor],
               config: GeneratorConfig | None = None, **scales) -> None:
    """Write a code file: the codes (int64), the scales, and with ``config`` the
    :data:`META` entry that :func:`load_codes` checks."""
    arrays = {k: v.numpy().astype(np.int64) for k, v in codes.items()}
    arrays.update({k: np.float64(v) for k, v in scales.items()})
    if config is not None:
        arrays[META] = np.array(json.dumps(code_metadata(config), sort_keys=True))
    save_npz(path, **arrays)
