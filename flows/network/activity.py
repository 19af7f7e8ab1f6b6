# SPDX-License-Identifier: Apache-2.0
"""A measured energy estimate of the generator: gate-level switching activity x liberty energies.

For one generator config and a Liberty file:

1. Yosys maps the generator to the liberty's cells (the synthesis flow of
   :mod:`synth.yosys`, options ``-booth -arith_tree``); memories stay behavioural
   (``$mem_v2``, not in any liberty);
2. the mapped netlist, with functional models of the cells that Yosys derives from the
   liberty's ``function`` attributes, runs under the generator's own cocotb testbench on
   Verilator (``verif.runner.run_sim``, output always ready, a VCD dump): every weight is
   checked bit for bit against the golden model, so the netlist measured is the one
   that computes the layer;
3. in the first generation pass (from the edge where ``start`` is sampled to the
   handshake of the beat carrying ``last``), every rising and falling transition of every
   cell pin is counted from the VCD;
4. energy = for each cell, output transitions x (the liberty ``internal_power``
   ``rise_power`` / ``fall_power`` of that pin, averaged over its related pins, at a fixed
   input transition and the pin's actual load) + ``0.5 C_load V^2`` per output transition
   (``C_load`` = the input capacitances the net drives; no wires) + input-pin internal
   energy per input transition (clock pins of flops) + the clock net's switching + cell
   leakage over the pass at the given clock.

It is an estimate: no wire load, one input slew for every table, no glitches beyond the
zero-delay simulation's, the memories' energy left to the per-bit SRAM figure of the
energy table. Slow (synthesis + a gate-level build, about a minute for a small layer):
only when asked.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from insitugen.config import GeneratorConfig
from insitugen.errors import ToolError

#: Input transition (ns) at which every power table is read: the IHP tables' second
#: index point, a typical internal slew (the delay estimate of synth.timing uses its own).
NOMINAL_SLEW_NS = 0.0966
SYNTH_OPTIONS = ("-booth", "-arith_tree")
#: The layer measured unless a config is given: both levels on, the default layer's bit
#: widths and 3-bit engine, small enough for a gate-level run of about a minute (the
#: default 128->128 layer would be 811k cycles of a 58k-GE netlist: gigabytes of VCD).
MEASURE_CONFIG = GeneratorConfig(out_channels=4, in_channels=3, kernel=3, base_in=2,
                                 base_out=3, qb=3, qu=6, qv=3, engine_bits=3, lanes=4,
                                 out_bits=8, shift=6)
TB_SCOPE = ("insitugen_tb_top", "dut")


@dataclass(frozen=True)
class PinPower:
    rise: list                 # Tables (one per related pin)
    fall: list

    def energy(self, rising: bool, load: float) -> float:
        tables = self.rise if rising else self.fall
        if not tables:
            return 0.0
        return sum(t.at(NOMINAL_SLEW_NS, load) for t in tables) / len(tables)


@dataclass
class CellPower:
    pins: dict[str, PinPower]
    capacitance: dict[str, float]
    outputs: list[str]
    leakage_pw: float


def read_power(liberty: Path) -> tuple[dict[str, CellPower], float]:
    """Per cell the internal-power tables of each pin, input capacitances, outputs and
    leakage (pW); and the nominal voltage, as :func:`synth.liberty.read_liberty` reads
    them. Energies in the liberty's units (pF x V^2 = pJ for IHP sg13g2)."""
    from synth.liberty import read_liberty

    lib = read_liberty(liberty)
    cells = {name: CellPower(pins={pin: PinPower(list(rise), list(fall))
                                   for pin, (rise, fall) in c.internal_power.items()},
                             capacitance=dict(c.inputs), outputs=list(c.outputs),
                             leakage_pw=c.leakage_power)
             for name, c in lib.cells.items()}
    return cells, lib.nom_voltage


# ---- VCD ------------------------------------------------------------------------------------

@dataclass
class Activity:
    rises: dict[str, int]            # VCD id -> rising transitions in the window
    falls: dict[str, int]
    pins: dict[tuple[str, str], str]  # (cell instance, pin) -> VCD id
    window: tuple[int, int]          # (start, end) in VCD time units
    cycles: int


def _vcd_vars(lines) -> tuple[dict[tuple[str, ...], tuple[str, int]], int]:
    """Header of a VCD: scope path + name -> (id, width); returns the line index after it."""
    scope: list[str] = []
    out: dict[tuple[str, ...], tuple[str, int]] = {}
    for i, line in enumerate(lines):
        tok = line.split()
        if not tok:
            continue
        if tok[0] == "$scope":
            scope.append(tok[2])
        elif tok[0] == "$upscope":
            scope.pop()
        elif tok[0] == "$var":
            out[(*scope, tok[4])] = (tok[3], int(tok[2]))
        elif tok[0] == "$enddefinitions":
            return out, i + 1
    raise ToolError("the simulation's VCD has no $enddefinitions")


