# SPDX-License-Identifier: Apache-2.0
"""insitugen: hardware generator for multi-level in situ weight generation (MLG).

The rooms are top-level packages named after their folders, each module
importable under exactly one name, its path (README, Layout):

* ``insitugen`` (this package) - the base floor: the frozen config, the one width
  derivation, errors and versions; it imports no other room, nor torch or Amaranth;
* ``eda`` - tool adapters (Yosys, Verilator, Icarus): find, version, run;
* ``golden`` - exact integer and PyTorch models; ``hdl`` - Amaranth components;
* ``gen`` - config -> Verilog and files; ``verif`` - cocotb testbenches;
  ``synth`` - Yosys area and timing reports;
* ``flows`` - the top floor: the ``insitugen`` command line, the flow and the sweep.

Importing ``insitugen`` checks that every room comes from the same source tree
(a second clone beside an old editable install would otherwise mix the two
trees silently) and fails with the fix when they do not.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__version__ = "0.1.0"

#: The top-level packages that make up insitugen, besides ``insitugen`` itself.
ROOMS = ("eda", "golden", "hdl", "gen", "verif", "synth", "flows")


def _check_one_tree() -> None:
    """Raise ImportError when a room resolves to another tree than this package."""
    here = Path(__file__).resolve().parent.parent
    for room in ROOMS:
        spec = importlib.util.find_spec(room)
        origin = spec.origin if spec is not None else None
        if origin is None:
            raise ImportError(
                f"insitugen: the '{room}' package is missing beside {here / 'insitugen'}; "
                f"reinstall from the clone you run: python3 -m pip install -e .")
        tree = Path(origin).resolve().parent.parent
        if tree != here:
            raise ImportError(
                f"insitugen: mixed source trees: 'insitugen' comes from {here} but '{room}' "
                f"from {tree}. Run from one clone, or reinstall in the clone you mean to use: "
                f"cd {here} && python3 -m pip install -e .")


_check_one_tree()
