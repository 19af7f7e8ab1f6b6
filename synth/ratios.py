# SPDX-License-Identifier: Apache-2.0
"""Ratios and memory figures of a synthesis report (each with its ``definition``)."""

from __future__ import annotations

from typing import Any, Callable

from insitugen.config import GeneratorConfig, RecombinationConfig

__all__ = ["ratio", "AREA_MEASURES", "recombination_ratios", "generator_ratios", "memory_area",
           "SRAM_UM2_PER_BIT", "NAND2_UM2"]


#: The area measures of an ASIC report: (ratio key, design section, field).
AREA_MEASURES = (("pdk_free", "pdk_free", "nand2_eq"), ("liberty", "liberty", "ge"))


def ratio(designs, num: Callable[[str], float], den: Callable[[str], float], *,
          measures=AREA_MEASURES) -> dict[str, float]:
    """The ratio for each measure present (by default the area measures: PDK-free GE,
    liberty GE; an FPGA report passes its resource counts)."""
    out = {}
    for name, mode, key in measures:
        if all(mode in d for d in designs.values()):
            def area(n, key=key, mode=mode):
                return designs[n][mode][key]
            d = den(area)
            out[name] = round(num(area) / d, 4) if d else None
    return out


def recombination_ratios(cfg: RecombinationConfig, designs) -> dict[str, Any]:
    n = cfg.widths.count
    lanes = n if cfg.mode == "parallel" else 1
    sliced_rate = lanes / (n * cfg.terms)           # results per cycle
    full_rate = 1 / cfg.terms
    R, L, F = "recombination", "engine_lane", "full_width_multiplier"
    return {
        "engine_lanes_needed": {
            "value": lanes,
            "definition": "engine lanes feeding the unit: one per slice pair (S_a*S_x) in "
                          "parallel mode, 1 in serial mode"},
        "results_per_cycle": {
            "sliced": sliced_rate, "full_width": full_rate,
            "definition": "finished products (dot products of `terms` products) per cycle: "
                          "sliced = lanes / (S_a*S_x*terms), full width = 1/terms"},
        "recombination_over_engine_lane": {
            **ratio(designs, lambda a: a(R), lambda a: a(L)),
            "definition": "area(recombination unit) / area(one engine lane)"},
        "recombination_share_of_sliced_path": {
            **ratio(designs, lambda a: a(R), lambda a: lanes * a(L) + a(R)),
            "definition": "area(recombination) / (engine_lanes_needed * area(engine lane) "
                          "+ area(recombination))"},
        "recombination_over_engine": {
            **ratio(designs, lambda a: a(R), lambda a: lanes * a(L)),
            "definition": "area(recombination) / (engine_lanes_needed * area(engine lane)): "
                          "the area the unit adds to the engine it reuses"},
        "sliced_path_over_full_width": {
            **ratio(designs, lambda a: lanes * a(L) + a(R), lambda a: a(F)),
            "definition": "(engine_lanes_needed * area(engine lane) + area(recombination)) / "
                          "area(full-width multiplier)"},
        "sliced_over_full_width_area_per_throughput": {
            **ratio(designs, lambda a: (lanes * a(L) + a(R)) / sliced_rate,
                     lambda a: a(F) / full_rate),
            "definition": "(sliced path area / sliced results per cycle) / (full-width area / "
                          "full-width results per cycle); equals sliced_path_over_full_width "
                          "in parallel mode"},
    }


#: SRAM area per bit (um^2) used to turn memory bits into area: the IHP SG13G2 open SRAM
#: macro RM_IHPSG13_1P_1024x64_c2_bm_bist, 336.46 um x 784.48 um = 263,946 um^2 for
#: 65,536 bits, periphery included (IHP-Open-PDK, ihp-sg13g2/libs.ref/sg13g2_sram/doc/
#: RM_IHPSG13_1P_1024x64_c2_bm_bist.txt). Smaller macros are less dense, so for small
#: code memories this under-states their area, and the saved area is a lower bound only
#: where the weights would sit in macros at least this large.
SRAM_UM2_PER_BIT = 263946.14 / 65536
#: um^2 of one NAND2 equivalent (IHP sg13g2_nand2_1), to put PDK-free logic next to SRAM um^2.
NAND2_UM2 = 7.2576


