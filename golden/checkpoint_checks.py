# SPDX-License-Identifier: Apache-2.0
"""Checks of a checkpoint's contents before and after its model is built.

:func:`golden.mlgify.load_checkpoint` reads a checkpoint with ``weights_only=True``;
these checks keep its answers to one line: the model sizes it declares are bounded
before any model is built (``num_classes = 10**9`` would ask for hundreds of GB), its
weights must be finite and no weight tensor may be all zero (an export of either is
garbage that passes every later check), and torch's own advice to retry with pickles
allowed never reaches the user.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from insitugen.errors import InsitugenError, clip

#: Upper bounds of a checkpoint's declared model sizes (ImageNet-21k has ~21,800 classes).
MAX_NUM_CLASSES = 100_000
MAX_IN_CHANNELS = 64

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def load_error_line(e: BaseException) -> str:
    """What went wrong in ``torch.load(weights_only=True)``, in one line, without torch's
    hint to retry with ``weights_only=False`` (which would run the file's pickles)."""
    text = _ANSI.sub("", str(e)).strip()
    if "Weights only load failed" in text:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        what = f" (it needs the Python global {found.group(1)})" if found else ""
        return f"it holds pickled Python objects{what}, which are never loaded"
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and "weights_only" not in ln]
    return clip(lines[0] if lines else type(e).__name__, 160)


def check_declared_sizes(src: str, name: Any, num_classes: Any, in_channels: Any,
                         error: type[Exception] = InsitugenError) -> None:
    """Refuse declared model sizes that are not plain integers in range, before the model
    (whose classifier has ``num_classes`` rows) is allocated."""
    for field, value, hi in (("num_classes", num_classes, MAX_NUM_CLASSES),
                             ("in_channels", in_channels, MAX_IN_CHANNELS)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
            raise error(f"{src}: model field '{field}' = {clip(repr(value))} is out "
                                 f"of range: allowed [1, {hi}]")
    if not isinstance(name, str):
        raise error(f"{src}: model field 'name' = {clip(repr(name))} is not a name")


def check_weights(src: str, state_dict: Mapping[str, Any],
                  error: type[Exception] = InsitugenError) -> None:
    """Refuse non-finite weights anywhere and an all-zero weight tensor (a tensor of two or
    more dimensions: a convolution, linear, basis or coefficient weight)."""
    import torch

    for key, t in state_dict.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            continue
        if not bool(torch.isfinite(t).all()):
            bad = "NaN" if bool(torch.isnan(t).any()) else "inf"
            raise error(f"{src}: tensor '{clip(key)}' holds {bad}: the training "
                                 f"diverged or the file is damaged; export a checkpoint "
                                 f"with finite weights")
        if t.ndim >= 2 and t.numel() and not bool(t.any()):
            raise error(f"{src}: weight tensor '{clip(key)}' {list(t.shape)} is all "
                                 f"zero: an untrained or damaged model; export a trained "
                                 f"checkpoint")
