# SPDX-License-Identifier: Apache-2.0
"""``insitugen export CHECKPOINT --out DIR``: a trained MLG model -> the generator's inputs.

For every generated layer (:class:`~golden.mlg.MLGConv2d` /
:class:`~golden.mlg.MLGLinear` with at least one level on) the exporter
writes

* ``DIR/<layer>.toml``: the :class:`~insitugen.config.GeneratorConfig` of the layer
  (shape, effective Bi / Bo, 0 = level off, qb / qu / qv, and the engine / output
  fields given here; default full-precision output, ``out_bits = 0``);
* ``DIR/<layer>.npz``: the unsigned codes ``B``, ``U``, ``V`` in the config's
  ``code_shapes`` and the float scales ``sB``, ``sU``, ``sV``;

and ``DIR/layers.json``, the index: per layer the files, weight shape, the order of its
generator's weight stream (``output_order``: ``oihw``, or ``tile`` for the w1once product
order), convolution arguments, scale product (real weight = scale x integer weight)
and, for the layers not exported (float convs, the 8-bit classifier), the reason.

``insitugen sim DIR/<layer>.toml --codes DIR/<layer>.npz`` then regenerates the
layer's integer weights on the RTL; ``insitugen golden`` does so on the golden model.
Every layer is converted in memory before the first file is written, so a layer that
cannot be exported leaves no partial export behind. A layer cannot be exported when it
has a 32-bit (float) width, uses raw float B, U, V (the reference gate with
``w_bit >= 16``), or when its float forward weight is not ``scale x`` the integer weight
its codes generate (checked for every layer: the hardware must compute what was trained).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from golden.codes import save_codes, validate_codes
from golden.mlg import ExportError, MLGConv2d, MLGLayerBase, QuantConv2d, QuantLinear
from golden.mlgify import load_checkpoint
from insitugen.errors import ConfigError, InsitugenError
from insitugen.files import atomic_write_text

#: Engine / output fields the exporter passes to every layer's config.
HARDWARE_FIELDS = ("engine_bits", "lanes", "out_bits", "shift", "rounding", "recombination",
                   "beat_weights")


def export_model(model, out_dir: str | Path, **hardware) -> dict:
    """Export every generated layer of an MLG model (see module docstring).

    ``hardware``: :data:`HARDWARE_FIELDS` for every layer's config (defaults: the
    config's own, with ``out_bits = 0``, ``shift = 0``). Returns the index written
    to ``layers.json``."""
    unknown = sorted(set(hardware) - set(HARDWARE_FIELDS))
    if unknown:
        raise InsitugenError(f"unknown export option '{unknown[0]}': use "
                             f"{', '.join(HARDWARE_FIELDS)}")
    hardware = {k: v for k, v in hardware.items() if v is not None}
    out_dir = Path(out_dir)
    staged, index = [], {"layers": {}, "not_exported": {}}
    for name, m in model.named_modules():
        if isinstance(m, MLGLayerBase) and m.generated:
            try:
                cfg = m.generator_config(**hardware)
            except ConfigError as e:
                raise ConfigError(f"layer '{name}': {e}") from None
            except ExportError as e:
                raise ExportError(f"layer '{name}': {e}") from None
            codes, scales = m.codes()
            validate_codes(cfg, {k: v.numpy() for k, v in codes.items()},
                           source=f"layer '{name}'")
            scale = 1.0
            for v in scales.values():
                scale *= v
            check_representable(name, m, scale)
            entry = {"config": f"{name}.toml", "codes": f"{name}.npz",
                     "weight_shape": list(m.weight_shape), "layer": cfg.layer,
                     "output_order": cfg.order,
                     "base_in": cfg.base_in, "base_out": cfg.base_out,
                     "scales": scales, "scale": scale, "beat": cfg.beat,
                     "bias": m.bias is not None}
            if isinstance(m, MLGConv2d):
                entry.update(stride=_plain(m.stride), padding=_plain(m.padding),
                             dilation=_plain(m.dilation), groups=m.groups)
            index["layers"][name] = entry
            staged.append((name, cfg, codes, scales))
        elif isinstance(m, QuantLinear):
            index["not_exported"][name] = f"linear, {m.bits}-bit weights (not generated)"
        elif isinstance(m, QuantConv2d):
            index["not_exported"][name] = (f"conv, {m.bits}-bit weights (no generation level "
                                           f"on)")
        elif isinstance(m, MLGLayerBase):
            index["not_exported"][name] = "no generation level on"
        elif type(m).__name__ in ("Conv2d", "Linear"):
            index["not_exported"][name] = "float layer (generation would not save memory)"
    if not staged:
        raise InsitugenError("the model has no generated MLG layer to export (was it "
                             "trained with mlgify and base_in / base_out > 0?)")
    for name, cfg, codes, scales in staged:
        atomic_write_text(out_dir / f"{name}.toml",
                          f"# MLG layer '{name}' exported by insitugen export\n" + cfg.to_toml())
        save_codes(out_dir / f"{name}.npz", codes, config=cfg, **scales)
    atomic_write_text(out_dir / "layers.json", json.dumps(index, indent=2) + "\n")
    return index


#: Relative tolerance of the float-vs-integer check, on the largest weight magnitude:
#: float32 rounding of three quantized factors and a sum of products, far below one step
#: of the coarsest code.
REPRESENTABLE_RTOL = 1e-4


@torch.no_grad()
def check_representable(name: str, m: MLGLayerBase, scale: float) -> None:
    """Refuse a layer whose float forward weight is not ``scale x`` the integer weight
    its codes generate (the golden model of the hardware)."""
    w = m.generated_weight().double()
    w_int = m.integer_weight().double() * scale
    peak = float(w.abs().max())
    err = float((w - w_int).abs().max())
    if not err <= REPRESENTABLE_RTOL * max(peak, torch.finfo(torch.float32).tiny):
        raise ExportError(f"layer '{name}': its float forward weight is not representable by "
                          f"its codes (largest difference {err:.3g} vs weight peak {peak:.3g}): "
                          f"the hardware would compute another weight; retrain or re-quantize "
                          f"the layer")


def _plain(v):
    return list(v) if isinstance(v, (tuple, list)) else v


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, **hardware) -> dict:
    """Load an MLG checkpoint (:func:`golden.mlgify.save_checkpoint`) and export it."""
    model, info = load_checkpoint(checkpoint)
    if info["mlg"] is None:
        raise InsitugenError(f"checkpoint '{checkpoint}' is a plain model (no MLG settings): "
                             f"export takes a trained MLG student")
    return export_model(model, out_dir, **hardware)
