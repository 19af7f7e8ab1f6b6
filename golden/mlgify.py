# SPDX-License-Identifier: Apache-2.0
"""Turn any PyTorch model into an MLG model, and save / load MLG checkpoints.

:func:`mlgify` replaces, in place, every ``nn.Conv2d`` and ``nn.Linear`` (plain, or
already quantized as :class:`QuantConv2d` / :class:`QuantLinear`, e.g. the reference's
15-bit teacher):

* a conv (square kernel, zero padding) becomes an :class:`MLGConv2d` when at least one
  generation level passes the reference rule (:func:`generation_levels`); a 1x1 conv
  whose ``Bo >= min(p, q)`` first gets ``Bo = int(0.9 * min(p, q))`` (the reference's
  model-level rule). A conv where no level is on (e.g. depthwise) becomes a
  :class:`QuantConv2d` whose weight is quantized at ``w_bit`` in the forward pass (float
  for ``w_bit >= 16``), as the reference's layer with generation off.
* the classifier (the last linear in module order) is not generated: it becomes a
  :class:`QuantLinear` at ``classifier_bits`` (insitugen gate: 8, 32 when
  qb = qu = qv = 32, as in the reference's all-float row; reference gate: ``w_bit``).
* any other linear becomes an :class:`MLGLinear` when its cross level is on (linear
  layers have k = 1, so cross-only), else a :class:`QuantLinear` at ``w_bit``.

``gate`` chooses when B, U, V are quantized (:data:`golden.mlg.GATES`):
``"insitugen"`` always, at qb / qu / qv (32 = ``tanh / max``); ``"reference"`` only when
``w_bit < 16``, else the raw float factors (qb / qu / qv ignored, counted at 32 bits,
not exportable). Memory accounting of the layers that are not generated: the insitugen
gate counts them at their width (``w_bit``, 32 when float); the reference gate at 32
bits per weight, as the reference does.

Biases (and the classifier's weight) are copied from the replaced module; generated
tensors start from the reference's random init (use :mod:`golden.train`
to project them onto a teacher). Applied to a copy of a trained teacher, the student
thus inherits BatchNorm statistics, biases and every layer that is not generated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from insitugen.errors import InsitugenError, clip
from insitugen.files import atomic_write
from insitugen.paths import describe_file

from .checkpoint_checks import check_declared_sizes, check_weights, load_error_line
from .mlg import (
    FLOAT_BITS,
    GATES,
    REFERENCE_FLOAT_FROM,
    MLGConv2d,
    MLGLayerBase,
    MLGLinear,
    QuantConv2d,
    QuantLinear,
    check_base,
    check_bits,
    generation_levels,
    quantize_model,
)
from .models import MODELS, build_model

CHECKPOINT_FORMAT = "insitugen-mlg-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(InsitugenError, ValueError):
    """A checkpoint file is missing, unreadable, pickled, or not an insitugen MLG checkpoint."""


@dataclass(frozen=True)
class LayerChange:
    """What :func:`mlgify` did to one conv / linear layer."""

    name: str
    kind: str                     # conv | linear
    weight_shape: tuple[int, ...]
    action: str                   # generated | classifier | quantized (not generated)
    base_in: int = 0              # effective Bi (0 = intra level off)
    base_out: int = 0             # effective Bo (0 = cross level off)
    reason: str = ""
    params_before: int = 0
    params_after: int = 0

    @property
    def levels(self) -> str:
        return "+".join(n for n, on in (("intra", self.base_in), ("cross", self.base_out)) if on)


@dataclass
class MLGReport:
    """The per-layer changes made by :func:`mlgify` and the settings used."""

    base_in: int
    base_out: int
    qb: int
    qu: int
    qv: int
    classifier_bits: int
    w_bit: int = 8
    gate: str = "insitugen"
    layers: list[LayerChange] = field(default_factory=list)

    @property
    def generated(self) -> list[LayerChange]:
        return [c for c in self.layers if c.action == "generated"]

    def settings(self) -> dict[str, int | str]:
        return dict(base_in=self.base_in, base_out=self.base_out, qb=self.qb, qu=self.qu,
                    qv=self.qv, classifier_bits=self.classifier_bits, w_bit=self.w_bit,
                    gate=self.gate)

    def to_markdown(self) -> str:
        rows = ["| layer | weight | action | Bi | Bo | params before | params after |",
                "|---|---|---|---|---|---|---|"]
        for c in self.layers:
            what = f"{c.action} ({c.levels})" if c.action == "generated" else c.action
            if c.reason:
                what += f": {c.reason}"
            rows.append(f"| {c.name} | {'x'.join(map(str, c.weight_shape))} | {what} | "
                        f"{c.base_in or '-'} | {c.base_out or '-'} | {c.params_before} | "
                        f"{c.params_after} |")
        return "\n".join(rows)

    def __str__(self) -> str:
        s = self.settings()
        head = (f"mlgify (Bi, Bo, qb, qu, qv) = ({s['base_in']}, {s['base_out']}, {s['qb']}, "
                f"{s['qu']}, {s['qv']}), classifier {s['classifier_bits']} bits, w_bit "
                f"{s['w_bit']}, {s['gate']} gate: "
                f"{len(self.generated)} of {len(self.layers)} layers generated")
        return head + "\n" + self.to_markdown()


def default_classifier_bits(qb: int, qu: int, qv: int) -> int:
    """8, or 32 when every MLG width is 32 (the reference's all-float row)."""
    return 32 if qb == qu == qv == 32 else 8


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def mlgify(model: nn.Module, base_in: int, base_out: int, qb: int, qu: int, qv: int,
           classifier_bits: int | None = None, *, w_bit: int = 8,
           gate: str = "insitugen") -> MLGReport:
    """Replace every conv / linear of ``model`` in place (see module docstring) and return
    the :class:`MLGReport`. ``base_in`` / ``base_out`` are the one global (Bi, Bo); 0 turns
    that level off everywhere. ``w_bit``: the model's weight width (layers not generated;
    the reference gate's switch); ``gate``: ``insitugen`` or ``reference``."""
    check_base("base_in", base_in)
    check_base("base_out", base_out)
    for n, b in (("qb", qb), ("qu", qu), ("qv", qv)):
        check_bits(n, b)
    check_bits("w_bit", w_bit)
    if gate not in GATES:
        raise InsitugenError(f"gate = {gate!r} is unknown: use one of {', '.join(GATES)}")
    reference = gate == "reference"
    if classifier_bits is None:
        classifier_bits = w_bit if reference else default_classifier_bits(qb, qu, qv)
    check_bits("classifier_bits", classifier_bits)
    report = MLGReport(base_in, base_out, qb, qu, qv, classifier_bits, w_bit, gate)

    targets = [(n, m) for n, m in model.named_modules()
               if type(m) in (nn.Conv2d, nn.Linear, QuantConv2d, QuantLinear)]
    linears = [n for n, m in targets if isinstance(m, nn.Linear)]
    classifier = linears[-1] if linears else None
    mlg = dict(qb=qb, qu=qu, qv=qv,
               float_factors=reference and w_bit >= REFERENCE_FLOAT_FROM)
    # the reference counts a layer that is not generated at 4 bytes per weight
    counted = FLOAT_BITS if reference else None

    def keep(name, m, kind, shape, before, reason):
        _set_module(model, name, _quantized_copy(m, w_bit, counted))
        report.layers.append(LayerChange(name, kind, shape, "quantized",
                                         reason=f"{reason}; weight at {_width(w_bit)}",
                                         params_before=before, params_after=before))

    for name, m in targets:
        shape = tuple(m.weight.shape)
        before = m.weight.numel()
        if isinstance(m, nn.Linear):
            if name == classifier:
                new = QuantLinear(m.in_features, m.out_features, m.bias is not None,
                                  bits=classifier_bits)
                _copy_weight(m, new)
                _set_module(model, name, new)
                report.layers.append(LayerChange(name, "linear", shape, "classifier",
                                                 reason=f"{_width(classifier_bits)}, "
                                                        f"not generated",
                                                 params_before=before, params_after=before))
                continue
            bi, bo = generation_levels(m.out_features, m.in_features, 1, base_in, base_out)
            if not (bi or bo):
                keep(name, m, "linear", shape, before, "generation would not save memory")
                continue
            new = MLGLinear(m.in_features, m.out_features, m.bias is not None,
                            base_in=base_in, base_out=base_out, **mlg)
            _copy_bias(m, new)
            _set_module(model, name, new)
            report.layers.append(_generated(name, "linear", shape, new))
            continue

        # conv
        k = m.kernel_size
        if k[0] != k[1]:
            keep(name, m, "conv", shape, before, f"non-square kernel {k}")
            continue
        if m.padding_mode != "zeros":
            keep(name, m, "conv", shape, before, f"padding_mode '{m.padding_mode}'")
            continue
        k = k[0]
        q = m.in_channels // m.groups
        bo_req = base_out
        if k == 1 and base_out >= min(m.out_channels, q):
            bo_req = int(0.9 * min(m.out_channels, q))
        bi, bo = generation_levels(m.out_channels, q, k * k, base_in, bo_req)
        if not (bi or bo):
            why = ("depthwise" if q == 1 and m.groups > 1 else "generation") + \
                " would not save memory"
            keep(name, m, "conv", shape, before, why)
            continue
        new = MLGConv2d(m.in_channels, m.out_channels, k, m.stride, m.padding, m.dilation,
                        m.groups, m.bias is not None, base_in=base_in, base_out=bo_req, **mlg)
        _copy_bias(m, new)
        _set_module(model, name, new)
        report.layers.append(_generated(name, "conv", shape, new))
    return report


def _generated(name: str, kind: str, shape, layer: MLGLayerBase) -> LayerChange:
    after = sum(_numel(s) for s, _ in layer.stored_tensors().values())
    return LayerChange(name, kind, shape, "generated", layer.base_in, layer.base_out,
                       params_before=layer.full_params, params_after=after)


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


@torch.no_grad()
def _copy_bias(old: nn.Module, new: nn.Module) -> None:
    if old.bias is not None:
        new.bias.copy_(old.bias)


@torch.no_grad()
def _copy_weight(old: nn.Module, new: nn.Module) -> None:
    new.weight.copy_(old.weight)
    _copy_bias(old, new)


def _width(bits: int) -> str:
    return f"{bits}-bit" if bits < REFERENCE_FLOAT_FROM else "float"


def _quantized_copy(m: nn.Module, bits: int, counted_bits: int | None) -> nn.Module:
    """``m`` (a conv or linear that is not generated) as a :class:`QuantConv2d` /
    :class:`QuantLinear` at ``bits``, with its weight and bias."""
    if isinstance(m, nn.Linear):
        new = QuantLinear(m.in_features, m.out_features, m.bias is not None, bits=bits,
                          counted_bits=counted_bits)
    else:
        new = QuantConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                          m.dilation, m.groups, m.bias is not None, m.padding_mode, bits=bits,
                          counted_bits=counted_bits)
    _copy_weight(m, new)
    return new


