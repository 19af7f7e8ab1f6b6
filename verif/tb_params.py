# SPDX-License-Identifier: Apache-2.0
"""Parameters of a cocotb testbench run, written by :func:`verif.runner.run_sim`.

Standard library only: the testbenches import nothing heavy inside the simulator.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def load_params() -> dict:
    """``params.json`` named by ``INSITUGEN_PARAMS`` (config, seed, back-pressure, stimulus)."""
    path = os.environ.get("INSITUGEN_PARAMS")
    if not path:
        raise RuntimeError("INSITUGEN_PARAMS is not set: run this testbench through "
                           "verif.runner.run_sim")
    return json.loads(Path(path).read_text())
