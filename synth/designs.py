# SPDX-License-Identifier: Apache-2.0
"""The designs a synthesis report holds, as ``(name, verilog, top, description)``:
the block of a config next to the reference designs it is compared with (see
:mod:`synth.report`). ``verilog`` is a function of no arguments that converts the design
when called: the report converts each design as its Yosys runs start, beside the runs
of the designs converted before it."""

from __future__ import annotations

from functools import partial

from insitugen.config import GeneratorConfig, RecombinationConfig
from insitugen.errors import ConfigError

__all__ = ["verilog_of", "recombination_designs", "generator_designs",
           "generator_recombinations", "dedicated_engine_bits"]


def verilog_of(component, name: str) -> str:
    """Verilog of an Amaranth component (no source locations, so it is byte-stable)."""
    from gen.verilog import amaranth_verilog

    return amaranth_verilog(component, name)


def _lazy(component_class, *args, name: str):
    """The Verilog of ``component_class(*args)``, built and converted when called (a
    component built and never elaborated would leave Amaranth's unused-elaboratable
    warning behind)."""
    return lambda: verilog_of(component_class(*args), name)


def recombination_designs(cfg: RecombinationConfig):
    """The unit, one engine lane and the full-width multiplier of a recombination config."""
    from gen.verilog import emit_verilog, top_name
    from hdl.reference import EngineLane, FullWidthMultiplier

    w = cfg.widths
    full = FullWidthMultiplier(cfg.a, cfg.x, cfg.terms)
    return [
        ("recombination", partial(emit_verilog, cfg), top_name(cfg),
         f"bit-level recombination unit ({cfg.mode}, {w.count} partials of {w.partial_bits} "
         f"bits -> {w.out_bits} bits, {cfg.pipeline_stages} pipeline stages)"),
        ("engine_lane", _lazy(EngineLane, cfg.engine_bits, w.partial_bits, name="engine_lane"),
         "engine_lane",
         f"one engine lane: {cfg.engine_bits + 1}x{cfg.engine_bits + 1}-bit signed multiplier "
         f"+ {w.partial_bits}-bit accumulator"),
        ("full_width_multiplier", partial(verilog_of, full, "full_width_multiplier"),
         "full_width_multiplier",
         f"unsliced MAC: {cfg.a_bits}-bit {cfg.a_encoding} x {cfg.x_bits}-bit {cfg.x_encoding}, "
         f"{full.result_bits}-bit accumulator over {cfg.terms} terms"),
    ]


def dedicated_engine_bits(cfg: GeneratorConfig) -> int:
    """Engine width at which no operand of ``cfg`` is sliced: the widest operand the engine
    multiplies in ``cfg``'s product order. The W1-free order (``vb``) multiplies only U
    and the shared product VB; W1 (``w1_bits``, 11 bits on the default layer) is never an
    operand there, so an engine as wide as W1 would build a larger dedicated generator than
    no slicing needs."""
    from insitugen.schedule import Schedule

    if Schedule(cfg).order == "vb":
        return max(cfg.qu, cfg.vb_bits)
    bits = [cfg.qb]
    if cfg.level1:
        bits.append(cfg.qu)
    if cfg.level2:
        bits += [cfg.qv, cfg.w1_operand.bits]
    return max(bits)


def generator_designs(cfg: GeneratorConfig):
    """The generator, its reference engine (and one lane), the dedicated generator and the
    stand-alone recombination units; and the dedicated config."""
    from gen.verilog import emit_verilog, top_name
    from hdl.reference import EngineLane, ReferenceEngine

    eb = dedicated_engine_bits(cfg)
    if eb > 16:
        raise ConfigError(f"the dedicated generator needs engine_bits = {eb} (> 16, the "
                          f"largest allowed): use narrower qb/qu/qv or fewer base_in terms")
    dedicated = cfg.replace(engine_bits=eb)
    return [
        ("generator", partial(emit_verilog, cfg), top_name(cfg),
         f"MLG generator, {cfg.lanes} lanes on a {cfg.engine_bits}-bit engine, "
         f"recombination '{cfg.recombination}'"),
        ("reference_engine", _lazy(ReferenceEngine, cfg.engine_bits, cfg.lanes, cfg.acc_bits,
                                   name="reference_engine"), "reference_engine",
         f"{cfg.lanes} engine lanes: {cfg.engine_bits + 1}x{cfg.engine_bits + 1}-bit signed "
         f"multiplier + {cfg.acc_bits}-bit accumulator each (synth options: the best for "
         f"one engine_lane)"),
        ("engine_lane", _lazy(EngineLane, cfg.engine_bits, cfg.acc_bits, name="engine_lane"),
         "engine_lane",
         "one lane of the reference engine (picks the reference engine's synth options)"),
        ("dedicated_generator", partial(emit_verilog, dedicated), top_name(dedicated),
         f"the same generator on a {eb}-bit engine (no operand sliced)"),
    ] + [(f"recombination_{lvl}", partial(emit_verilog, rc), top_name(rc), desc)
         for lvl, rc, desc in generator_recombinations(cfg)], dedicated


def generator_recombinations(cfg: GeneratorConfig) -> list[tuple[str, RecombinationConfig, str]]:
    """Stand-alone recombination units of one generator lane, level by level.

    They are the shift-add trees of the ``separate`` form (level 1: ``U x B``
    slices over ``Bi`` terms; level 2: ``V x W1`` slices over ``Bo`` terms), used to
    size the recombination share of the generator; a level whose operands are
    not sliced has none.
    """
    out = []
    levels = []
    if cfg.level1:
        levels.append(("level1", cfg.u_operand, cfg.b_operand, cfg.Bi))
    if cfg.level2:
        levels.append(("level2", cfg.v_operand, cfg.w1_operand, cfg.Bo))
    for lvl, a, x, terms in levels:
        if a.count * x.count == 1:
            continue
        rc = RecombinationConfig(engine_bits=cfg.engine_bits, a_bits=a.bits,
                                 a_encoding=a.encoding, a_slices=a.widths, x_bits=x.bits,
                                 x_encoding=x.encoding, x_slices=x.widths, terms=terms)
        out.append((lvl, rc, f"{lvl} recombination of one lane: {a.bits}-bit {a.encoding} x "
                             f"{x.bits}-bit {x.encoding} slices, {terms} terms "
                             f"({a.count * x.count} partials)"))
    return out
