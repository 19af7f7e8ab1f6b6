# SPDX-License-Identifier: Apache-2.0
"""Memory accounting of MLG models, identical to the reference implementation's.

Stored bits of a model after :func:`~golden.mlgify.mlgify`:

* generated layer: ``|B| qb + |U| qu + |V| qv`` (bias, if any, at 32 bits); raw float
  factors (the reference gate with ``w_bit >= 16``) at 32 bits each;
* classifier (the last linear, a :class:`QuantLinear`): every weight at its ``bits`` (8,
  or 32 in the all-float setting), bias at 32 bits;
* a conv / linear that is not generated (:class:`QuantConv2d` / :class:`QuantLinear`):
  its ``counted_bits`` per weight: its width under the insitugen gate, 32 under the
  reference gate (which counts such a layer at 4 bytes per weight whatever its width);
  a plain ``nn.Conv2d`` / ``nn.Linear``: 32 bits; biases at 32 bits;
* BatchNorm / GroupNorm: weight and bias at 32 bits each (running statistics are not
  parameters and are not counted, as in the reference);
* any other parameter: 32 bits.

Baselines: the same model with every parameter in FP32 (the reference's
denominator, which reproduces Table 2 of the MLG paper), and an 8-bit model (every conv and
linear weight at 8 bits; biases and normalization at 32 bits, as counted above).
The parameter ratio is stored parameters over the original parameters.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from torch import nn

from .mlg import MLGLayerBase, QuantWeight

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)


@dataclass
class LayerMemory:
    """One row of the memory table. Bits are totals for the layer (weights + bias)."""

    name: str
    kind: str                           # generated | classifier | float | norm | other
    weight_shape: tuple[int, ...]
    stored: dict[str, list] = field(default_factory=dict)   # name -> [shape, bits]
    params_full: int = 0
    params_stored: int = 0
    bits_stored: int = 0
    bits_fp32: int = 0
    bits_int8: int = 0

    @property
    def ratio_fp32(self) -> float:
        return self.bits_stored / self.bits_fp32 if self.bits_fp32 else 0.0


@dataclass
class MemoryReport:
    layers: list[LayerMemory]
    settings: dict[str, int] = field(default_factory=dict)
    model: str = ""

    def _sum(self, attr: str) -> int:
        return sum(getattr(r, attr) for r in self.layers)

    @property
    def bits_stored(self) -> int:
        return self._sum("bits_stored")

    @property
    def bits_fp32(self) -> int:
        return self._sum("bits_fp32")

    @property
    def bits_int8(self) -> int:
        return self._sum("bits_int8")

    @property
    def params_full(self) -> int:
        return self._sum("params_full")

    @property
    def params_stored(self) -> int:
        return self._sum("params_stored")

    @property
    def memory_ratio(self) -> float:
        """Stored bits / FP32 bits of the original model (Table 2 'memory ratio' of MLG)."""
        return self.bits_stored / self.bits_fp32

    @property
    def memory_ratio_int8(self) -> float:
        return self.bits_stored / self.bits_int8

    @property
    def param_ratio(self) -> float:
        return self.params_stored / self.params_full

    def summary(self) -> dict:
        return {
            "model": self.model, **self.settings,
            "params_full": self.params_full, "params_stored": self.params_stored,
            "param_ratio": self.param_ratio,
            "bytes_stored": self.bits_stored / 8, "bytes_fp32": self.bits_fp32 / 8,
            "bytes_int8": self.bits_int8 / 8,
            "memory_ratio_fp32": self.memory_ratio, "memory_ratio_int8": self.memory_ratio_int8,
            "compression_fp32": 1 / self.memory_ratio,
            "compression_int8": 1 / self.memory_ratio_int8,
        }

    def to_json(self) -> str:
        rows = []
        for r in self.layers:
            d = asdict(r)
            d["weight_shape"] = list(r.weight_shape)
            rows.append(d)
        return json.dumps({"summary": self.summary(), "layers": rows}, indent=2)

    def to_markdown(self) -> str:
        out = ["| layer | weight | stored tensors (shape @ bits) | params | stored params | "
               "FP32 bytes | MLG bytes | ratio |",
               "|---|---|---|---|---|---|---|---|"]
        for r in self.layers:
            tensors = ", ".join(f"{n} {'x'.join(map(str, s))} @ {b}"
                                for n, (s, b) in r.stored.items()) or r.kind
            out.append(f"| {r.name} | {'x'.join(map(str, r.weight_shape)) or '-'} | {tensors} | "
                       f"{r.params_full:,} | {r.params_stored:,} | {r.bits_fp32 / 8:,.0f} | "
                       f"{r.bits_stored / 8:,.1f} | {r.ratio_fp32:.4f} |")
        out.append(f"| **total** | | | {self.params_full:,} | {self.params_stored:,} | "
                   f"{self.bits_fp32 / 8:,.0f} | {self.bits_stored / 8:,.1f} | "
                   f"**{self.memory_ratio:.4f}** |")
        return "\n".join(out)

    def __str__(self) -> str:
        s = self.summary()
        return (self.to_markdown() + "\n\n"
                f"param ratio {s['param_ratio']:.4f}; memory ratio vs FP32 "
                f"{s['memory_ratio_fp32']:.4f} ({s['compression_fp32']:.1f}x smaller), vs 8-bit "
                f"{s['memory_ratio_int8']:.4f} ({s['compression_int8']:.1f}x smaller)")


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _bias(m: nn.Module) -> int:
    b = getattr(m, "bias", None)
    return b.numel() if isinstance(b, nn.Parameter) else 0


def memory_report(model: nn.Module, settings: dict[str, int] | None = None,
                  model_name: str = "") -> MemoryReport:
    """Per-layer and total memory of a (possibly mlgified) model; see module docstring."""
    rows: list[LayerMemory] = []
    norm = LayerMemory("BatchNorm (all)", "norm", ())
    other = LayerMemory("other parameters", "other", ())
    covered: set[int] = set()
    linears = [n for n, m in model.named_modules()
               if isinstance(m, nn.Linear) or (isinstance(m, MLGLayerBase) and m.LAYER == "linear")]
    classifier = linears[-1] if linears else None
    for name, m in model.named_modules():
        if isinstance(m, MLGLayerBase):
            covered.update(id(p) for p in m.parameters(recurse=False))
            nb = _bias(m)
            row = LayerMemory(name, "generated" if m.generated else "float", m.weight_shape)
            row.params_full = m.full_params + nb
            row.bits_fp32 = 32 * row.params_full
            row.bits_int8 = 8 * m.full_params + 32 * nb
            if m.generated:
                st = m.stored_tensors()
                row.stored = {k: [list(s), b] for k, (s, b) in st.items()}
                row.params_stored = sum(_numel(s) for s, _ in st.values()) + nb
                row.bits_stored = sum(_numel(s) * b for s, b in st.values()) + 32 * nb
            else:  # the reference counts a non-generated layer at 4 bytes per weight
                row.params_stored, row.bits_stored = row.params_full, row.bits_fp32
            rows.append(row)
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            covered.update(id(p) for p in m.parameters(recurse=False))
            nw, nb = m.weight.numel(), _bias(m)
            quant = isinstance(m, QuantWeight)
            kind = ("classifier" if name == classifier else "quantized") if quant else "float"
            row = LayerMemory(name, kind, tuple(m.weight.shape))
            row.params_full = row.params_stored = nw + nb
            row.bits_fp32 = 32 * (nw + nb)
            row.bits_int8 = 8 * nw + 32 * nb
            bits = m.counted_bits if quant else 32
            row.bits_stored = bits * nw + 32 * nb
            if quant:
                row.stored = {"W": [list(m.weight.shape), bits]}
            rows.append(row)
        elif isinstance(m, NORMS):
            for p in m.parameters(recurse=False):
                covered.add(id(p))
                norm.params_full += p.numel()
            norm.weight_shape = ()
        else:
            for p in m.parameters(recurse=False):
                if id(p) not in covered:
                    covered.add(id(p))
                    other.params_full += p.numel()
    for extra in (norm, other):
        if extra.params_full:
            extra.params_stored = extra.params_full
            extra.bits_stored = extra.bits_fp32 = extra.bits_int8 = 32 * extra.params_full
            rows.append(extra)
    return MemoryReport(rows, dict(settings or {}), model_name)


def model_memory(model_name: str, base_in: int, base_out: int, qb: int, qu: int, qv: int,
                 num_classes: int = 10, in_channels: int | None = None,
                 classifier_bits: int | None = None, w_bit: int = 8,
                 gate: str = "insitugen") -> MemoryReport:
    """Memory report of a shipped model (see :data:`MODELS`) after mlgify."""
    from .mlgify import build_mlg_model
    mlg = dict(base_in=base_in, base_out=base_out, qb=qb, qu=qu, qv=qv,
               classifier_bits=classifier_bits, w_bit=w_bit, gate=gate)
    model, report = build_mlg_model(model_name, num_classes, in_channels, mlg)
    return memory_report(model, report.settings(), model_name)
