# SPDX-License-Identifier: Apache-2.0
"""Two PNGs of the network report (matplotlib, Agg backend, no display needed).

* ``network_time.png``: per layer, two stacked bars: "generate" = convolution +
  generation (the generator shares the engine) and "fetch" = convolution + DRAM fetch
  (drawn serially so a fetch that would not hide behind the convolution shows);
* ``network_energy.png``: per layer, generation (multiplies, adds, code-memory reads,
  stacked) next to fetching the same weights from DRAM and from on-chip SRAM.
"""

from __future__ import annotations

from pathlib import Path

from .analysis import NetworkResult

PLOTS = ("network_time.png", "network_energy.png")


def _axes(n: int, title: str, ylabel: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(8.0, 0.5 * n + 3), 5.0), dpi=110)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    return plt, fig, ax


def _save(plt, fig, ax, res: NetworkResult, path: Path) -> Path:
    from insitugen.files import atomic_write

    names = [r.layer.name for r in res.layers]
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path


def plot_time(res: NetworkResult, path: Path) -> Path:
    n = len(res.layers)
    plt, fig, ax = _axes(n, f"{res.name}: time per layer at {res.clock.mhz:.1f} MHz, batch "
                            f"{res.batch}", "time [ms]")
    xs = list(range(n))
    conv = [r.conv_s * 1e3 for r in res.layers]
    gen = [r.gen_s * 1e3 for r in res.layers]
    fetch = [r.fetch_s * 1e3 for r in res.layers]
    w = 0.38
    left = [x - w / 2 for x in xs]
    right = [x + w / 2 for x in xs]
    ax.bar(left, conv, w, color="#4c72b0", label="convolution")
    ax.bar(left, gen, w, bottom=conv, color="#dd8452", label="generation (shares the engine)")
    ax.bar(right, conv, w, color="#4c72b0", alpha=0.55, label="convolution (fetch design)")
    ax.bar(right, fetch, w, bottom=conv, color="#55a868",
           label=f"DRAM fetch at {res.bandwidth_gbs:g} GB/s ({sum(fetch):.3g} ms in all)")
    return _save(plt, fig, ax, res, path)


def plot_energy(res: NetworkResult, path: Path) -> Path:
    n = len(res.layers)
    plt, fig, ax = _axes(n, f"{res.name}: energy of the weights per layer (batch {res.batch})",
                         "energy [uJ]")
    xs = list(range(n))
    w = 0.27
    parts = [("gen_multiplies", "generation: engine multiplies", "#dd8452"),
             ("gen_adds", "generation: adds", "#c44e52"),
             ("gen_code_reads", "generation: code-memory reads", "#8172b3")]
    bottom = [0.0] * n
    for key, label, color in parts:
        vals = [r.energy.get(key, 0.0) / 1e6 for r in res.layers]
        ax.bar([x - w for x in xs], vals, w, bottom=bottom, color=color, label=label)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.bar(xs, [r.energy["dram"] / 1e6 for r in res.layers], w, color="#55a868",
           label="fetch from DRAM")
    ax.bar([x + w for x in xs], [r.energy["sram"] / 1e6 for r in res.layers], w,
           color="#64b5cd", label="fetch from on-chip SRAM")
    return _save(plt, fig, ax, res, path)


def write_plots(res: NetworkResult, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    return [plot_time(res, out_dir / PLOTS[0]), plot_energy(res, out_dir / PLOTS[1])]


__all__ = ["write_plots", "plot_time", "plot_energy", "PLOTS"]
