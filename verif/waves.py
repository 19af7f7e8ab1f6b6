# SPDX-License-Identifier: Apache-2.0
"""Where a simulation's waveform dump goes, and that no old dump outlives its run.

The simulators write their dump into the build folder under a fixed name (cocotb's
Verilator main writes ``dump.vcd`` in its working folder, cocotb's Icarus dump module
``<toplevel>.fst`` there). The build folder is a cache shared by every run of a config,
so :func:`clear_waves` removes that file before each run, with waves or without, and
:func:`collect_waves` moves a fresh one to where the user asked. Standard library only.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from insitugen.errors import ConfigError, ToolError

from .tb_top import TB_TOP

__all__ = ["WAVE_FILES", "DEFAULT_STEM", "wave_suffix", "clear_waves", "collect_waves",
           "check_waves_path", "require_waves"]

#: The dump each simulator leaves in the build folder when run with waves on.
WAVE_FILES = {"verilator": "dump.vcd", "icarus": f"{TB_TOP}.fst"}
#: Stem of the dump :func:`verif.runner.run_sim` keeps in the build folder when the
#: caller names no destination.
DEFAULT_STEM = "waves"


def wave_suffix(simulator: str) -> str:
    """``.vcd`` (Verilator) or ``.fst`` (Icarus): the format the simulator writes."""
    return Path(WAVE_FILES[simulator]).suffix


def check_waves_path(path: str | os.PathLike, simulator: str) -> Path:
    """``path`` as a waves destination: its suffix must be the simulator's format (a
    viewer picks the reader by the suffix) and it must not be a folder."""
    path = Path(path)
    suffix = wave_suffix(simulator)
    if path.is_dir():
        raise ConfigError(f"--waves '{path}' is a folder: give a file name such as "
                          f"{path / ('waves' + suffix)}")
    if path.suffix != suffix:
        raise ConfigError(f"--waves '{path}': {simulator} writes {suffix[1:].upper()}, so "
                          f"name the file *{suffix}")
    return path


def clear_waves(build_dir: Path) -> None:
    """Remove every dump a former run left in ``build_dir`` (the simulators' own names
    and the default destination), so the folder never holds one older than its run."""
    for name in WAVE_FILES.values():
        (build_dir / name).unlink(missing_ok=True)
        (build_dir / (DEFAULT_STEM + Path(name).suffix)).unlink(missing_ok=True)


def collect_waves(build_dir: Path, simulator: str,
                  dest: str | os.PathLike | None = None) -> Path | None:
    """Move the run's dump from ``build_dir`` to ``dest`` (default ``build_dir/waves.vcd``
    or ``.fst``); the path it now has, or None when the simulator wrote none (a crash
    before the first clock; see :func:`require_waves`)."""
    src = build_dir / WAVE_FILES[simulator]
    if not src.is_file():
        return None
    dest = Path(dest) if dest is not None else build_dir / (DEFAULT_STEM + src.suffix)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dest))
    return dest.resolve()


def require_waves(wave_file: Path | None, build_dir: Path, simulator: str) -> Path:
    """``wave_file``, or :class:`ToolError` when a passing run asked for waves got none."""
    if wave_file is None:
        raise ToolError(f"the {simulator} run wrote no waveform dump "
                        f"({build_dir / WAVE_FILES[simulator]} is missing); see "
                        f"{build_dir / 'sim.log'}")
    return wave_file
