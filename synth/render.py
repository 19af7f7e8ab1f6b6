# SPDX-License-Identifier: Apache-2.0
"""A synthesis report as JSON (:func:`write_report_json`) and Markdown
(:func:`report_markdown`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from insitugen.files import atomic_write_text

__all__ = ["write_report_json", "report_markdown", "ratio_table", "fmt", "cached_phrase"]


def write_report_json(report: dict[str, Any], path) -> Path:
    """Write ``report`` as JSON atomically (a failure leaves no partial file)."""
    return atomic_write_text(path, json.dumps(report, indent=2, sort_keys=False) + "\n")


def _fmt(v, digits=1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


#: A figure of a report table (thousands separated, ``-`` for none), for other renderers.
fmt = _fmt


def ratio_table(ratios: dict[str, Any], columns) -> list[str]:
    """The ratio table of a report: one column per ``(key, heading)`` of ``columns``
    (ASIC: the area measures; FPGA: the resources), then the definition."""
    keys = [k for k, _ in columns]
    lines = ["| ratio | " + " | ".join(h for _, h in columns) + " | definition |",
             "|" + "---|" * (len(columns) + 2)]
    for name, r in ratios.items():
        if any(k in r for k in keys):
            vals = [_fmt(r.get(k), 4) for k in keys]
        elif "value" in r:
            vals = [_fmt(r["value"], 4)] + [""] * (len(keys) - 1)
        else:
            vals = [", ".join(f"{k} = {_fmt(v, 4)}" for k, v in r.items()
                              if k != "definition")] + [""] * (len(keys) - 1)
        lines.append(f"| {name} | " + " | ".join(vals) + f" | {r['definition']} |")
    return lines


def report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: one table of designs, one of ratios, tools and options."""
    lib = report.get("liberty")
    lines = [f"# insitugen synthesis: {report['block']} (config {report['config_digest']})", ""]
    head = ["design", "NAND2-eq (PDK-free)", "flops", "depth", "memory bits"]
    if lib:
        head += ["um^2", "GE", "delay estimate (ns)", "options (liberty)"]
    else:
        head += ["options"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, d in report["designs"].items():
        pf = d["pdk_free"]
        row = [name, _fmt(pf["nand2_eq"]), _fmt(pf["flops"]), _fmt(pf["logic_depth"]),
               _fmt(d["memory_bits"])]
        if lib:
            lb = d["liberty"]
            row += [_fmt(lb["area_um2"]), _fmt(lb["ge"]), _fmt(lb["delay_estimate"], 3),
                    " ".join(lb["options"]) or "(none)"]
        else:
            row += [" ".join(pf["options"]) or "(none)"]
        lines.append("| " + " | ".join(row) + " |")
    lines += [""] + ratio_table(report["ratios"], (("pdk_free", "PDK-free"),
                                                   ("liberty", "liberty")))
    if "memory" in report:
        m = report["memory"]
        lines += ["", f"Memory: codes {m['code_bits']:,} bits, full weights "
                      f"{m['weight_bits_at_out_width']:,} bits (compression {m['compression']}x), "
                      f"synthesized memories {m['synthesized_memory_bits']:,} bits"
                      + (f", of them a W1 buffer of {m['w1_buffer_bits']:,} bits"
                         if m.get("w1_buffer_bits") else "") + "."]
        if "memory_saved_um2" in m:
            lines += ["", f"Area: the compression saves {m['memory_saved_um2']:,.0f} um^2 of "
                          f"SRAM ({m['sram_um2_per_bit']} um^2/bit, IHP SG13G2 SRAM macro) for "
                          f"{logic_added_phrase(m)}."]
    tried = ", ".join(" ".join(o) or "(none)" for o in report["flow"]["option_sets_tried"])
    lines += ["", f"Tools: {report['tools']['yosys']}; options tried: {tried} (best per "
                  f"design)."]
    if lib:
        lines.append(f"Liberty: {lib['file']} ({lib['library']}), 1 GE = {lib['nand2_cell']} = "
                     f"{lib['nand2_area_um2']} um^2; delay is an estimate "
                     f"(synth.timing).")
    lines.append(f"Synthesis time: {report['seconds']} s.{cached_phrase(report)}")
    return "\n".join(lines) + "\n"


def logic_added_phrase(m: dict) -> str:
    """The logic side of "memory saved vs logic added" (``report["memory"]``): the um^2
    added over the reference engine and the ratio, or, where the generator's logic is
    smaller than the engine's (the ratio is then undefined), how much smaller."""
    added = m["logic_added_um2"]
    la = added.get("liberty_um2", added["pdk_free_um2"])
    if la > 0:
        return (f"{la:,.0f} um^2 of logic added over the reference engine "
                f"({m['memory_saved_over_logic_added']}x)")
    return (f"no logic added: the generator is {-la:,.0f} um^2 smaller than the reference "
            f"engine")


def cached_phrase(report: dict) -> str:
    """`` N of M designs from the synthesis cache (...)``, or "" when Yosys ran on all."""
    designs = report.get("designs", {})
    hits = [n for n, d in designs.items()
            if all(d[m].get("cached") for m in ("pdk_free", "liberty") if m in d)]
    if not hits:
        return ""
    return (f" {len(hits)} of {len(designs)} designs from the synthesis cache (identical "
            f"Verilog, script, liberty and Yosys; INSITUGEN_SYNTH_CACHE=0 runs Yosys on them)")