def _changes(lines, start: int):
    """(time, id, value string) of every value change after the header."""
    t = 0
    for line in lines[start:]:
        if not line:
            continue
        c = line[0]
        if c == "#":
            t = int(line[1:])
        elif c in "01xzXZ":
            yield t, line[1:].strip(), c
        elif c in "bB":
            val, ident = line[1:].split()
            yield t, ident, val


def read_activity(vcd: Path, cells: list[str], last_bit: int) -> Activity:
    """Transitions of every pin of ``cells`` (instance names in the DUT scope) during the
    first generation pass, found from the DUT's ``start``, ``loaded`` and ``weights``
    handshake signals."""
    lines = Path(vcd).read_text().splitlines()
    vars_, body = _vcd_vars(lines)
    dut = {k[-1]: v for k, v in vars_.items() if k[:-1] == TB_SCOPE}
    try:
        ids = {n: dut[n][0] for n in ("clk", "start", "loaded", "weights__valid",
                                      "weights__ready", "weights__payload")}
    except KeyError as e:
        raise ToolError(f"the simulation's VCD lacks the DUT signal {e}") from None
    wanted = set(cells)
    pins = {(k[-2], k[-1]): v[0] for k, v in vars_.items()
            if len(k) == len(TB_SCOPE) + 2 and k[:-2] == TB_SCOPE and k[-2] in wanted
            and v[1] == 1}
    # pass 1: the window. A clock edge samples the values from before its timestamp, so
    # changes of the current timestamp wait in `pending` until time moves on.
    state = {i: "0" for i in ids.values()}
    pending: dict[str, str] = {}
    t_start = t_end = None
    now, clk = 0, "0"
    for t, ident, val in _changes(lines, body):
        if ident not in state:
            continue
        if t != now:
            state.update(pending)
            pending.clear()
            now = t
        if ident == ids["clk"]:
            rising = clk == "0" and val == "1"
            clk = val
            if rising and t_start is None:
                if state[ids["start"]] == "1" and state[ids["loaded"]] == "1":
                    t_start = t
            elif (rising and state[ids["weights__valid"]] == "1"
                  and state[ids["weights__ready"]] == "1"):
                payload = state[ids["weights__payload"]]
                if len(payload) > last_bit and payload[-1 - last_bit] == "1":
                    t_end = t
                    break
        pending[ident] = val
    if t_start is None or t_end is None:
        raise ToolError("no complete generation pass found in the simulation's VCD")
    track = set(pins.values()) | {ids["clk"]}
    rises: dict[str, int] = defaultdict(int)
    falls: dict[str, int] = defaultdict(int)
    value: dict[str, str] = {}
    for t, ident, val in _changes(lines, body):
        if t >= t_end:
            break
        if ident not in track:
            continue
        old = value.get(ident)
        value[ident] = val
        if t < t_start or old is None:
            continue
        if old == "0" and val == "1":
            rises[ident] += 1
        elif old == "1" and val == "0":
            falls[ident] += 1
    cycles = rises[ids["clk"]]
    return Activity(dict(rises), dict(falls), pins, (t_start, t_end), cycles)


# ---- the flow -------------------------------------------------------------------------------

def _netlist_loads(netlist: dict, top: str, power: dict[str, CellPower]):
    """Per cell instance: type, and per output pin the load (pF) of the net it drives."""
    mod = netlist["modules"][top]
    sinks: dict[int, float] = defaultdict(float)
    for cell in mod["cells"].values():
        cp = power.get(cell["type"])
        if cp is None:
            continue
        for pin, bits in cell["connections"].items():
            if pin in cp.capacitance:
                for b in bits:
                    if isinstance(b, int):
                        sinks[b] += cp.capacitance[pin]
    out = {}
    for name, cell in mod["cells"].items():
        cp = power.get(cell["type"])
        if cp is None:
            continue
        loads = {pin: sum(sinks.get(b, 0.0) for b in cell["connections"][pin]
                          if isinstance(b, int))
                 for pin in cp.outputs if pin in cell["connections"]}
        out[name] = (cell["type"], loads)
    return out


