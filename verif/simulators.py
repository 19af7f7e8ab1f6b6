# SPDX-License-Identifier: Apache-2.0
"""The choices of a simulation run (simulators, back-pressure modes), the check that a
simulator is usable, and what a result records of it.

Standard library and :mod:`eda` only, so the command line can name the choices without
loading a simulator, numpy or torch. The back-pressure patterns themselves are in
:mod:`verif.backpressure`.
"""

from __future__ import annotations

import functools
import shutil

from insitugen.errors import ToolError

__all__ = ["SIMULATORS", "BACKPRESSURE", "find_simulator", "simulator_versions"]

#: The simulators of ``insitugen sim --simulator`` (the first is the default).
SIMULATORS = ("verilator", "icarus")
#: The back-pressure modes of ``insitugen sim --backpressure`` (:mod:`verif.backpressure`).
BACKPRESSURE = ("none", "periodic", "random")


def find_simulator(name: str) -> None:
    """Raise :class:`ToolError` with an install hint when simulator ``name`` is unusable."""
    if name not in SIMULATORS:
        raise ToolError(f"simulator '{name}' is not supported: use one of "
                        f"{' | '.join(SIMULATORS)}")
    if name == "verilator":
        from eda import verilator

        verilator.executable()
        if shutil.which("make") is None or shutil.which("g++") is None:
            raise ToolError("Verilator needs make and a C++ compiler: apt-get install "
                            "build-essential")
    else:
        from eda import icarus

        icarus.find()


@functools.cache
def simulator_versions(simulator: str) -> dict[str, str]:
    """Versions a simulation result records (``tools``): the base set
    (:func:`insitugen.versions.base_versions`), cocotb, numpy, torch (the golden model)
    and the simulator's own version line."""
    from insitugen.versions import base_versions, package_version

    if simulator == "verilator":
        from eda.verilator import version
    else:
        from eda.icarus import version
    return {**base_versions(), "cocotb": package_version("cocotb"),
            "numpy": package_version("numpy"), "torch": package_version("torch"),
            simulator: version()}
