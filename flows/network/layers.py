# SPDX-License-Identifier: Apache-2.0
"""The layers of a network as the report sees them: shape, feature maps, generator config.

Three sources, one result (a list of :class:`NetLayer` in module order):

* a shipped model name (:data:`golden.models.MODELS`): built, turned into an MLG model
  with the given (Bi, Bo, qb, qu, qv) by :func:`golden.mlgify.mlgify` (the per-layer
  rules of the reference: depthwise convs and the classifier are not generated);
* an MLG checkpoint (:func:`golden.mlgify.save_checkpoint`): its own MLG settings;
* a layer folder written by ``insitugen export`` (``layers.json`` + one config per
  generated layer): each layer's shape and (Bi, Bo, qb, qu, qv) from its config. The
  folder has no feature-map sizes, so the shipped model whose layers it matches (names
  and weight shapes) gives them.

Feature-map sizes come from one forward pass of the model on a zero image (batch 1,
hooks on every conv / linear). Engine and output fields (``engine_bits``, ``lanes``,
``out_bits``, ...) are the report's, the same for every layer: the whole network runs on
one engine. A generated layer whose config the generator cannot take (a float width of
32 bits, a shape out of the config's range) is reported as fetched, with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from insitugen.config import GeneratorConfig, load_config
from insitugen.errors import InsitugenError


class NetworkError(InsitugenError, ValueError):
    """A model, checkpoint or layer folder the network report cannot read."""


@dataclass(frozen=True)
class NetLayer:
    """One conv / linear layer of the network."""

    name: str
    kind: str                          # conv | linear
    weight_shape: tuple[int, ...]      # [p, q/groups, k, k] or [p, q]
    groups: int
    in_hw: tuple[int, int]             # input feature map (linear: (1, 1))
    out_hw: tuple[int, int]            # output feature map (linear: (1, 1))
    positions: int                     # outputs per channel per image (Ho*Wo; linear: tokens)
    cfg: GeneratorConfig | None        # the generator's config; None = weights fetched
    reason: str = ""                   # why the weights are fetched

    @property
    def generated(self) -> bool:
        return self.cfg is not None

    @property
    def weights(self) -> int:
        n = 1
        for d in self.weight_shape:
            n *= d
        return n

    @property
    def macs_per_image(self) -> int:
        """``Ho * Wo * Co * (Ci / groups) * k * k`` (linear: tokens * Co * Ci)."""
        return self.positions * self.weights

    @property
    def terms_per_output(self) -> int:
        """Products summed into one output: ``(Ci / groups) * k * k``."""
        return self.weights // self.weight_shape[0]


def _layer_modules(model) -> dict[str, Any]:
    from torch import nn

    from golden.mlg import MLGLayerBase

    return {n: m for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear, MLGLayerBase))}


def trace_shapes(model, in_channels: int, image_size: int) -> dict[str, tuple]:
    """``name -> (in_hw, out_hw, positions)`` of every conv / linear from one forward pass
    of a ``[1, in_channels, image_size, image_size]`` zero image."""
    import torch

    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise NetworkError(f"--input-size = {image_size!r} must be a positive integer (pixels)")
    seen: dict[str, tuple] = {}
    hooks = []

    def hook(name):
        def record(module, inputs, output):
            x = inputs[0]
            if x.dim() == 4:
                seen[name] = ((int(x.shape[2]), int(x.shape[3])),
                              (int(output.shape[2]), int(output.shape[3])),
                              int(output.shape[2]) * int(output.shape[3]))
            else:       # linear: every leading position but the batch is a token
                tokens = x.numel() // (x.shape[0] * x.shape[-1])
                seen[name] = ((1, 1), (1, 1), int(tokens))
        return record

    for name, m in _layer_modules(model).items():
        hooks.append(m.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, image_size, image_size))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise NetworkError(f"--input-size {image_size} does not fit the model ({first}); "
                           f"use a larger image") from None
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return seen


def _plain_shape(m) -> tuple[int, ...]:
    return tuple(int(d) for d in m.weight.shape)


def _row(name: str, m, trace: dict, cfg: GeneratorConfig | None, reason: str) -> NetLayer:
    from torch import nn

    from golden.mlg import MLGLayerBase

    if name not in trace:
        raise NetworkError(f"layer '{name}' is not used in the model's forward pass: the "
                           f"report cannot size it")
    in_hw, out_hw, positions = trace[name]
    if isinstance(m, MLGLayerBase):
        shape, kind = tuple(m.weight_shape), m.LAYER
        groups = getattr(m, "groups", 1)
    else:
        shape, kind = _plain_shape(m), ("linear" if isinstance(m, nn.Linear) else "conv")
        groups = getattr(m, "groups", 1)
    return NetLayer(name, kind, shape, groups, in_hw, out_hw, positions, cfg, reason)


def _config_or_reason(make) -> tuple[GeneratorConfig | None, str]:
    try:
        return make(), ""
    except InsitugenError as e:
        return None, f"the generator cannot take it: {e}"


def layers_of_model(model, trace: dict, hardware: dict[str, Any],
                    reasons: dict[str, str] | None = None) -> list[NetLayer]:
    """Classify every conv / linear of an (mlgified) model: generated layers get their
    generator config with the ``hardware`` fields; the rest are fetched, with a reason
    (``reasons`` by layer name, e.g. from :class:`golden.mlgify.MLGReport`)."""
    from golden.mlg import MLGLayerBase, QuantLinear, QuantWeight

    reasons = reasons or {}
    rows = []
    for name, m in _layer_modules(model).items():
        if isinstance(m, MLGLayerBase) and m.generated:
            cfg, why = _config_or_reason(lambda m=m: m.generator_config(**hardware))
            rows.append(_row(name, m, trace, cfg, why))
        elif isinstance(m, MLGLayerBase):
            rows.append(_row(name, m, trace, None, "no generation level on"))
        elif isinstance(m, QuantLinear):
            rows.append(_row(name, m, trace, None,
                             reasons.get(name) or f"classifier, {m.bits}-bit, not generated"))
        elif isinstance(m, QuantWeight):
            kind = f"{m.bits}-bit weights" if m.quantizes else "float weights"
            rows.append(_row(name, m, trace, None,
                             reasons.get(name) or f"{kind}, not generated"))
        else:
            rows.append(_row(name, m, trace, None, reasons.get(name) or "float layer"))
    return rows


def from_shipped(name: str, mlg: dict[str, int], hardware: dict[str, Any], *,
                 image_size: int | None = None, in_channels: int | None = None,
                 num_classes: int = 10, classifier_bits: int | None = None) -> list[NetLayer]:
    """A shipped model with one global (Bi, Bo, qb, qu, qv): ``mlg`` holds ``base_in``,
    ``base_out``, ``qb``, ``qu``, ``qv``."""
    from golden.mlgify import mlgify
    from golden.models import MODELS, build_model

    model = build_model(name, num_classes, in_channels)
    _, default_in, default_size = MODELS[name]
    cin = default_in if in_channels is None else in_channels
    trace = trace_shapes(model, cin, default_size if image_size is None else image_size)
    report = mlgify(model, mlg["base_in"], mlg["base_out"], mlg["qb"], mlg["qu"], mlg["qv"],
                    classifier_bits=classifier_bits)
    reasons = {c.name: c.reason for c in report.layers if c.action != "generated"}
    return layers_of_model(model, trace, hardware, reasons)


def from_checkpoint(path: str | Path, hardware: dict[str, Any], *,
                    image_size: int | None = None) -> tuple[list[NetLayer], dict]:
    """An MLG checkpoint; returns the layers and the checkpoint's metadata."""
    from golden.mlgify import load_checkpoint
    from golden.models import MODELS

    model, info = load_checkpoint(path)
    if info["mlg"] is None:
        raise NetworkError(f"checkpoint '{path}' is a plain model (no MLG settings): give an "
                           f"MLG student, or the model name with --base-in/--base-out/--qb/"
                           f"--qu/--qv")
    meta = info["model"]
    size = MODELS[meta["name"]][2] if image_size is None else image_size
    trace = trace_shapes(model, meta["in_channels"], size)
    return layers_of_model(model, trace, hardware), info