def measure(cfg: GeneratorConfig, liberty: str | Path, workdir: str | Path, *,
            clock_mhz: float, seed: int = 1, yosys=None) -> dict:
    """Synthesize, simulate at gate level, and estimate the energy of one generation pass
    (see the module docstring). Returns a JSON-ready dict (pJ, and pJ per weight)."""
    from gen.verilog import emit_verilog, top_name
    from synth import yosys as Y
    from synth.liberty import read_liberty
    from verif.runner import run_sim, stream_last_bits

    liberty = Path(liberty)
    lib = read_liberty(liberty)          # a missing or broken liberty fails here, clearly
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(liberty, wd / "cells.lib")
    (wd / "light.abc").write_text(Y.LIGHT_ABC)
    top = top_name(cfg)
    (wd / "design.v").write_text(emit_verilog(cfg))
    script = Y.build_script(top, options=SYNTH_OPTIONS, liberty=True,
                            sequential_cells=lib.sequential_cells)
    script += "rename -enumerate -pattern c_%\nwrite_json gate.json\nwrite_verilog -noattr gate.v\n"
    Y.run_script(script, wd, yosys=yosys, expect_files=["gate.json", "gate.v"],
                 what="the gate-level netlist for the energy measurement")
    Y.run_script("read_liberty -ignore_miss_func cells.lib\nwrite_verilog -noattr cells_sim.v\n",
                 wd, script_name="cells.ys", log_name="cells.log", yosys=yosys,
                 expect_files=["cells_sim.v"], what="the cell models of the liberty")
    # a bit-level netlist of vector wires looks combinationally circular to Verilator
    (wd / "gate_sim.v").write_text("/* verilator lint_off UNOPTFLAT */\n"
                                   + (wd / "gate.v").read_text() + (wd / "cells_sim.v").read_text())
    res = run_sim(cfg, simulator="verilator", seed=seed, waves=True, backpressure="none",
                  build_dir=wd / "sim", verilog_path=wd / "gate_sim.v", quiet=True,
                  extra={"passes": 1})
    import json

    power, volt = read_power(wd / "cells.lib")
    loads = _netlist_loads(json.loads((wd / "gate.json").read_text()), top, power)
    act = read_activity(res.waves, list(loads), stream_last_bits(cfg)["weights"])
    internal = switching = clock_pins = 0.0
    counted = missing = 0
    for name, (ctype, out_loads) in loads.items():
        cp = power[ctype]
        for pin, pp in cp.pins.items():
            ident = act.pins.get((name, pin))
            if ident is None:
                missing += 1
                continue
            counted += 1
            r, f = act.rises.get(ident, 0), act.falls.get(ident, 0)
            if pin in out_loads:
                load = out_loads[pin]
                internal += r * pp.energy(True, load) + f * pp.energy(False, load)
                switching += (r + f) * 0.5 * load * volt * volt
            else:      # input pin internal energy (flop clock pins)
                e = r * pp.energy(True, 0.0) + f * pp.energy(False, 0.0)
                if pin.upper().startswith("CLK"):
                    clock_pins += e
                else:
                    internal += e
    clk_load = sum(power[t].capacitance.get(p, 0.0) for t, _ in loads.values()
                   for p in power[t].capacitance if p.upper().startswith("CLK"))
    clk_net = act.cycles * 2 * 0.5 * clk_load * volt * volt
    seconds = act.cycles / (clock_mhz * 1e6)
    leakage = sum(power[t].leakage_pw for t, _ in loads.values()) * seconds    # pW*s = pJ
    n = cfg.n_weights
    total = internal + switching + clock_pins + clk_net + leakage
    return {
        "config": cfg.to_dict(), "liberty": liberty.name, "seed": res.seed,
        # run_sim returns only when every weight matched the golden model (else it raises)
        "gate_level_bit_exact": True, "cells": len(loads),
        "pins_counted": counted, "pins_not_in_vcd": missing,
        "pass_cycles_simulated": act.cycles, "clock_mhz": clock_mhz,
        "energy_pj": {"internal": internal, "switching": switching,
                      "clock_pins": clock_pins, "clock_net": clk_net, "leakage": leakage,
                      "total_logic": total},
        "logic_pj_per_weight": total / n,
        "definition": ("estimate: zero-delay gate-level simulation of the liberty-mapped "
                       "netlist (Verilator), liberty internal_power at "
                       f"{NOMINAL_SLEW_NS} ns input transition and the pin's load, "
                       "0.5 C V^2 per output transition (pin loads, no wires), leakage over "
                       "the pass; memories excluded (behavioural, not in the liberty)"),
    }


__all__ = ["measure", "MEASURE_CONFIG", "read_power", "read_activity", "NOMINAL_SLEW_NS"]