def memory_area(cfg: GeneratorConfig, designs) -> dict[str, Any]:
    """Memory area saved (full weights minus codes and the W1 buffer of the w1once order,
    in SRAM at :data:`SRAM_UM2_PER_BIT`) next to the logic area the generator adds over the
    reference engine."""
    from insitugen.schedule import Schedule

    w1_buffer = Schedule(cfg).w1_buffer_bits
    saved = (cfg.weight_memory_bits - cfg.code_memory_bits - w1_buffer) * SRAM_UM2_PER_BIT
    added = {}
    g, r = designs["generator"], designs["reference_engine"]
    added["pdk_free_um2"] = round((g["pdk_free"]["nand2_eq"] - r["pdk_free"]["nand2_eq"])
                                  * NAND2_UM2, 1)
    if "liberty" in g and "liberty" in r:
        added["liberty_um2"] = round(g["liberty"]["area_um2"] - r["liberty"]["area_um2"], 1)
    out = {
        "sram_um2_per_bit": round(SRAM_UM2_PER_BIT, 4),
        "code_memory_um2": round(cfg.code_memory_bits * SRAM_UM2_PER_BIT, 1),
        "weight_memory_um2": round(cfg.weight_memory_bits * SRAM_UM2_PER_BIT, 1),
        "w1_buffer_um2": round(w1_buffer * SRAM_UM2_PER_BIT, 1),
        "memory_saved_um2": round(saved, 1),
        "logic_added_um2": added,
        "memory_area_definition": (
            "SRAM area at sram_um2_per_bit (IHP SG13G2 1024x64 SRAM macro, periphery "
            "included); memory_saved_um2 = (weight bits - code bits - W1 buffer bits) x that "
            "density; "
            "logic_added_um2 = (generator - reference engine) logic, PDK-free as NAND2-eq x "
            f"{NAND2_UM2} um^2 (IHP nand2_1), or from the liberty"),
    }
    key = "liberty_um2" if "liberty_um2" in added else "pdk_free_um2"
    out["memory_saved_over_logic_added"] = (round(saved / added[key], 2) if added[key] > 0
                                            else None)
    return out


def generator_ratios(cfg: GeneratorConfig, designs, dedicated) -> tuple[dict, dict]:
    """The ratios of a generator report and its memory figures (bits and SRAM area)."""
    G, R, D = "generator", "reference_engine", "dedicated_generator"
    ratios = {
        "overhead_over_reference_engine": {
            **ratio(designs, lambda a: a(G) - a(R), lambda a: a(R)),
            "definition": "(area(generator) - area(reference engine)) / area(reference engine): "
                          "what recombination, sequencing and buffers add to the engine "
                          "(memories excluded: reported in bits)"},
        "generator_over_dedicated": {
            **ratio(designs, lambda a: a(G), lambda a: a(D)),
            "definition": "area(generator on the sliced engine) / area(dedicated full-width "
                          "generator), logic only"},
        "cycles_ratio_dedicated_over_generator": {
            "value": round(max(dedicated.macs_per_weight, 1) / max(cfg.macs_per_weight, 1), 4),
            "definition": "engine multiplies per weight, dedicated / sliced (the dedicated "
                          "generator is this much faster per weight)"},
    }
    recs = [n for n in designs if n.startswith("recombination_")]
    ratios["recombination_share"] = {
        **ratio(designs, lambda a: cfg.lanes * sum(a(n) for n in recs), lambda a: a(G)),
        "definition": "lanes * sum over levels of area(stand-alone recombination unit of one "
                      "lane, designs recombination_level*) / area(generator): the share the "
                      "shift-add recombination (separate form) takes; 0 when nothing is sliced"}
    from insitugen.schedule import Schedule

    sched = Schedule(cfg)
    # the memories the RTL declares: the code memories and, in the w1once order, the W1 buffer
    declared = sum(sched.memory_bits.values()) + sched.w1_buffer_bits
    memory = {
        "declared_memory_bits": declared,
        "code_bits": cfg.code_memory_bits,
        "w1_buffer_bits": sched.w1_buffer_bits,
        "weight_bits_at_out_width": cfg.weight_memory_bits,
        "compression": round(cfg.weight_memory_bits / cfg.code_memory_bits, 3),
        "synthesized_memory_bits": designs[G]["memory_bits"],
        **memory_area(cfg, designs),
        "definition": "code_bits = bits of the B/U/V codes; weight_bits_at_out_width = "
                      "p*q*K*weight_bits (the full weights the codes replace); compression = "
                      "weight bits / code bits; w1_buffer_bits = the W1 buffer of the w1once "
                      "order (0 in the others); synthesized_memory_bits = $mem_v2 bits of the "
                      "generator netlist",
    }
    return ratios, memory
