# SPDX-License-Identifier: Apache-2.0
"""Per layer and in total: generation vs convolution vs fetching the weights, time and energy.

Assumptions (also written into every report, ``ASSUMPTIONS``):

* one generation pass per layer per batch: each weight is generated once and used by
  the convolution for every output position of every image of the batch (weight
  stationary); the codes live on chip (loaded once, not counted);
* "shared": generation runs on the convolution's own engine, so a layer takes
  ``generation + convolution`` cycles; "overlapped": the generator has lanes of its own
  (same width and count) and runs ahead of the convolution, so a layer takes
  ``max(generation, convolution)``;
* fetching (the baseline, and the layers that are not generated): the weights at the
  convolution's weight width stream from DRAM at the bandwidth, prefetched while the
  previous layer computes: a layer takes ``max(convolution, fetch)``;
* the break-even feature map is the output size ``Ho = Wo`` at which the convolution's
  cycles equal the generation cycles at the batch: on larger maps generation hides
  behind the convolution (overlapped) and adds at most that share when shared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .energy import Figure, conv_energy, fetch_energy, generation_energy
from .engine import Engine
from .generation import generation_cycles, generation_cycles_lower_bound
from .layers import NetLayer

ASSUMPTIONS = (
    "one generation pass per layer per batch (weight stationary: each weight generated "
    "once, used for every output position of the batch); codes resident on chip",
    "shared = generation + convolution cycles on one engine; overlapped = max(generation, "
    "convolution), the generator on lanes of its own",
    "fetch = weights at the convolution's weight width from DRAM at the bandwidth, "
    "prefetched: max(convolution, fetch) per layer; layers not generated are fetched in "
    "every design",
    "convolution cycles = ceil(batch * MACs * ceil(a/s) * ceil(w/s) / lanes): every lane "
    "busy (an ideal dataflow)",
    "break-even feature map: output Ho = Wo at which convolution cycles = generation cycles",
)


@dataclass(frozen=True)
class Clock:
    mhz: float
    source: str

    @property
    def hz(self) -> float:
        return self.mhz * 1e6


@dataclass
class LayerResult:
    layer: NetLayer
    weight_bits: int
    macs: int
    conv_cycles: int
    gen_cycles: int
    gen_lower_bound: int
    fetch_s: float
    clock: Clock
    energy: dict[str, float] = field(default_factory=dict)      # pJ per part
    break_even_positions: float | None = None

    @property
    def generated(self) -> bool:
        return self.layer.generated

    @property
    def conv_s(self) -> float:
        return self.conv_cycles / self.clock.hz

    @property
    def gen_s(self) -> float:
        return self.gen_cycles / self.clock.hz

    @property
    def fetch_layer_s(self) -> float:
        """The layer with its weights fetched: ``max(convolution, fetch)``."""
        return max(self.conv_s, self.fetch_s)

    @property
    def shared_s(self) -> float:
        return self.conv_s + self.gen_s if self.generated else self.fetch_layer_s

    @property
    def overlapped_s(self) -> float:
        return max(self.conv_s, self.gen_s) if self.generated else self.fetch_layer_s

    @property
    def code_bits(self) -> int:
        return self.layer.cfg.code_memory_bits if self.generated else 0

    @property
    def weight_memory_bits(self) -> int:
        return self.layer.weights * self.weight_bits

    @property
    def compression(self) -> float | None:
        return self.weight_memory_bits / self.code_bits if self.generated else None

    @property
    def gen_over_conv(self) -> float | None:
        return self.gen_cycles / self.conv_cycles if self.generated and self.conv_cycles else None

    @property
    def gen_over_fetch(self) -> float | None:
        return self.gen_s / self.fetch_s if self.generated and self.fetch_s else None

    @property
    def bottleneck(self) -> list[str]:
        """Where generation is the bottleneck: longer than the convolution / the fetch."""
        out = []
        if self.generated and self.gen_cycles > self.conv_cycles:
            out.append("conv")
        if self.generated and self.gen_s > self.fetch_s:
            out.append("fetch")
        return out

    @property
    def break_even_hw(self) -> float | None:
        """Output side ``Ho = Wo`` (conv layers) at which convolution = generation cycles."""
        if self.break_even_positions is None or self.layer.kind != "conv":
            return None
        return math.sqrt(self.break_even_positions)


@dataclass
class NetworkResult:
    name: str
    layers: list[LayerResult]
    engine: Engine
    clock: Clock
    batch: int
    bandwidth_gbs: float
    table: dict[str, Figure]
    settings: dict
    alt_sram: dict[str, Figure] | None = None
    measured: dict | None = None          # flows.network.activity.measure, when asked

    def total(self, attr: str, generated_only: bool = False) -> float:
        return sum(getattr(r, attr) for r in self.layers if r.generated or not generated_only)

    def energy_total(self, part: str, generated_only: bool = False) -> float:
        return sum(r.energy.get(part, 0.0) for r in self.layers
                   if r.generated or not generated_only)

    @property
    def design_energy_pj(self) -> float:
        """Weights' energy of the MLG design: generation of the generated layers plus the
        DRAM fetch of the rest."""
        return sum(r.energy["generation"] if r.generated else r.energy["dram"]
                   for r in self.layers)

    @property
    def generated_weights(self) -> int:
        return sum(r.layer.weights for r in self.layers if r.generated)


def analyse(name: str, layers: list[NetLayer], engine: Engine, clock: Clock, *, batch: int,
            bandwidth_gbs: float, table: dict[str, Figure], settings: dict,
            alt_sram: dict[str, Figure] | None = None) -> NetworkResult:
    """Every layer's cycles, times and energies (see the module docstring). ``alt_sram``:
    other SRAM entries (e.g. :data:`flows.network.energy.IHP_SRAM`) for a second
    generation / SRAM energy (``*_alt`` parts)."""
    alt = {**table, **alt_sram} if alt_sram else None
    rows = []
    bytes_per_s = bandwidth_gbs * 1e9
    for layer in layers:
        w_bits = engine.weight_bits
        macs = layer.macs_per_image * batch
        conv = engine.conv_cycles(macs)
        gen = lower = 0
        energy = {"conv": conv_energy(engine, macs, layer.terms_per_output, table),
                  "dram": fetch_energy(layer.weights, w_bits, table["dram_pj_per_bit"].value),
                  "sram": fetch_energy(layer.weights, w_bits,
                                       table["sram_weights_pj_per_bit"].value)}
        be = None
        if layer.generated:
            gen = generation_cycles(layer.cfg)
            lower = generation_cycles_lower_bound(layer.cfg)
            g = generation_energy(layer.cfg, table)
            energy.update(generation=g.total, gen_multiplies=g.multiplies, gen_adds=g.adds,
                          gen_code_reads=g.code_reads)
            if alt:
                energy["generation_alt"] = generation_energy(layer.cfg, alt).total
            per_position = layer.weights * engine.slices_per_mac / engine.lanes
            be = gen / per_position / batch
        if alt:
            energy["sram_alt"] = fetch_energy(layer.weights, w_bits,
                                              alt["sram_weights_pj_per_bit"].value)
        fetch_s = layer.weights * w_bits / 8 / bytes_per_s
        rows.append(LayerResult(layer, w_bits, macs, conv, gen, lower, fetch_s, clock, energy,
                                be))
    return NetworkResult(name, rows, engine, clock, batch, bandwidth_gbs, table, settings,
                         alt_sram)


__all__ = ["analyse", "Clock", "LayerResult", "NetworkResult", "ASSUMPTIONS"]