def _read_index(folder: Path) -> dict:
    index_path = folder / "layers.json"
    if not index_path.is_file():
        raise NetworkError(f"'{folder}' is not a layer folder of insitugen export (no "
                           f"layers.json): give a model name, a checkpoint or an export folder")
    try:
        index = json.loads(index_path.read_text())
        layers, skipped = index["layers"], index.get("not_exported", {})
        if not isinstance(layers, dict) or not isinstance(skipped, dict):
            raise TypeError
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise NetworkError(f"'{index_path}' is not an index written by insitugen export "
                           f"(needs 'layers' and 'not_exported' tables)") from None
    return {"layers": layers, "not_exported": skipped}


def _match_shipped(configs: dict[str, GeneratorConfig], skipped: dict, num_classes: int):
    """The shipped model (and its input channels) whose conv / linear layers have the
    exported layers' names and weight shapes; None when none matches."""
    from golden.models import MODELS, build_model

    for model_name, (_, default_in, _) in MODELS.items():
        model = build_model(model_name, num_classes, default_in)
        mods = _layer_modules(model)
        first = next(iter(mods))
        cin = default_in
        if first in configs and len(configs[first].weight_shape) == 4:
            cin = configs[first].in_channels * getattr(mods[first], "groups", 1)
            if cin != default_in:
                model = build_model(model_name, num_classes, cin)
                mods = _layer_modules(model)
        if not set(configs) | set(skipped) <= set(mods):
            continue
        if all(_plain_shape(mods[n]) == tuple(c.weight_shape) for n, c in configs.items()):
            return model_name, model, cin
    return None


