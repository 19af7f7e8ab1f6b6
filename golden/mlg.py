# SPDX-License-Identifier: Apache-2.0
"""MLG layers in PyTorch: multi-level in situ generation of conv and linear weights.

A generated layer stores, instead of its weight ``W[p, q, k, k]`` (``q`` = input
channels per group), the three latent tensors of MLG (README, The arithmetic):

| parameter  | shape                            | quantized at |
|------------|----------------------------------|--------------|
| ``basis``  | ``[Bo, Bi, k, k]`` (``[Bo, q, k, k]`` with the intra-kernel level off) | ``qb`` |
| ``coeff_in`` (U)  | ``[Bo, q, Bi]`` (absent with the intra-kernel level off) | ``qu`` |
| ``coeff_out`` (V) | ``[p, Bo]`` (absent with the cross-kernel level off, ``Bo = p``) | ``qv`` |

and generates ``W = Q(V) @ (Q(U) @ Q(B))`` on every forward pass.

Which levels are on follows the rule of the MLG reference implementation
(github.com/JeremieMelo/Memory-Efficient-Multi-Level-Generation):
cross-kernel (V) when ``min(p, q*k*k) > Bo > 0``, intra-kernel (U) when
``min(q, k*k) > Bi > 0``. So a 1x1 conv or a linear layer is cross-only. A layer
where neither level saves parameters is not generated: mlgify makes it a
:class:`QuantConv2d` / :class:`QuantLinear` whose whole weight is quantized at the
model's weight width ``w_bit`` in the forward pass (float for ``w_bit >= 16``), as the
reference's layer does when generation is off.

Quantization gate (``float_factors``): by default (the ``insitugen`` gate) B, U, V are
always quantized at qb, qu, qv, and 32 bits means ``tanh(x) / max|tanh(x)|``. The
reference quantizes B, U, V only when the model's ``w_bit < 16`` and otherwise uses the
raw float factors, ignoring qb/qu/qv; ``float_factors=True`` is that case (mlgify sets
it for ``gate="reference"`` and ``w_bit >= 16``). Float factors are counted at 32 bits
in the memory table and cannot be exported.

Quantizer: the symmetric DoReFa quantizer of the reference (``dorefa_sym``), one
scale per tensor, straight-through gradient clamped to [-1, 1]:
``t = tanh(x)``, ``r = max|t|`` (not differentiated), ``n = 2^b - 1``,
code ``c = round(n * (t / (2r) + 0.5))`` (round half to even), value
``(c / n) * 2r - r = (r / n) * (2c - n)``: the odd integer ``m = 2c - n`` of the
hardware (:func:`golden.arith.odd_value`) times the scale ``r / n``.
Special widths as in the reference: ``b = 32`` is ``tanh(x) / max|tanh(x)|``
(float, not exportable); ``b = 1`` is ``sign(x) * mean|x|`` without tanh, which
is the odd mapping with ``m = +-1`` and scale ``mean|x|``.

Edges where ours differs from the reference's quantizer, on purpose, because the
reference's values have no code:

* 1 bit, an exact zero: the reference's ``sign(0) = 0`` gives a third level, 0, which
  no 1-bit odd code holds; ours gives ``+mean|x|`` (code 1 for ``x >= 0``).
* an all-zero tensor: the reference divides by ``max|tanh(x)| = 0`` and returns NaN;
  ours clamps that scale to the smallest positive float, so the values are
  ``+-tiny / n`` (zero to any printed precision) and the codes stay valid.

Grouped and depthwise convolutions: the layer generates the weight nn.Conv2d
holds, ``[p, q / groups, k, k]``, i.e. ``q`` above is ``in_channels / groups``
and the convolution itself is grouped as usual. A depthwise conv (one input
channel per group) never passes the reference rule for ``Bi >= 1`` and
``Bo >= k*k``, so it is not generated: mlgify makes it a :class:`QuantConv2d` whose
weight is quantized at ``w_bit``, as the reference's layer with generation off.

Integer view: :meth:`MLGLayerBase.codes` gives the unsigned codes and scales,
:meth:`MLGLayerBase.generator_config` the hardware config, and
``scale * golden.generate.full_precision(cfg, codes)`` equals :meth:`generated_weight`
up to float rounding (``tests/test_mlg_layers.py``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from insitugen.config import GeneratorConfig
from insitugen.errors import InsitugenError
from insitugen.levels import GenerationLevels

from .generate import full_precision

#: The width that means "float, no quantization" (``tanh(x) / max|tanh(x)|``).
FLOAT_BITS = 32
#: Widths the hardware and the exporter accept (odd-code mapping).
MAX_EXPORT_BITS = 16
#: The reference's gate: a model weight width ``w_bit`` of this or more means float
#: (B, U, V unquantized, non-generated weights unquantized).
REFERENCE_FLOAT_FROM = 16
#: The quantization gates of :func:`golden.mlgify.mlgify` (see the module docstring).
GATES = ("insitugen", "reference")


class ExportError(InsitugenError, ValueError):
    """A layer cannot be exported to the generator (float widths, no generation)."""


def check_base(name: str, v: Any) -> int:
    """``base_in`` / ``base_out`` as given to a layer or to mlgify: an integer >= 0."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InsitugenError(f"{name} = {v!r} is not allowed: use an integer >= 0 "
                             f"(0 turns that generation level off)")
    return v


