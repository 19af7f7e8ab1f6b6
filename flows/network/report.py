# SPDX-License-Identifier: Apache-2.0
"""The network report as one screen of text, JSON, CSV and Markdown.

Every format is built from the same per-layer rows (:func:`layer_row`) and totals
(:func:`totals`), so the files and the screen cannot disagree.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
from pathlib import Path

from insitugen import __version__

from .analysis import ASSUMPTIONS, LayerResult, NetworkResult
from .energy import RULES, table_json

FILES = ("network.json", "network.csv", "network.md")
#: Width the screen text wraps at.
SCREEN = 116


def _form(r: LayerResult) -> str:
    if not r.generated:
        return "fetch"
    cfg = r.layer.cfg
    return "+".join(n for n, on in (("I", cfg.level1), ("C", cfg.level2)) if on) or "Q"


def _shape(r: LayerResult) -> str:
    return "x".join(map(str, r.layer.weight_shape))


def layer_row(r: LayerResult, batch: int) -> dict:
    """One layer's figures (times in seconds, energies in pJ)."""
    cfg = r.layer.cfg
    e = r.energy
    w = r.layer.weights
    row = {
        "layer": r.layer.name, "kind": r.layer.kind, "weight_shape": _shape(r),
        "groups": r.layer.groups, "out_hw": "x".join(map(str, r.layer.out_hw)),
        "generated": r.generated, "form": _form(r), "reason": r.layer.reason,
        "base_in": cfg.base_in if cfg else None, "base_out": cfg.base_out if cfg else None,
        "qb": cfg.qb if cfg else None, "qu": cfg.qu if cfg and cfg.level1 else None,
        "qv": cfg.qv if cfg and cfg.level2 else None,
        "weights": w, "weight_bits": r.weight_bits, "weight_memory_bits": r.weight_memory_bits,
        "code_bits": r.code_bits, "compression": r.compression,
        "macs": r.macs, "conv_cycles": r.conv_cycles, "gen_cycles": r.gen_cycles,
        "gen_cycles_lower_bound": r.gen_lower_bound,
        "gen_efficiency": (r.gen_lower_bound / r.gen_cycles) if r.gen_cycles else None,
        "gen_over_conv": r.gen_over_conv, "gen_over_fetch": r.gen_over_fetch,
        "gen_s": r.gen_s, "conv_s": r.conv_s, "fetch_s": r.fetch_s,
        "shared_s": r.shared_s, "overlapped_s": r.overlapped_s, "fetch_baseline_s": r.fetch_layer_s,
        "bottleneck_over_conv": "conv" in r.bottleneck,
        "bottleneck_over_fetch": "fetch" in r.bottleneck,
        "break_even_hw": r.break_even_hw,
        "break_even_batch": (-(-r.break_even_positions * batch // 1)
                             if r.break_even_positions is not None and r.layer.kind != "conv"
                             else None),
        "energy_generation_pj": e.get("generation"),
        "energy_gen_multiplies_pj": e.get("gen_multiplies"),
        "energy_gen_adds_pj": e.get("gen_adds"),
        "energy_gen_code_reads_pj": e.get("gen_code_reads"),
        "energy_conv_pj": e["conv"], "energy_dram_pj": e["dram"], "energy_sram_pj": e["sram"],
        "gen_pj_per_weight": e["generation"] / w if r.generated else None,
        "dram_pj_per_weight": e["dram"] / w, "sram_pj_per_weight": e["sram"] / w,
        "gen_pj_per_weight_alt_sram": (e["generation_alt"] / w
                                       if "generation_alt" in e else None),
        "sram_pj_per_weight_alt_sram": e["sram_alt"] / w if "sram_alt" in e else None,
        # below this DRAM bandwidth fetching the layer takes longer than generating it
        "break_even_bandwidth_gbs": (r.weight_memory_bits / 8 / r.gen_s / 1e9
                                     if r.generated else None),
    }
    return row


def totals(res: NetworkResult) -> dict:
    gen_w = res.generated_weights
    all_w = sum(r.layer.weights for r in res.layers)
    gen_pj = res.energy_total("generation")
    code = res.total("code_bits")
    wbits_gen = sum(r.weight_memory_bits for r in res.layers if r.generated)
    return {
        "layers": len(res.layers), "generated_layers": sum(r.generated for r in res.layers),
        "weights": all_w, "generated_weights": gen_w,
        "weight_memory_bits": sum(r.weight_memory_bits for r in res.layers),
        "code_bits": code, "compression_of_generated": wbits_gen / code if code else None,
        "macs": res.total("macs"), "conv_cycles": res.total("conv_cycles"),
        "gen_cycles": res.total("gen_cycles"),
        "gen_over_conv": res.total("gen_cycles") / res.total("conv_cycles"),
        "conv_s": res.total("conv_s"), "gen_s": res.total("gen_s"),
        "fetch_s": res.total("fetch_s"), "shared_s": res.total("shared_s"),
        "overlapped_s": res.total("overlapped_s"), "fetch_baseline_s": res.total("fetch_layer_s"),
        "energy_generation_pj": gen_pj, "energy_conv_pj": res.energy_total("conv"),
        "energy_dram_pj": res.energy_total("dram"), "energy_sram_pj": res.energy_total("sram"),
        "energy_dram_generated_layers_pj": res.energy_total("dram", generated_only=True),
        "energy_sram_generated_layers_pj": res.energy_total("sram", generated_only=True),
        "energy_design_weights_pj": res.design_energy_pj,
        "gen_pj_per_weight": gen_pj / gen_w if gen_w else None,
        "gen_pj_per_weight_alt_sram": (res.energy_total("generation_alt") / gen_w
                                       if gen_w and res.alt_sram else None),
        "sram_pj_per_weight_alt_sram": (res.energy_total("sram_alt") / all_w
                                        if res.alt_sram else None),
        "break_even_bandwidth_gbs": (wbits_gen / 8 / res.total("gen_s") / 1e9
                                     if gen_w else None),
        "dram_pj_per_weight": res.energy_total("dram") / all_w,
        "sram_pj_per_weight": res.energy_total("sram") / all_w,
        "bottleneck_over_conv": [r.layer.name for r in res.layers if "conv" in r.bottleneck],
        "bottleneck_over_fetch": [r.layer.name for r in res.layers if "fetch" in r.bottleneck],
    }


def to_dict(res: NetworkResult) -> dict:
    return {
        "insitugen_version": __version__,
        "model": res.name,
        "settings": res.settings,
        "engine": {"engine_bits": res.engine.engine_bits, "lanes": res.engine.lanes,
                   "act_bits": res.engine.act_bits, "weight_bits": res.engine.weight_bits,
                   "slices_per_mac": res.engine.slices_per_mac,
                   "slicing": res.engine.describe()},
        "clock_mhz": res.clock.mhz, "clock_source": res.clock.source,
        "batch": res.batch, "dram_bandwidth_gbs": res.bandwidth_gbs,
        "energy_table": table_json(res.table), "energy_rules": RULES,
        "assumptions": list(ASSUMPTIONS),
        "layers": [layer_row(r, res.batch) for r in res.layers],
        "totals": totals(res),
        "measured_energy": res.measured,
    }


def to_json(res: NetworkResult) -> str:
    return json.dumps(to_dict(res), indent=2) + "\n"


def to_csv(res: NetworkResult) -> str:
    rows = [layer_row(r, res.batch) for r in res.layers]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


# ---- human-readable tables ----------------------------------------------------------------

def _f(v, fmt: str, none: str = "-") -> str:
    return none if v is None else format(v, fmt)


def _table_cells(r: LayerResult, batch: int) -> list[str]:
    row = layer_row(r, batch)
    be = ("-" if r.break_even_positions is None else
          f"{row['break_even_hw']:.1f}" if r.layer.kind == "conv" else
          f"b{row['break_even_batch']:.0f}")
    flags = "".join(("C" if row["bottleneck_over_conv"] else "",
                     "F" if row["bottleneck_over_fetch"] else ""))
    return [row["layer"], row["weight_shape"], row["out_hw"], row["form"],
            _f(row["compression"], ".1f"), _f(r.gen_cycles / 1e3 if r.generated else None, ",.1f"),
            f"{r.conv_cycles / 1e3:,.1f}", _f(row["gen_over_conv"], ".2f"),
            f"{r.fetch_s * 1e6:,.1f}", be, _f(row["gen_pj_per_weight"], ".0f"), flags or "-"]


HEADER = ["layer", "weight", "out", "MLG", "compr", "gen kcyc", "conv kcyc", "gen/conv",
          "fetch us", "break-even", "gen pJ/w", "bottleneck"]


def _summary_lines(res: NetworkResult) -> list[str]:
    t = totals(res)
    ms = 1e3
    lines = [
        f"layers: {t['generated_layers']} of {t['layers']} generated ({t['generated_weights']:,}"
        f" of {t['weights']:,} weights); codes {t['code_bits'] / 1e6:.3f} Mbit vs "
        f"{t['weight_memory_bits'] / 1e6:.2f} Mbit of {res.engine.weight_bits}-bit weights"
        + (f" (generated layers {t['compression_of_generated']:.1f}x smaller)"
           if t["compression_of_generated"] else ""),
        f"cycles: generation {t['gen_cycles'] / 1e6:.2f} M, convolution "
        f"{t['conv_cycles'] / 1e6:.2f} M (generation = {100 * t['gen_over_conv']:.0f}% of the "
        f"convolution)",
        f"time at {res.clock.mhz:.1f} MHz, batch {res.batch}: generation sharing the engine "
        f"{t['shared_s'] * ms:,.1f} ms, overlapped on its own lanes {t['overlapped_s'] * ms:,.1f}"
        f" ms; fetching every weight {t['fetch_baseline_s'] * ms:,.1f} ms (the DRAM fetch "
        f"itself {t['fetch_s'] * ms:.3f} ms at {res.bandwidth_gbs:g} GB/s)",
    ]
    if t["gen_pj_per_weight"] is not None:
        lines.append(
            f"generated weights: generation {t['gen_pj_per_weight']:.1f} pJ/weight "
            f"({t['energy_generation_pj'] / 1e6:,.1f} uJ) vs fetching {t['dram_pj_per_weight']:.1f}"
            f" pJ/weight from DRAM ({t['energy_dram_generated_layers_pj'] / 1e6:,.1f} uJ), "
            f"{t['sram_pj_per_weight']:.1f} from on-chip SRAM "
            f"({t['energy_sram_generated_layers_pj'] / 1e6:,.1f} uJ); the convolution itself "
            f"{t['energy_conv_pj'] / 1e6:,.1f} uJ")
        if t["gen_pj_per_weight_alt_sram"] is not None:
            lines.append(
                f"with the IHP SG13G2 SRAM macros (130 nm) for codes and weights: generation "
                f"{t['gen_pj_per_weight_alt_sram']:.1f} pJ/weight, SRAM "
                f"{t['sram_pj_per_weight_alt_sram']:.1f} pJ/weight")
        lines.append(f"fetching is slower than generating below "
                     f"{t['break_even_bandwidth_gbs'] * 1e3:,.1f} MB/s of DRAM bandwidth")
    if res.measured:
        lines.append(_measured_line(res.measured))
    over_c, over_f = t["bottleneck_over_conv"], t["bottleneck_over_fetch"]
    lines.append(f"generation longer than the convolution (C): {_names(over_c)}; longer than "
                 f"the fetch (F): {_names(over_f)}")
    lines.append(f"clock: {res.clock.source}")
    return lines


def _measured_line(m: dict) -> str:
    c = m["config"]
    e = m["energy_pj"]
    clock = 100 * (e["clock_pins"] + e["clock_net"]) / e["total_logic"]
    return (f"measured (estimate, {m['liberty']}): the generator's logic "
            f"{m['logic_pj_per_weight']:.1f} pJ/weight (clock {clock:.0f} %) "
            f"on a {c['out_channels']}x{c['in_channels']}x{c['kernel']}x{c['kernel']} layer, "
            f"({c['base_in']}, {c['base_out']}, {c['qb']}, {c['qu']}, {c['qv']}), "
            f"{c['engine_bits']}-bit x {c['lanes']} lanes, gate level bit-exact; the table's "
            f"arithmetic for that layer {m['table_arithmetic_pj_per_weight']:.1f} pJ/weight, "
            f"its code reads {m['table_code_reads_pj_per_weight']:.1f} pJ/weight")


def _names(names: list[str]) -> str:
    if not names:
        return "none"
    if len(names) > 6:
        return f"{len(names)} layers ({', '.join(names[:3])}, ..., {names[-1]})"
    return ", ".join(names)


def to_text(res: NetworkResult) -> str:
    """One screen: a line of settings, the per-layer table, the totals."""
    cells = [_table_cells(r, res.batch) for r in res.layers]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(HEADER)]
    left = {0, 1, 2, 3}

    def fmt(row):
        return " ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    s = res.settings
    head = (f"{res.name}: {s.get('mlg', 'MLG settings per layer')}; {res.engine.describe()}; "
            f"batch {res.batch}, input {s.get('input', '?')}")
    summary = [textwrap.fill(line, SCREEN, subsequent_indent="  ")
               for line in _summary_lines(res)]
    lines = [textwrap.fill(head, SCREEN, subsequent_indent="  "), fmt(HEADER)]
    lines += [fmt(c) for c in cells] + [""] + summary
    return "\n".join(lines) + "\n"