def from_export_folder(folder: str | Path, hardware: dict[str, Any], *,
                       image_size: int | None = None,
                       num_classes: int = 10) -> tuple[list[NetLayer], str]:
    """A layer folder of ``insitugen export``; returns the layers and the name of the
    shipped model that gave the feature-map sizes."""
    from golden.models import MODELS

    folder = Path(folder)
    index = _read_index(folder)
    configs: dict[str, GeneratorConfig] = {}
    for name, entry in index["layers"].items():
        cfg = load_config(folder / str(entry.get("config", f"{name}.toml")))
        if not isinstance(cfg, GeneratorConfig):
            raise NetworkError(f"'{folder / entry['config']}' is not a generator config")
        configs[name] = cfg
    if not configs:
        raise NetworkError(f"'{folder}/layers.json' lists no exported layer")
    match = _match_shipped(configs, index["not_exported"], num_classes)
    if match is None:
        raise NetworkError(f"layer folder '{folder}': its layers match no shipped model "
                           f"({', '.join(MODELS)}) by name and shape, and layers.json has no "
                           f"feature-map sizes; run insitugen network on the checkpoint it "
                           f"was exported from")
    model_name, model, cin = match
    trace = trace_shapes(model, cin, MODELS[model_name][2] if image_size is None else image_size)
    rows = []
    for name, m in _layer_modules(model).items():
        if name in configs:
            cfg, why = _config_or_reason(lambda c=configs[name]: c.replace(**hardware))
            rows.append(_row(name, m, trace, cfg, why))
        else:
            why = index["not_exported"].get(name, "not in the layer folder")
            rows.append(_row(name, m, trace, None, why))
    return rows, model_name


__all__ = ["NetLayer", "NetworkError", "trace_shapes", "layers_of_model", "from_shipped",
           "from_checkpoint", "from_export_folder"]
