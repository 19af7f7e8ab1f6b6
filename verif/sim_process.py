# SPDX-License-Identifier: Apache-2.0
"""Run one cocotb simulation in a process of its own, under :func:`eda.process.run_tool`.

``cocotb_tools.runner``'s ``test()`` starts the simulator with ``subprocess.run``, which
nothing ties to insitugen: a ``kill -9`` of insitugen would leave the simulator running.
:func:`run_cocotb_test` therefore calls ``test()`` in a child Python started through
:func:`eda.process.run_tool`: the child, and the simulator it starts, live in a process
group that dies with insitugen (even on ``kill -9``) and on Ctrl-C. The child reports how
``test()`` ended (``None``, a ``SystemExit`` code or the ``RuntimeError`` text) in a JSON
file; the results themselves are files the caller reads (``results.xml``, the
testbench's ``result.json``).

Run as ``python -m verif.sim_process ARGS.json`` (arguments of ``test()`` as JSON, plus
``simulator`` and ``exit_path``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

__all__ = ["run_cocotb_test"]


def run_cocotb_test(simulator: str, exit_path: Path, **test_args) -> object:
    """``get_runner(simulator).test(**test_args)`` in a guarded child process; returns
    ``None`` when it returned, else the ``SystemExit`` code or ``RuntimeError`` text it
    ended with (the simulator failed or a test failed)."""
    from eda.process import run_tool

    exit_path = Path(exit_path)
    exit_path.unlink(missing_ok=True)
    args_path = exit_path.with_suffix(".args.json")
    args_path.write_text(json.dumps({"simulator": simulator, "exit_path": str(exit_path),
                                     "test": {k: (str(v) if isinstance(v, Path) else v)
                                              for k, v in test_args.items()}}))
    # the child imports this package the way we did: our sys.path, as cocotb hands it on
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = run_tool([sys.executable, "-m", "verif.sim_process", str(args_path)], env=env)
    if exit_path.is_file():
        return json.loads(exit_path.read_text())["exit"]
    return f"the simulation process ended with exit code {done.returncode} and no report"


def _main(args_path: str) -> int:
    from cocotb_tools.runner import get_runner

    spec = json.loads(Path(args_path).read_text())
    test = dict(spec["test"])
    if test.get("timescale") is not None:
        test["timescale"] = tuple(test["timescale"])
    ended: object = None
    try:
        get_runner(spec["simulator"]).test(**test)
    except SystemExit as e:          # under pytest the runner exits on a failed test
        ended = e.code
    except RuntimeError as e:        # the simulator exited non-zero (crash, $fatal)
        ended = str(e)
    Path(spec["exit_path"]).write_text(json.dumps({"exit": ended}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
