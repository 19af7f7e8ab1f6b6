# SPDX-License-Identifier: Apache-2.0
"""Critical-path estimate (synth.timing) on hand-built netlists and a hand-built library:
exact delays from constant tables and the path they follow, a path deeper than Python's
recursion limit, a combinational loop, flop starts and the buffer tree of a high-fanout
net."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from synth.liberty import Arc, Cell, Library, Table
from synth.timing import BUFFERED_LOADS, critical_path

NAND_DELAY, BUF_DELAY, CLK_Q = 0.1, 0.05, 0.3


def _const(value: float) -> Table:
    return Table(index_1=(0.1,), index_2=(0.0,), values=((value,),))


def _library() -> Library:
    def arcs(pins, delay, kind="combinational"):
        return [Arc(p, "Y" if kind == "combinational" else "Q", kind, (_const(delay),))
                for p in pins]
    cells = {
        "nand2_1": Cell("nand2_1", 1.0, False, False, {"A": 1.0, "B": 1.0}, ["Y"],
                        arcs(("A", "B"), NAND_DELAY)),
        "buf_1": Cell("buf_1", 1.0, False, False, {"A": 1.0}, ["Y"], arcs(("A",), BUF_DELAY)),
        "dff_1": Cell("dff_1", 4.0, True, False, {"D": 1.0, "CLK": 1.0}, ["Q"],
                      arcs(("CLK",), CLK_Q, "rising_edge")),
    }
    return Library("tiny", Path("tiny.lib"), cells, "1ns")


def _nand(a: int, b: int, y: int) -> dict:
    return {"type": "nand2_1", "port_directions": {"A": "input", "B": "input", "Y": "output"},
            "connections": {"A": [a], "B": [b], "Y": [y]}}


def _netlist(cells: dict, inputs: list[int], outputs: list[int]) -> dict:
    ports = {f"i{k}": {"direction": "input", "bits": [b]} for k, b in enumerate(inputs)}
    ports.update({f"o{k}": {"direction": "output", "bits": [b]} for k, b in enumerate(outputs)})
    return {"modules": {"top": {"ports": ports, "cells": cells}}}


def test_chain_deeper_than_the_recursion_limit():
    n = 3 * sys.getrecursionlimit()
    cells = {f"c{i}": _nand(2 + i, 2 + i, 3 + i) for i in range(n)}
    limit = sys.getrecursionlimit()
    t = critical_path(_netlist(cells, [2], [2 + n]), "top", _library())
    assert t["cells_on_path"] == n
    assert t["delay"] == pytest.approx(round(n * NAND_DELAY, 4))
    assert sys.getrecursionlimit() == limit                 # left as it was


def test_longest_of_two_paths_and_a_flop_start():
    ff = {"type": "dff_1", "port_directions": {"D": "input", "CLK": "input", "Q": "output"},
          "connections": {"D": [9], "CLK": [3], "Q": [4]}}
    cells = {"ff": ff, "a": _nand(2, 4, 5), "b": _nand(5, 5, 6), "c": _nand(6, 2, 9),
             "short": _nand(2, 2, 7)}
    t = critical_path(_netlist(cells, [2, 3], [9, 7]), "top", _library())
    # flop Q -> a -> b -> c -> flop D: clock-to-q and three NAND2 arcs
    assert t["delay"] == pytest.approx(CLK_Q + 3 * NAND_DELAY)
    assert t["cells_on_path"] == 4
    # the path itself, start first: the flop, then a, b, c with their arrival times
    assert [(c["cell"], c["pin"]) for c in t["path"]] == [("ff", "Q"), ("a", "Y"),
                                                          ("b", "Y"), ("c", "Y")]
    assert [c["arrival"] for c in t["path"]] == pytest.approx(
        [CLK_Q + k * NAND_DELAY for k in range(4)])


def test_combinational_loop_is_cut():
    cells = {"x": _nand(2, 4, 3), "y": _nand(3, 3, 4)}       # 3 -> 4 -> 3
    t = critical_path(_netlist(cells, [2], [4]), "top", _library())
    # from output bit 4: y reads 3, x reads input 2 and bit 4 (on the path: cut, time 0)
    assert t["delay"] == pytest.approx(2 * NAND_DELAY)
    assert t["cells_on_path"] == 2


@pytest.mark.parametrize("fanout", [BUFFERED_LOADS // 2, 100])
def test_high_fanout_net_is_buffered(fanout):
    cells = {"drv": _nand(2, 2, 3)}
    cells.update({f"l{i}": _nand(3, 3, 10 + i) for i in range(fanout // 2)})
    outputs = [10 + i for i in range(fanout // 2)]
    t = critical_path(_netlist(cells, [2], outputs), "top", _library())
    loads = 2 * (fanout // 2)                            # both inputs of each load cell
    tree = math.ceil(math.log(loads / BUFFERED_LOADS, 4)) if loads > BUFFERED_LOADS else 0
    assert t["delay"] == pytest.approx(2 * NAND_DELAY + tree * BUF_DELAY)