def to_markdown(res: NetworkResult) -> str:
    s = res.settings
    out = [f"# insitugen network: {res.name}", "",
           f"MLG: {s.get('mlg', 'per layer')}; {res.engine.describe()}; batch {res.batch}; "
           f"input {s.get('input', '?')}; clock {res.clock.mhz:.1f} MHz; DRAM "
           f"{res.bandwidth_gbs:g} GB/s.", "",
           "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(_table_cells(r, res.batch)) + " |" for r in res.layers]
    out += ["", "MLG: I = intra-kernel level, C = cross-kernel level, fetch = weights fetched "
            "(reason below). gen/conv: generation cycles over convolution cycles. break-even: "
            "output feature map side at which the convolution takes as long as generating "
            "(linear: bN = batch). bottleneck: generation longer than the convolution (C) or "
            "than fetching the weights (F).", ""]
    out += ["## Totals", ""] + [f"- {line}" for line in _summary_lines(res)]
    fetched = [r for r in res.layers if not r.generated]
    if fetched:
        out += ["", "## Layers not generated", ""]
        out += [f"- {r.layer.name} ({_shape(r)}): {r.layer.reason}" for r in fetched]
    out += ["", "## Assumptions", ""] + [f"- {a}" for a in ASSUMPTIONS]
    out += [f"- energy: {RULES}", "", "## Energy figures", "",
            "| entry | value | meaning | source |", "|---|---|---|---|"]
    for k, v in table_json(res.table).items():
        out.append(f"| {k} | {v['value']:g} {v['unit']} | {v['meaning']} | {v['source']} |")
    return "\n".join(out) + "\n"


def write_files(res: NetworkResult, out_dir: Path) -> list[Path]:
    """JSON, CSV and Markdown into ``out_dir`` (each written atomically)."""
    from insitugen.files import atomic_write

    paths = []
    for name, text in zip(FILES, (to_json(res), to_csv(res), to_markdown(res)), strict=True):
        path = Path(out_dir) / name
        atomic_write(path, lambda tmp, t=text: Path(tmp).write_text(t))
        paths.append(path)
    return paths


__all__ = ["layer_row", "totals", "to_dict", "to_json", "to_csv", "to_text", "to_markdown",
           "write_files", "FILES"]
