# SPDX-License-Identifier: Apache-2.0
"""The PNG plots ``insitugen flow`` writes for its one layer (``<out_dir>/<name>.png``).

* ``area_by_design``: logic area of every synthesized design (the generator, the
  reference engine it reuses, the dedicated full-width generator, the recombination
  units ...), PDK-free NAND2 equivalents, each bar split by cell class (flops,
  XOR/XNOR, multiplexers, other gates) from the cell counts Yosys reported.
* ``cycles_vs_lower_bound``: cycles of one pass with the output always ready and
  under random back-pressure next to the lower bound (engine multiplies / lanes).
* ``memory_saved_vs_logic_added``: SRAM area of the full weights and of the codes,
  the memory area generation saves, and the logic area it adds over the engine.

A plot whose data the run does not have (synthesis skipped, a recombination config
without a cycle bound or memories) still exists and says in one line what is missing.
Matplotlib's object API on the Agg canvas, as :mod:`flows.sweep.plots`; no display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["FLOW_PLOTS", "CELL_CLASSES", "area_by_class", "draw_flow_plots"]

#: Cell classes of the area plot: name -> test on a Yosys generic cell type.
CELL_CLASSES: dict[str, Callable[[str], bool]] = {
    "flops": lambda cell: "DFF" in cell,
    "XOR / XNOR (adders, multipliers)": lambda cell: cell in ("$_XOR_", "$_XNOR_"),
    "multiplexers": lambda cell: cell in ("$_MUX_", "$_NMUX_"),
    "other gates": lambda cell: True,
}


def area_by_class(cells: Mapping[str, int]) -> dict[str, float]:
    """NAND2-equivalent area of PDK-free ``cells`` (type -> count) per :data:`CELL_CLASSES`
    (each cell in the first class that takes it); the classes sum to the design's area."""
    from synth.yosys import GATE_NAND2_EQ

    out = dict.fromkeys(CELL_CLASSES, 0.0)
    for cell, n in cells.items():
        name = next(k for k, takes in CELL_CLASSES.items() if takes(cell))
        out[name] += n * GATE_NAND2_EQ.get(cell, 0.0)
    return out


def _figure(width: float = 6.4) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, 4.4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _no_report(flow: Mapping[str, Any]) -> str:
    target = flow.get("synth", {}).get("target")
    return (f"ASIC area only: this run synthesized for --target {target} (see synth.md)"
            if target else "no synthesis in this run (--no-synth)")


def plot_area_by_design(flow: Mapping[str, Any], report: Mapping[str, Any] | None, ax) -> None:
    ax.set_title("Logic area by design and cell class (PDK-free, memories excluded)")
    if not report:
        _note(ax, _no_report(flow))
        return
    designs = report["designs"]
    names = list(designs)
    parts = {n: area_by_class(designs[n]["pdk_free"]["cells"]) for n in names}
    left = [0.0] * len(names)
    for k, cls in enumerate(CELL_CLASSES):
        widths = [parts[n][cls] for n in names]
        ax.barh(names, widths, left=left, label=cls, color=f"C{k}")
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for y, n in enumerate(names):
        ax.text(left[y], y, f" {designs[n]['pdk_free']['nand2_eq']:,.0f}", va="center",
                fontsize="small")
    ax.invert_yaxis()
    ax.set_xlim(0, max(left) * 1.18 if max(left) > 0 else 1)
    ax.set_xlabel("area [NAND2 equivalents]")
    ax.legend(fontsize="small", loc="lower right")
    ax.grid(axis="x", alpha=0.3)


def plot_cycles_vs_lower_bound(flow: Mapping[str, Any], report: Mapping[str, Any] | None,
                               ax) -> None:
    ax.set_title("Cycles of one pass vs the lower bound")
    sim = flow.get("sim", {})
    bound = sim.get("cycles_lower_bound")
    if not bound or not sim.get("cycles"):
        _note(ax, "this block has no cycle lower bound (generator configs only)")
        return
    bars = {"lower bound\n(multiplies / lanes)": bound, "output always\nready": sim["cycles"]}
    if sim.get("cycles_backpressure"):
        bars["random\nback-pressure"] = sim["cycles_backpressure"]
    ax.bar(list(bars), list(bars.values()), color=["C7", "C0", "C1"][:len(bars)])
    for x, v in enumerate(bars.values()):
        ax.text(x, v, f"{v:,}\n({100 * v / bound:.2f}% of bound)", ha="center",
                va="bottom", fontsize="small")
    ax.set_ylim(0, max(bars.values()) * 1.25)
    ax.set_ylabel("clock cycles")
    ax.grid(axis="y", alpha=0.3)


def plot_memory_saved_vs_logic_added(flow: Mapping[str, Any],
                                     report: Mapping[str, Any] | None, ax) -> None:
    ax.set_title("Memory area saved vs logic area added")
    mem = (report or {}).get("memory") or {}
    if "memory_saved_um2" not in mem:
        _note(ax, _no_report(flow) if not report
              else "this block stores no weights (generator configs only)")
        return
    added = mem["logic_added_um2"]
    logic = added.get("liberty_um2", added["pdk_free_um2"])
    source = "liberty" if "liberty_um2" in added else "PDK-free NAND2-eq x nand2_1"
    bars = {"full weights in SRAM": mem["weight_memory_um2"],
            "codes in SRAM": mem["code_memory_um2"],
            "memory saved": mem["memory_saved_um2"],
            f"logic added\n(generator - engine,\n{source})": logic}
    ax.barh(list(bars), list(bars.values()), color=["C7", "C2", "C0", "C3"])
    for y, v in enumerate(bars.values()):
        ax.text(max(v, 0), y, f" {v:,.0f}", va="center", fontsize="small")
    ax.invert_yaxis()
    ax.set_xlim(0, max(bars.values()) * 1.2)
    ax.set_xlabel(f"area [um^2] (SRAM at {mem['sram_um2_per_bit']} um^2/bit)")
    ratio = mem.get("memory_saved_over_logic_added")
    if ratio is not None:
        ax.set_title(f"Memory area saved vs logic area added ({ratio}x)")
    ax.grid(axis="x", alpha=0.3)


#: Plot name (file stem) -> drawing function ``(flow summary, synthesis report, axes)``.
FLOW_PLOTS: dict[str, Callable[..., None]] = {
    "area_by_design": plot_area_by_design,
    "cycles_vs_lower_bound": plot_cycles_vs_lower_bound,
    "memory_saved_vs_logic_added": plot_memory_saved_vs_logic_added,
}


def draw_flow_plots(flow: Mapping[str, Any], report: Mapping[str, Any] | None,
                    out_dir: str | Path) -> dict[str, Path]:
    """Every plot of :data:`FLOW_PLOTS` into ``out_dir/<name>.png`` (atomically); returns
    name -> path. ``flow``: the flow's summary (``flow.json``); ``report``: the synthesis
    report, or None when synthesis was skipped."""
    from insitugen.files import atomic_write

    out_dir = Path(out_dir)
    written = {}
    for name, draw in FLOW_PLOTS.items():
        fig, ax = _figure(7.2 if name == "area_by_design" else 6.4)
        draw(flow, report, ax)
        path = out_dir / f"{name}.png"
        atomic_write(path, lambda tmp, fig=fig: fig.savefig(tmp, format="png"))
        written[name] = path
    return written
