# SPDX-License-Identifier: Apache-2.0
"""PNG plots of a design-space sweep (rows of :func:`flows.sweep.run_sweep`).

Four figures, each written atomically as ``<dir>/<name>.png`` by :func:`draw_plots`:

* ``overhead_vs_engine_bits``: logic overhead of in situ generation
  (``overhead`` = (generator - engine) / engine area, in %) against the engine
  precision ``engine_bits``, one marker per point coloured by ``lanes`` (by
  ``qu`` when lanes is not swept), medians joined, and the 5% overhead target
  dashed.
* ``area_vs_qu``: generator logic area against the coefficient precision
  ``qu``, one line per ``engine_bits`` (median over the other swept fields), the
  reference engine's area dotted in the same colour; one panel per ``lanes``
  value when the sweep has 2 to 4 of them.
* ``memory_saved_vs_logic_added``: memory saved (weight bits - code bits)
  against logic added (generator - engine area); the Pareto front (most
  memory saved for the least logic, the ``pareto`` column) is marked and joined.
* ``fmax_vs_lanes``: estimated Fmax (``fmax_mhz``) against ``lanes``, coloured
  by ``engine_bits``; without a delay estimate (PDK-free synthesis) the
  logic depth of the generator (``depth``, cells on the longest path) instead,
  and the axis says so.

Only rows with ``status = "ok"`` and the needed numbers are
drawn; a plot without any such row shows a one-line note saying what is
missing, so every file exists after a sweep. Matplotlib's object API with the
Agg canvas is used directly (no ``pyplot`` state, no display needed).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["PLOTS", "draw_plots", "plot_overhead_vs_engine_bits", "plot_area_vs_qu",
           "plot_memory_saved_vs_logic_added", "plot_fmax_vs_lanes"]

Rows = Sequence[Mapping[str, Any]]

#: The project's area target: in situ generation adds at most 5% to the engine it reuses.
OVERHEAD_TARGET = 0.05

_SIZE = (6.4, 4.4)
_DPI = 110


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def _usable(rows: Rows, *keys: str) -> list[Mapping[str, Any]]:
    return [r for r in rows if r.get("status") == "ok"
            and all(_num(r.get(k)) for k in keys)]


def _new_figure() -> tuple[Figure, Any]:
    fig = Figure(figsize=_SIZE, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no evaluated point has {what}", ha="center", va="center",
            transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _area_label(rows: Rows) -> str:
    units = {r.get("area_unit") for r in rows if r.get("area_unit")}
    return f" [{units.pop()}]" if len(units) == 1 else ""


def _colours(fig: Figure, keys: Sequence[Any]) -> dict[Any, Any]:
    import matplotlib
    cmap = matplotlib.colormaps["viridis"]
    keys = sorted(keys)
    n = max(len(keys) - 1, 1)
    return {k: cmap(0.9 * i / n) for i, k in enumerate(keys)}


def _legend_outside(fig: Figure, ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.set_size_inches(_SIZE[0] * 1.2, _SIZE[1])
        fig.legend(handles, labels, loc="outside right upper", fontsize="small")


def plot_overhead_vs_engine_bits(rows: Rows, fig: Figure, ax) -> None:
    """Coloured by ``lanes`` when the sweep varies it (the fixed control logic is shared
    by the lanes, so the overhead falls with them), else by ``qu``; a line joins the
    medians of each colour."""
    data = _usable(rows, "engine_bits", "overhead")
    ax.set_title("Logic overhead of in situ generation vs engine precision")
    if not data:
        _empty(ax, "an engine area and an overhead")
        return
    group = "lanes" if len({r.get("lanes") for r in data}) > 1 else "qu"
    colour = _colours(fig, {r.get(group) for r in data})
    groups: dict[Any, list] = defaultdict(list)
    for r in data:
        groups[r.get(group)].append(r)
    for g, rs in sorted(groups.items()):
        ax.scatter([r["engine_bits"] for r in rs], [100 * r["overhead"] for r in rs],
                   color=colour[g], label=f"{group} = {g}", alpha=0.7, s=24)
        by_bits: dict[int, list[float]] = defaultdict(list)
        for r in rs:
            by_bits[r["engine_bits"]].append(100 * r["overhead"])
        xs = sorted(by_bits)
        ax.plot(xs, [statistics.median(by_bits[x]) for x in xs], color=colour[g], lw=1)
    ax.axhline(100 * OVERHEAD_TARGET, color="tab:red", ls="--", lw=1,
               label=f"{100 * OVERHEAD_TARGET:.0f}% target")
    ax.set_xticks(sorted({r["engine_bits"] for r in data}))
    ax.set_xlabel("engine precision engine_bits [bits]")
    ax.set_ylabel("logic overhead (generator - engine) / engine [%]")
    ax.grid(alpha=0.3)
    _legend_outside(fig, ax)


def _area_panel(ax, data, colour) -> None:
    by_engine: dict[int, list] = defaultdict(list)
    for r in data:
        by_engine[r["engine_bits"]].append(r)
    for bits, rs in sorted(by_engine.items()):
        per_qu: dict[int, list[float]] = defaultdict(list)
        eng_qu: dict[int, list[float]] = defaultdict(list)
        for r in rs:
            per_qu[r["qu"]].append(r["generator_area"])
            if _num(r.get("engine_area")):
                eng_qu[r["qu"]].append(r["engine_area"])
        xs = sorted(per_qu)
        ax.plot(xs, [statistics.median(per_qu[x]) for x in xs], marker="o",
                color=colour[bits], label=f"generator, {bits}-bit engine")
        if any(len(v) > 1 for v in per_qu.values()):     # other fields vary: show the spread
            ax.scatter([r["qu"] for r in rs], [r["generator_area"] for r in rs],
                       color=colour[bits], s=10, alpha=0.4)
        ex = sorted(eng_qu)
        if ex:
            ax.plot(ex, [statistics.median(eng_qu[x]) for x in ex], ls=":", marker=".",
                    color=colour[bits], label=f"engine alone, {bits}-bit")
    ax.set_xticks(sorted({r["qu"] for r in data}))
    ax.grid(alpha=0.3)


#: Most ``lanes`` values drawn as separate panels of ``area_vs_qu``.
MAX_LANE_PANELS = 4


def plot_area_vs_qu(rows: Rows, fig: Figure, ax) -> None:
    """One panel per ``lanes`` value (up to :data:`MAX_LANE_PANELS`; more are pooled,
    medians drawn), so lines compare engines at equal parallelism."""
    data = _usable(rows, "qu", "engine_bits", "generator_area")
    if not data:
        ax.set_title("Generator area vs coefficient precision qu, per engine")
        _empty(ax, "a generator area")
        return
    colour = _colours(fig, {r["engine_bits"] for r in data})
    lanes = sorted({r.get("lanes") for r in data}, key=lambda v: (v is None, v))
    fig.suptitle("Logic area vs coefficient precision qu, per engine precision")
    if len(lanes) == 1 or len(lanes) > MAX_LANE_PANELS:
        _area_panel(ax, data, colour)
        ax.set_title(f"lanes = {lanes[0]}" if len(lanes) == 1 else
                     f"median over lanes {lanes[0]}..{lanes[-1]}", fontsize="medium")
        axes = [ax]
    else:
        fig.delaxes(ax)
        shape = (1, len(lanes)) if len(lanes) <= 2 else (2, 2)
        axes = list(fig.subplots(*shape, squeeze=False).flat)
        for a in axes[len(lanes):]:
            fig.delaxes(a)
        for a, lane in zip(axes, lanes, strict=False):
            _area_panel(a, [r for r in data if r.get("lanes") == lane], colour)
            a.set_title(f"lanes = {lane}", fontsize="medium")
        axes = axes[:len(lanes)]
    for a in axes:
        a.set_xlabel("qu [bits]")
        a.set_ylabel("logic area" + _area_label(data))
    handles, labels = axes[0].get_legend_handles_labels()
    if len(axes) == 1:
        ax.legend(handles, labels, fontsize="small")
    else:                                   # below the panels, clear of the data
        fig.set_size_inches(_SIZE[0] * 1.3, _SIZE[1] * 1.5)
        fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize="small")


def plot_memory_saved_vs_logic_added(rows: Rows, fig: Figure, ax) -> None:
    data = _usable(rows, "memory_saved_bits", "logic_added")
    ax.set_title("Memory saved vs logic added (Pareto front marked)")
    if not data:
        _empty(ax, "a logic-added figure")
        return
    front = sorted((r for r in data if r.get("pareto")), key=lambda r: r["logic_added"])
    rest = [r for r in data if not r.get("pareto")]
    ax.scatter([r["logic_added"] for r in rest], [r["memory_saved_bits"] / 1000 for r in rest],
               color="tab:gray", alpha=0.6, s=20, label="design points")
    if front:
        ax.step([r["logic_added"] for r in front],
                [r["memory_saved_bits"] / 1000 for r in front], where="post",
                color="tab:red", lw=1.2)
        ax.scatter([r["logic_added"] for r in front],
                   [r["memory_saved_bits"] / 1000 for r in front], color="tab:red",
                   marker="*", s=90, zorder=3, label=f"Pareto front ({len(front)})")
    ax.set_xlabel("logic added (generator - engine area)" + _area_label(data))
    ax.set_ylabel("memory saved (weight - code bits) [kbit]")
    ax.grid(alpha=0.3)
    _legend_outside(fig, ax)


def plot_fmax_vs_lanes(rows: Rows, fig: Figure, ax) -> None:
    key, label = "fmax_mhz", "estimated Fmax [MHz]"
    data = _usable(rows, "lanes", "engine_bits", key)
    sources = {r.get("fmax_source") for r in data if r.get("fmax_source")}
    if sources:                                 # an FPGA sweep: nextpnr after P&R
        label = f"P&R Fmax [MHz], {', '.join(sorted(sources))}"
        if any(r.get("fmax_upper_bound") for r in data):
            label += " (some upper bounds: block-RAM paths untimed)"
    if not data:
        key, label = "depth", "logic depth of the generator [cells] (no delay estimate)"
        data = _usable(rows, "lanes", "engine_bits", key)
    ax.set_title("Fmax vs lanes" if key == "fmax_mhz" else "Logic depth vs lanes")
    if not data:
        _empty(ax, "a delay or a logic depth")
        return
    colour = _colours(fig, {r["engine_bits"] for r in data})
    by_engine: dict[int, list] = defaultdict(list)
    for r in data:
        by_engine[r["engine_bits"]].append(r)
    for bits, rs in sorted(by_engine.items()):
        ax.scatter([r["lanes"] for r in rs], [r[key] for r in rs], color=colour[bits],
                   s=24, alpha=0.8, label=f"{bits}-bit engine")
        per_lane: dict[int, list[float]] = defaultdict(list)
        for r in rs:
            per_lane[r["lanes"]].append(r[key])
        xs = sorted(per_lane)
        ax.plot(xs, [statistics.median(per_lane[x]) for x in xs], color=colour[bits], lw=1)
    lanes = sorted({r["lanes"] for r in data})
    if len(lanes) > 1 and lanes[0] > 0 and lanes[-1] / lanes[0] >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(lanes, [str(x) for x in lanes])
    ax.set_xlabel("lanes (multipliers in parallel)")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    _legend_outside(fig, ax)


#: Plot name (file stem) -> drawing function.
PLOTS: dict[str, Callable[[Rows, Figure, Any], None]] = {
    "overhead_vs_engine_bits": plot_overhead_vs_engine_bits,
    "area_vs_qu": plot_area_vs_qu,
    "memory_saved_vs_logic_added": plot_memory_saved_vs_logic_added,
    "fmax_vs_lanes": plot_fmax_vs_lanes,
}


def draw_plots(rows: Rows, out_dir: str | Path) -> dict[str, Path]:
    """Draw every plot of :data:`PLOTS` into ``out_dir/<name>.png``; returns name -> path."""
    from insitugen.files import atomic_write
    out_dir = Path(out_dir)
    written = {}
    for name, draw in PLOTS.items():
        fig, ax = _new_figure()
        draw(rows, fig, ax)
        path = out_dir / f"{name}.png"
        atomic_write(path, lambda tmp, fig=fig: fig.savefig(tmp, format="png"))
        written[name] = path
    return written
