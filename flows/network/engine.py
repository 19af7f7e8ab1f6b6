# SPDX-License-Identifier: Apache-2.0
"""The convolution's cycles on the low-precision engine: a closed-form slicing model.

An ``s``-bit engine multiplies two operands of at most ``s`` bits (its multiplier inputs
are ``(s+1)``-bit signed: an unsigned lower slice or the signed top slice of a two's
complement value; README, The arithmetic). An activation of ``a`` bits times a weight of
``w`` bits is therefore

    slices = ceil(a / s) * ceil(w / s)

engine multiplies (partial products recombined by shifts and adds, exactly); the
``lanes`` multipliers retire ``lanes`` of them per cycle. A layer's MACs per image are
``Ho * Wo * Co * (Ci / groups) * k * k`` (a linear layer: ``Co * Ci``), so

    conv_cycles = ceil(batch * MACs * slices / lanes)

This is the ideal (every lane busy every cycle) of any dataflow on that engine; a real
array loses utilization to edge tiles and to the dataflow's mapping, which only makes
the convolution longer (and generation relatively cheaper). Why a closed form rather
than ZigZag or SCALE-Sim: see ``docs/network.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from insitugen.errors import ConfigError


def _positive_int(name: str, value, lo: int = 1, hi: int = 1 << 20) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{name} = {value!r} is out of range: use an integer in [{lo}, {hi}]")
    return value


@dataclass(frozen=True)
class Engine:
    """The engine the convolution (and the generator) runs on."""

    engine_bits: int
    lanes: int
    act_bits: int = 8
    weight_bits: int = 8

    def __post_init__(self):
        _positive_int("engine_bits", self.engine_bits, 1, 16)
        _positive_int("lanes", self.lanes, 1, 1024)
        _positive_int("act_bits", self.act_bits, 1, 32)
        _positive_int("weight_bits", self.weight_bits, 2, 32)

    @property
    def act_slices(self) -> int:
        return math.ceil(self.act_bits / self.engine_bits)

    @property
    def weight_slices(self) -> int:
        return math.ceil(self.weight_bits / self.engine_bits)

    @property
    def slices_per_mac(self) -> int:
        """Engine multiplies per activation x weight MAC."""
        return self.act_slices * self.weight_slices

    def psum_bits(self, terms: int) -> int:
        """Width of a partial sum of ``terms`` full products (what each add accumulates)."""
        return self.act_bits + self.weight_bits + max(0, math.ceil(math.log2(max(1, terms))))

    def conv_cycles(self, macs: int) -> int:
        """``ceil(macs * slices_per_mac / lanes)``."""
        return -(-macs * self.slices_per_mac // self.lanes)

    def describe(self) -> str:
        return (f"{self.engine_bits}-bit engine x {self.lanes} lanes; activation {self.act_bits} "
                f"bits x weight {self.weight_bits} bits = {self.act_slices} x "
                f"{self.weight_slices} = {self.slices_per_mac} engine multiplies per MAC")


__all__ = ["Engine"]
