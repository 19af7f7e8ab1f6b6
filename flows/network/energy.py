# SPDX-License-Identifier: Apache-2.0
"""Per-operation energy figures, each with its source, and what one layer costs.

:data:`DEFAULT_TABLE` holds the figures the report uses unless the user gives a table
of their own (TOML or JSON, :func:`load_table`), which must set every entry (a table
that mixes the user's node with ours would compare nothing): each entry a number >= 0
or ``{value = ..., source = "..."}``.

How a table turns into energy (also printed in every report):

* an ``n``-bit multiply costs ``mult_8b_pj * (n/8)^2`` up to 8 bits (array multiplier
  energy grows with its partial products), interpolated in ``n^2`` between the 8- and
  32-bit figures above that; the engine's multiplier has ``(s+1)``-bit signed inputs;
* an ``n``-bit add costs ``add_8b_pj * n/8`` up to 8 bits, interpolated linearly between
  the 8- and 32-bit figures above that, ``add_32b_pj * n/32`` beyond;
* a memory read costs its bits times the per-bit figure of that memory.

Generation of a layer: every engine multiply of the schedule, one accumulating add per
multiply at the width of the value it builds (``w1_bits`` for level 1, ``acc_bits`` for
level 2), one rounding add per weight when requantizing, and the code-memory reads with
read gating (:func:`flows.network.generation.code_reads`). Fetching a layer: its weights
at the convolution's weight width, per bit from DRAM or from an on-chip SRAM.

Every default figure is Horowitz's (45 nm), one node for logic, SRAM and DRAM. The
report also gives the generation and SRAM energies with the two SRAM entries taken from
the IHP SG13G2 macro datasheets (:data:`IHP_SRAM`, 130 nm, the PDK the RTL is
synthesized for; read as average energy per access): logic and memory then come from
different nodes, which is why it is the second figure and not the default. For a
decision, give a table of your own node.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from insitugen.config import GeneratorConfig
from insitugen.errors import InsitugenError

from .engine import Engine
from .generation import code_reads

_HOROWITZ = ("M. Horowitz, \"Computing's energy problem (and what we can do about it)\", "
             "ISSCC 2014, 45 nm, 0.9 V")
_IHP = ("IHP SG13G2 open PDK SRAM macro datasheet "
        "(IHP-Open-PDK ihp-sg13g2/libs.ref/sg13g2_sram/doc/{macro}.txt), 'Total Typical "
        "Power' at tc_1d20V_25C, {pj} uW/MHz = {pj} pJ per {bits}-bit access")


class EnergyTableError(InsitugenError, ValueError):
    """An energy table file is missing, malformed, incomplete or has a negative entry."""


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str
    source: str


#: name -> (unit, meaning); the keys a table must set.
ENTRIES = {
    "mult_8b_pj": ("pJ", "8-bit integer multiply"),
    "mult_32b_pj": ("pJ", "32-bit integer multiply"),
    "add_8b_pj": ("pJ", "8-bit integer add"),
    "add_32b_pj": ("pJ", "32-bit integer add"),
    "dram_pj_per_bit": ("pJ/bit", "DRAM read"),
    "sram_weights_pj_per_bit": ("pJ/bit", "on-chip SRAM read, weight buffer"),
    "sram_codes_pj_per_bit": ("pJ/bit", "on-chip SRAM read, code memories of the generator"),
}

_HOROWITZ_SRAM = _HOROWITZ + ": 64-bit cache read {pj} pJ ({size}), i.e. {per:g} pJ/bit"

DEFAULT_TABLE: dict[str, Figure] = {
    "mult_8b_pj": Figure(0.2, "pJ", _HOROWITZ),
    "mult_32b_pj": Figure(3.1, "pJ", _HOROWITZ),
    "add_8b_pj": Figure(0.03, "pJ", _HOROWITZ),
    "add_32b_pj": Figure(0.1, "pJ", _HOROWITZ),
    "dram_pj_per_bit": Figure(
        20.0, "pJ/bit", _HOROWITZ + ": DRAM 1.3-2.6 nJ per 64-bit access, i.e. 20-40 pJ/bit; "
        "the low end, 640 pJ per 32-bit word (as tabulated by Han et al., EIE, ISCA 2016), "
        "160 pJ per 8-bit weight"),
    # the weights of a whole network fill megabytes: the largest SRAM Horowitz lists
    "sram_weights_pj_per_bit": Figure(
        100 / 64, "pJ/bit", _HOROWITZ_SRAM.format(pj=100, size="1 MB", per=100 / 64)),
    # one layer's code memories hold at most ~11 kB (the default layer: 86,856 bits)
    "sram_codes_pj_per_bit": Figure(
        10 / 64, "pJ/bit", _HOROWITZ_SRAM.format(pj=10, size="8 kB", per=10 / 64)),
}

#: The two SRAM entries from the IHP SG13G2 macros (130 nm, the project's PDK), reported
#: next to the default (45 nm) ones: the same question on the silicon the RTL targets.
IHP_SRAM: dict[str, Figure] = {
    "sram_weights_pj_per_bit": Figure(
        156.4 / 64, "pJ/bit",
        _IHP.format(macro="RM_IHPSG13_1P_2048x64_c2_bm_bist", pj=156.4, bits=64)
        + " (the largest macro; 0.89-5.1 pJ/bit over the macros)"),
    "sram_codes_pj_per_bit": Figure(
        56.8 / 64, "pJ/bit",
        _IHP.format(macro="RM_IHPSG13_1P_64x64_c2_bm_bist", pj=56.8, bits=64)
        + " (the smallest macro, for the small code memories)"),
}


def _entry(name: str, raw: Any, where: str) -> Figure:
    source = f"user table {where}"
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - {"value", "source"})
        if unknown or "value" not in raw:
            raise EnergyTableError(f"energy table {where}: entry '{name}' must be a number or "
                                   f"{{value = ..., source = \"...\"}}")
        source = f"{raw['source']} (user table {where})" if raw.get("source") else source
        raw = raw["value"]
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        raise EnergyTableError(f"energy table {where}: entry '{name}' = {raw!r} must be a "
                               f"number ({ENTRIES[name][0]})")
    if raw < 0:
        raise EnergyTableError(f"energy table {where}: entry '{name}' = {raw} is negative: "
                               f"energies are >= 0 {ENTRIES[name][0]}")
    return Figure(float(raw), ENTRIES[name][0], source)


def table_from_mapping(data: Any, where: str) -> dict[str, Figure]:
    """Validate a user table (every entry of :data:`ENTRIES`, each a number >= 0)."""
    if not isinstance(data, dict):
        raise EnergyTableError(f"energy table {where} must be a table of entries, not "
                               f"{type(data).__name__}")
    unknown = sorted(set(data) - set(ENTRIES))
    if unknown:
        raise EnergyTableError(f"energy table {where}: unknown entry '{unknown[0]}'; the "
                               f"entries are {', '.join(ENTRIES)}")
    missing = [k for k in ENTRIES if k not in data]
    if missing:
        raise EnergyTableError(f"energy table {where}: entry '{missing[0]}' is missing; a "
                               f"table must set all of {', '.join(ENTRIES)}")
    return {k: _entry(k, data[k], where) for k in ENTRIES}


def load_table(path: str | Path) -> dict[str, Figure]:
    """Read a user table from a ``.toml`` or ``.json`` file."""
    path = Path(path)
    if not path.is_file():
        raise EnergyTableError(f"energy table '{path}' does not exist")
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise EnergyTableError(f"energy table '{path}' is not valid {kind}: {e}") from None
    return table_from_mapping(data, f"'{path}'")


# ---- operation costs ----------------------------------------------------------------------

def mult_pj(table: dict[str, Figure], bits: int) -> float:
    m8, m32 = table["mult_8b_pj"].value, table["mult_32b_pj"].value
    if bits <= 8:
        return m8 * (bits / 8) ** 2
    return m8 + (m32 - m8) * (bits * bits - 64) / (1024 - 64)


def add_pj(table: dict[str, Figure], bits: int) -> float:
    a8, a32 = table["add_8b_pj"].value, table["add_32b_pj"].value
    if bits <= 8:
        return a8 * bits / 8
    if bits <= 32:
        return a8 + (a32 - a8) * (bits - 8) / 24
    return a32 * bits / 32


@dataclass(frozen=True)
class GenerationEnergy:
    """Energy of one generation pass of a layer, by part (pJ)."""

    multiplies: float
    adds: float
    code_reads: float

    @property
    def total(self) -> float:
        return self.multiplies + self.adds + self.code_reads


def generation_energy(cfg: GeneratorConfig, table: dict[str, Figure]) -> GenerationEnergy:
    """One pass of the generator over the layer (see the module docstring)."""
    n = cfg.n_weights
    mult = mult_pj(table, cfg.engine_bits + 1)
    o_loop = cfg.Bo if cfg.level2 else 1
    l1 = n * o_loop * cfg.level1_steps          # level-1 engine multiplies of the pass
    l2 = n * cfg.Bo * cfg.level2_steps if cfg.level2 else 0
    adds = l1 * add_pj(table, cfg.w1_bits) + l2 * add_pj(table, cfg.acc_bits)
    if cfg.out_bits:
        adds += n * add_pj(table, cfg.acc_bits)           # the rounding add of requantization
    reads = code_reads(cfg).bits * table["sram_codes_pj_per_bit"].value
    return GenerationEnergy(multiplies=(l1 + l2) * mult, adds=adds, code_reads=reads)


def conv_energy(engine: Engine, macs: int, terms: int, table: dict[str, Figure]) -> float:
    """The convolution on the engine: ``macs * slices`` multiplies, one add each at the
    partial-sum width (pJ). Activation and output traffic is not counted (the same with
    either weight source)."""
    ops = macs * engine.slices_per_mac
    return ops * (mult_pj(table, engine.engine_bits + 1)
                  + add_pj(table, engine.psum_bits(terms)))


def fetch_energy(weights: int, weight_bits: int, pj_per_bit: float) -> float:
    return weights * weight_bits * pj_per_bit


def table_json(table: dict[str, Figure]) -> dict[str, dict]:
    return {k: {"value": f.value, "unit": f.unit, "meaning": ENTRIES[k][1], "source": f.source}
            for k, f in table.items()}


RULES = ("n-bit multiply: mult_8b_pj*(n/8)^2 up to 8 bits, interpolated in n^2 to the 32-bit "
         "figure; n-bit add: add_8b_pj*n/8 up to 8 bits, linear to the 32-bit figure; engine "
         "multiplier (s+1) x (s+1) bits signed; generation: every engine multiply of the "
         "schedule + one add per multiply at the width it accumulates (w1_bits / acc_bits) + "
         "one rounding add per weight + code-memory reads gated to one read per word use; "
         "fetch: weights x weight bits x pJ/bit")


__all__ = ["DEFAULT_TABLE", "IHP_SRAM", "ENTRIES", "Figure", "EnergyTableError", "load_table",
           "table_from_mapping", "mult_pj", "add_pj", "generation_energy", "GenerationEnergy",
           "conv_energy", "fetch_energy", "table_json", "RULES"]