def check_bits(name: str, bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 32:
        raise InsitugenError(f"{name} = {bits!r} is not allowed: use an integer width in "
                             f"[1, 32] (32 = float, no quantization)")
    return bits


# ---------------------------------------------------------------------------------
# quantizer
# ---------------------------------------------------------------------------------
class _RoundSTE(torch.autograd.Function):
    """``round(x * n) / n`` forward; gradient passed straight through, clamped to [-1, 1]."""

    @staticmethod
    def forward(ctx, x, n):
        return torch.round(x * n) / n

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(-1, 1), None


class _SignSTE(torch.autograd.Function):
    """``+1`` for ``x >= 0``, else ``-1``; gradient straight through, clamped to [-1, 1]."""

    @staticmethod
    def forward(ctx, x):
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(-1, 1)


def _dorefa_input(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The value rounded by the quantizer, ``tanh(x) / (2r) + 0.5``, and ``r``.

    Shared by the forward pass and :func:`quantize_codes` so that the codes are
    the very integers the float forward pass rounded to."""
    t = torch.tanh(x)
    r = t.detach().abs().max().clamp_min(torch.finfo(t.dtype).tiny)
    return t / (2 * r) + 0.5, r


def quantize(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric DoReFa quantization of a whole tensor (one scale), differentiable (STE)."""
    if bits == FLOAT_BITS:
        t = torch.tanh(x)
        return t / t.abs().max()
    if bits == 1:
        # as the reference: sign(x / E) * E, so the clamped STE sees the gradient times E
        e = x.detach().abs().mean().clamp_min(torch.finfo(x.dtype).tiny)
        return _SignSTE.apply(x / e) * e
    u, r = _dorefa_input(x, bits)
    n = float((1 << bits) - 1)
    return _RoundSTE.apply(u, n) * (2 * r) - r


@torch.no_grad()
def quantize_codes(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, float]:
    """Unsigned codes (int64, in ``[0, 2^bits - 1]``) and the scale of :func:`quantize`.

    ``quantize(x, bits) == scale * (2 * codes - (2^bits - 1))`` up to float rounding.
    """
    if bits == FLOAT_BITS or not 1 <= bits <= MAX_EXPORT_BITS:
        raise ExportError(f"a {bits}-bit tensor has no integer codes: only widths 1..."
                          f"{MAX_EXPORT_BITS} map to the generator's odd codes (32 = float); "
                          f"train with qb/qu/qv <= {MAX_EXPORT_BITS}")
    if bits == 1:
        return (x >= 0).to(torch.int64), float(x.abs().mean().double())
    u, r = _dorefa_input(x, bits)
    n = (1 << bits) - 1
    codes = torch.round(u * float(n)).to(torch.int64)
    return codes, float(r.double()) / n


# ---------------------------------------------------------------------------------
# level rule
# ---------------------------------------------------------------------------------
def generation_levels(out_channels: int, in_channels: int, kernel_area: int,
                      base_in: int, base_out: int) -> tuple[int, int]:
    """Effective ``(Bi, Bo)`` after the reference rule; 0 = that level is off.

    ``in_channels`` is per group. Cross-kernel is on when
    ``min(p, q*K) > Bo > 0``; intra-kernel when ``min(q, K) > Bi > 0``.
    """
    bo = base_out if min(out_channels, in_channels * kernel_area) > base_out > 0 else 0
    bi = base_in if min(in_channels, kernel_area) > base_in > 0 else 0
    return bi, bo


# ---------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------
class MLGLayerBase(GenerationLevels, nn.Module):
    """Shared parameters and generation of :class:`MLGConv2d` and :class:`MLGLinear`.

    ``out_channels`` = p, ``group_in_channels`` = q (per group), ``kernel`` = k.
    """

    LAYER = "conv"

    def _build(self, out_channels: int, group_in_channels: int, kernel: int,
               base_in: int, base_out: int, qb: int, qu: int, qv: int, bias: bool,
               float_factors: bool = False) -> None:
        check_base("base_in", base_in)
        check_base("base_out", base_out)
        self.qb, self.qu, self.qv = (check_bits("qb", qb), check_bits("qu", qu),
                                     check_bits("qv", qv))
        if not isinstance(float_factors, bool):
            raise InsitugenError(f"float_factors = {float_factors!r} must be True or False")
        #: True: B, U, V used unquantized (the reference's gate for w_bit >= 16)
        self.float_factors = float_factors
        self.out_channels, self.group_in_channels, self.kernel = (
            out_channels, group_in_channels, kernel)
        self.requested = (base_in, base_out)
        K = kernel * kernel
        self.base_in, self.base_out = generation_levels(out_channels, group_in_channels, K,
                                                        base_in, base_out)
        Bo = self.Bo
        q = group_in_channels
        basis_rows = self.base_in if self.base_in else q
        self.basis = nn.Parameter(torch.empty(Bo, basis_rows, kernel, kernel))
        self.register_parameter(
            "coeff_in", nn.Parameter(torch.empty(Bo, q, self.base_in)) if self.base_in else None)
        self.register_parameter(
            "coeff_out", nn.Parameter(torch.empty(out_channels, Bo)) if self.base_out else None)
        self.register_parameter(
            "bias", nn.Parameter(torch.zeros(out_channels)) if bias else None)
        self.reset_parameters()

    # ---- shape (level1, level2, generated, Bo: insitugen.levels) ----------------------
    @property
    def weight_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def full_params(self) -> int:
        """Parameters of the ordinary layer's weight (``p * q * k * k``)."""
        return self.out_channels * self.group_in_channels * self.kernel * self.kernel

    def stored_tensors(self) -> dict[str, tuple[tuple[int, ...], int]]:
        """``{name: (shape, bits)}`` of the stored tensors B, U, V (hardware shapes);
        float factors (:attr:`float_factors`) are stored at 32 bits."""
        bits = ({"B": FLOAT_BITS, "U": FLOAT_BITS, "V": FLOAT_BITS} if self.float_factors
                else {"B": self.qb, "U": self.qu, "V": self.qv})
        shapes = self.level_shapes(self.group_in_channels, self.kernel * self.kernel)
        return {name: (shape, bits[name]) for name, shape in shapes.items()}

    def reset_parameters(self) -> None:
        # as the reference: kaiming normal (fan_out, relu) for the coefficients; the
        # basis with the std of a kaiming-normal fan_out init of the full weight
        std = math.sqrt(2.0 / (self.out_channels * self.kernel * self.kernel))
        with torch.no_grad():
            self.basis.normal_(0.0, std)
        if self.coeff_in is not None:
            nn.init.kaiming_normal_(self.coeff_in, mode="fan_out", nonlinearity="relu")
        if self.coeff_out is not None:
            nn.init.kaiming_normal_(self.coeff_out, mode="fan_out", nonlinearity="relu")

    # ---- generation -------------------------------------------------------------------
    def quantized(self) -> dict[str, torch.Tensor]:
        """The quantized (float) B, U, V in hardware shapes: ``[Bo, Bi or q, K]``,
        ``[Bo, q, Bi]``, ``[p, Bo]``; the raw tensors with :attr:`float_factors`."""
        K = self.kernel * self.kernel
        if self.float_factors:
            def q(x, _bits):
                return x
        else:
            q = quantize
        out = {"B": q(self.basis, self.qb).reshape(self.Bo, -1, K)}
        if self.level1:
            out["U"] = q(self.coeff_in, self.qu)
        if self.level2:
            out["V"] = q(self.coeff_out, self.qv)
        return out

    def generated_weight(self) -> torch.Tensor:
        """The generated float weight, shaped :attr:`weight_shape` (differentiable)."""
        t = self.quantized()
        w1 = t["U"] @ t["B"] if self.level1 else t["B"]          # [Bo, q, K]
        if self.level2:
            w = t["V"] @ w1.reshape(self.Bo, -1)                  # [p, q*K]
        else:
            w = w1
        return w.reshape(self.weight_shape)

    # ---- integer view (hardware) ----------------------------------------------------------
    def codes(self) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Unsigned codes (``B``, ``U``, ``V`` in :attr:`GeneratorConfig.code_shapes`) and
        scales (``sB``, ``sU``, ``sV``). Raises :class:`ExportError` for float widths."""
        self._check_quantized()
        K = self.kernel * self.kernel
        cB, sB = quantize_codes(self.basis, self.qb)
        codes, scales = {"B": cB.reshape(self.Bo, -1, K)}, {"sB": sB}
        if self.level1:
            codes["U"], scales["sU"] = quantize_codes(self.coeff_in, self.qu)
        if self.level2:
            codes["V"], scales["sV"] = quantize_codes(self.coeff_out, self.qv)
        return codes, scales

    def generator_config(self, **hardware) -> GeneratorConfig:
        """The hardware config of this layer; ``hardware`` sets engine/output fields
        (``engine_bits``, ``lanes``, ``out_bits``, ``shift``, ``rounding``, ...).
        Defaults: full-precision output (``out_bits = 0``, ``shift = 0``)."""
        self._check_quantized()
        used = {"qb": self.qb, **({"qu": self.qu} if self.level1 else {}),
                **({"qv": self.qv} if self.level2 else {})}
        for name, bits in used.items():
            if not 1 <= bits <= MAX_EXPORT_BITS:
                raise ExportError(f"layer with {name} = {bits} cannot be exported: the generator "
                                  f"takes integer codes of 1..{MAX_EXPORT_BITS} bits (32 = float "
                                  f"training only); retrain with {name} <= {MAX_EXPORT_BITS}")
        fields = dict(out_channels=self.out_channels, in_channels=self.group_in_channels,
                      kernel=self.kernel, layer=self.LAYER, base_in=self.base_in,
                      base_out=self.base_out, qb=self.qb,
                      # widths of a level that is off are ignored by the config; keep them valid
                      qu=self.qu if self.level1 else min(self.qu, MAX_EXPORT_BITS),
                      qv=self.qv if self.level2 else min(self.qv, MAX_EXPORT_BITS),
                      out_bits=0, shift=0)
        fields.update(hardware)
        return GeneratorConfig(**fields)

    def _check_quantized(self) -> None:
        if self.float_factors:
            raise ExportError("layer uses raw float B, U, V (the reference's gate with w_bit "
                              ">= 16), which have no integer codes: retrain with w_bit < 16 "
                              "or the insitugen gate")

    def scale(self) -> float:
        """Product of the scales of the tensors used: real weight = scale * integer weight."""
        _, scales = self.codes()
        s = 1.0
        for v in scales.values():
            s *= v
        return s

    def integer_weight(self) -> torch.Tensor:
        """Full-precision integer weight (int64, :attr:`weight_shape`) from the golden model."""
        codes, _ = self.codes()
        return full_precision(self.generator_config(), codes).reshape(self.weight_shape)

    # ---- orthonormality --------------------------------------------------------------------
    def ortho_loss(self) -> torch.Tensor:
        """Multi-level orthonormality regularization on the latent (unquantized) tensors.

        Intra-kernel on: ``mse(B B^T, I)`` per basis filter (``[Bo, Bi, Bi]``) and
        ``mse(U~^T U~, I)`` with the columns of U normalized (norm not differentiated);
        both skipped for ``Bi = 1`` (a single vector: nothing to make orthogonal; the
        reference crashes there). Intra-kernel off, cross-kernel on: ``mse(B B^T, I)`` of
        the flattened basis ``[Bo, q*k*k]``. Cross-kernel on: ``mse(V~^T V~, I)`` with the
        columns of V normalized.
        """
        loss = self.basis.new_zeros(())
        if not self.generated:
            return loss
        if self.level1:
            if self.base_in > 1:
                b = self.basis.reshape(self.Bo, self.base_in, -1)
                eye = torch.eye(self.base_in, device=b.device, dtype=b.dtype).expand(
                    self.Bo, -1, -1)
                loss = loss + F.mse_loss(b @ b.transpose(1, 2), eye)
                u = self.coeff_in / (self.coeff_in.detach().norm(p=2, dim=1, keepdim=True) + 1e-8)
                loss = loss + F.mse_loss(u.transpose(1, 2) @ u, eye)
        elif self.level2:
            b = self.basis.reshape(self.Bo, -1)
            eye = torch.eye(self.Bo, device=b.device, dtype=b.dtype)
            loss = loss + F.mse_loss(b @ b.t(), eye)
        if self.level2:
            v = self.coeff_out / (self.coeff_out.detach().norm(p=2, dim=0, keepdim=True) + 1e-8)
            eye = torch.eye(self.Bo, device=v.device, dtype=v.dtype)
            loss = loss + F.mse_loss(v.t() @ v, eye)
        return loss

    def extra_repr(self) -> str:
        return (f"base_in={self.base_in}, base_out={self.base_out}, qb={self.qb}, qu={self.qu}, "
                f"qv={self.qv}, bias={self.bias is not None}"
                + (", float_factors=True" if self.float_factors else ""))


class MLGConv2d(MLGLayerBase):
    """Conv2d whose weight ``[p, q/groups, k, k]`` is generated (square kernels only).

    Convolution arguments as :class:`torch.nn.Conv2d` (``padding_mode='zeros'``).
    ``base_in`` / ``base_out`` are the requested global (Bi, Bo); the effective ones
    (0 = level off) follow :func:`generation_levels`.
    """

    LAYER = "conv"

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride=1,
                 padding=0, dilation=1, groups: int = 1, bias: bool = False, *,
                 base_in: int, base_out: int, qb: int, qu: int, qv: int,
                 float_factors: bool = False):
        super().__init__()
        if isinstance(kernel_size, (tuple, list)):
            if len(set(kernel_size)) != 1:
                raise InsitugenError(f"MLGConv2d needs a square kernel, not {tuple(kernel_size)}")
            kernel_size = kernel_size[0]
        if in_channels % groups or out_channels % groups:
            raise InsitugenError(f"in_channels = {in_channels} and out_channels = {out_channels} "
                                 f"must be divisible by groups = {groups}")
        self.in_channels, self.groups = in_channels, groups
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self._build(out_channels, in_channels // groups, kernel_size, base_in, base_out,
                    qb, qu, qv, bias, float_factors)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.group_in_channels, self.kernel, self.kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.generated_weight(), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups}, "
                + super().extra_repr())


class MLGLinear(MLGLayerBase):
    """Linear layer whose weight ``[out, in]`` is generated (``k = 1``: cross-level only
    under the reference rule, since ``min(in, 1) > Bi`` never holds)."""

    LAYER = "linear"

    def __init__(self, in_features: int, out_features: int, bias: bool = False, *,
                 base_in: int, base_out: int, qb: int, qu: int, qv: int,
                 float_factors: bool = False):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._build(out_features, in_features, 1, base_in, base_out, qb, qu, qv, bias,
                    float_factors)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.group_in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.generated_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, " + super().extra_repr()


class QuantWeight:
    """A layer that is not generated, its whole weight quantized in the forward pass with
    the symmetric DoReFa quantizer at ``bits``; ``bits >= 16`` keeps the float weight, as
    the reference does for ``w_bit >= 16``. ``counted_bits``: the width the memory table
    counts per weight (default: ``bits``, 32 when float; the reference counts a
    non-generated conv at 32 whatever its width)."""

    def _set_bits(self, bits: int, counted_bits: int | None) -> None:
        self.bits = check_bits("weight bits", bits)
        self.counted_bits = (self.stored_bits if counted_bits is None
                             else check_bits("counted bits", counted_bits))

    @property
    def quantizes(self) -> bool:
        return self.bits < REFERENCE_FLOAT_FROM

    @property
    def stored_bits(self) -> int:
        return self.bits if self.quantizes else FLOAT_BITS

    def quantized_weight(self) -> torch.Tensor:
        return quantize(self.weight, self.bits) if self.quantizes else self.weight


class QuantLinear(QuantWeight, nn.Linear):
    """A linear layer that is not generated (the classifier of an MLG model, default 8
    bits, or a linear whose cross level is off), its weight quantized at ``bits``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, bits: int = 8,
                 counted_bits: int | None = None):
        super().__init__(in_features, out_features, bias)
        self._set_bits(bits, counted_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", bits={self.bits}"


class QuantConv2d(QuantWeight, nn.Conv2d):
    """A conv that is not generated (no level on, e.g. a depthwise conv or a stem with one
    input channel), its weight quantized at ``bits`` (the model's ``w_bit``) in the
    forward pass, as the reference's MLG conv does with generation off."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 *, bits: int = 8, counted_bits: int | None = None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode)
        self._set_bits(bits, counted_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", bits={self.bits}"


def quantize_model(model: nn.Module, bits: int) -> nn.Module:
    """Replace, in place, every plain ``nn.Conv2d`` / ``nn.Linear`` by a
    :class:`QuantConv2d` / :class:`QuantLinear` at ``bits`` (weights and biases kept):
    the reference's teacher, a plain model with ``weight_bit: 15``. Returns ``model``."""
    check_bits("weight bits", bits)
    for name, m in list(model.named_modules()):
        if type(m) is nn.Conv2d:
            new = QuantConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                              m.padding, m.dilation, m.groups, m.bias is not None,
                              m.padding_mode, bits=bits)
        elif type(m) is nn.Linear:
            new = QuantLinear(m.in_features, m.out_features, m.bias is not None, bits=bits)
        else:
            continue
        with torch.no_grad():
            new.weight.copy_(m.weight)
            if m.bias is not None:
                new.bias.copy_(m.bias)
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)
    return model


def forward_weight(m: nn.Module) -> torch.Tensor:
    """The weight a conv / linear layer's forward pass uses: generated (MLG), quantized
    (:class:`QuantConv2d` / :class:`QuantLinear`) or the plain weight."""
    if isinstance(m, MLGLayerBase):
        return m.generated_weight()
    if isinstance(m, QuantWeight):
        return m.quantized_weight()
    return m.weight


def mlg_layers(model: nn.Module):
    """``(name, layer)`` of every generated MLG layer of a model, in module order."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, MLGLayerBase) and m.generated]


def ortho_loss(model: nn.Module) -> torch.Tensor:
    """Sum of :meth:`MLGLayerBase.ortho_loss` over the model's MLG layers."""
    total = None
    for _, m in mlg_layers(model):
        loss = m.ortho_loss()
        total = loss if total is None else total + loss
    if total is None:
        p = next(model.parameters(), None)
        return torch.zeros((), device=p.device if p is not None else None)
    return total