# ---------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------
def build_mlg_model(model_name: str, num_classes: int, in_channels: int | None,
                    mlg: dict[str, int]) -> tuple[nn.Module, MLGReport]:
    """A shipped model, mlgified with ``mlg`` =
    ``{base_in, base_out, qb, qu, qv[, classifier_bits, w_bit, gate]}``. Checkpoints
    written before ``w_bit`` existed kept non-generated layers float: a missing ``w_bit``
    is 32."""
    model = build_model(model_name, num_classes, in_channels)
    keys = ("base_in", "base_out", "qb", "qu", "qv")
    missing = [k for k in keys if k not in mlg]
    if missing:
        raise CheckpointError(f"MLG settings lack '{missing[0]}' (need {', '.join(keys)})")
    report = mlgify(model, *(mlg[k] for k in keys), classifier_bits=mlg.get("classifier_bits"),
                    w_bit=mlg.get("w_bit", FLOAT_BITS), gate=mlg.get("gate", "insitugen"))
    return model, report


def save_checkpoint(path: str | Path, model: nn.Module, model_name: str, num_classes: int,
                    in_channels: int, mlg: dict[str, int] | None,
                    extra: dict[str, Any] | None = None, *, weight_bits: int = FLOAT_BITS) -> None:
    """Save ``state_dict`` + construction metadata (``mlg = None``: a plain teacher;
    ``weight_bits < 32``: a plain model whose weights pass the quantizer, e.g. the
    reference's 15-bit teacher, :func:`golden.mlg.quantize_model`).

    Only tensors, numbers and strings: loadable with ``torch.load(weights_only=True)``.
    Written atomically."""
    if model_name not in MODELS:
        raise CheckpointError(f"unknown model '{model_name}': use one of {', '.join(MODELS)}")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": {"name": model_name, "num_classes": int(num_classes),
                  "in_channels": int(in_channels), "weight_bits": int(check_bits(
                      "weight_bits", weight_bits))},
        "mlg": dict(mlg) if mlg is not None else None,
        "extra": dict(extra or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint written by :func:`save_checkpoint` and load its
    weights. Returns ``(model in eval mode, metadata)``. Pickled objects are refused."""
    path = Path(path)
    problem = describe_file(path)       # missing, a folder, a FIFO (never opened)
    if problem:
        raise CheckpointError(f"checkpoint '{clip(str(path))}' {problem}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError / RuntimeError / zip errors
        raise CheckpointError(f"checkpoint '{path}' cannot be loaded safely (weights_only: "
                              f"tensors and plain data only, no pickled objects): "
                              f"{load_error_line(e)}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint '{path}' is not an insitugen MLG checkpoint (no "
                              f"'format: {CHECKPOINT_FORMAT}'); write it with "
                              f"golden.mlgify.save_checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint '{path}' has version {payload.get('version')!r}; "
                              f"this insitugen reads version {CHECKPOINT_VERSION}")
    meta = payload.get("model") or {}
    try:
        name, nc, cin = meta["name"], meta["num_classes"], meta["in_channels"]
    except (KeyError, TypeError):
        raise CheckpointError(f"checkpoint '{path}': 'model' must hold name, num_classes, "
                              f"in_channels") from None
    check_declared_sizes(f"checkpoint '{path}'", name, nc, cin, error=CheckpointError)
    try:
        if payload.get("mlg") is None:
            model = build_model(name, nc, cin)
            bits = meta.get("weight_bits", FLOAT_BITS)
            if bits != FLOAT_BITS:
                quantize_model(model, check_bits("weight_bits", bits))
        else:
            model, _ = build_mlg_model(name, nc, cin, payload["mlg"])
    except InsitugenError as e:
        raise CheckpointError(f"checkpoint '{path}': {e}") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint '{path}': weights do not fit the model it "
                              f"describes: {first}") from None
    check_weights(f"checkpoint '{path}'", payload["state_dict"], error=CheckpointError)
    model.eval()
    info = {k: payload[k] for k in ("model", "mlg", "extra")}
    return model, info


__all__ = ["mlgify", "MLGReport", "LayerChange", "default_classifier_bits", "build_mlg_model",
           "save_checkpoint", "load_checkpoint", "CheckpointError"]
