# SPDX-License-Identifier: Apache-2.0
"""Checks every command's outputs before it does any work.

A command that computes for minutes and then cannot write its result (a read-only
folder, an output that is ``/dev/null`` or a link) wastes the run and, for ``sim
--out``, used to be reported as a failed hardware check. :func:`check_outputs` runs
before the command: every output file must be (or become) a regular file in a folder
that takes new files, every output folder must be writable, and a command that builds
in the cache or in a temporary folder needs those to work too. Light (base floor only),
so ``insitugen --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from insitugen.errors import OutputError, clip
from insitugen.paths import check_build_folder, check_output_file, check_output_folder

__all__ = ["OUTPUT_FILES", "OUTPUT_FOLDERS", "check_outputs", "FORCE_COMMANDS", "add_force_arg"]

#: Commands that refuse a config too large to build or run (:mod:`gen.limits`) unless
#: given ``--force``.
FORCE_COMMANDS = ("verilog", "sim", "synth", "flow", "golden")


def add_force_arg(command: str, p: argparse.ArgumentParser) -> None:
    if command in FORCE_COMMANDS:
        p.add_argument("--force", action="store_true",
                       help="build or run a config past the size limits (estimated "
                            "elaboration time, Verilog size, memory, simulated cycles)")

#: Per command: the options naming an output file.
OUTPUT_FILES: dict[str, tuple[str, ...]] = {
    "verilog": ("output",), "golden": ("out", "codes_out"), "sim": ("out",),
    "synth": ("json", "markdown"), "memory": ("json",), "prove": ("json",),
}
#: Per command: the options naming an output folder (made when missing).
OUTPUT_FOLDERS: dict[str, tuple[str, ...]] = {
    "sim": ("build_dir", "coverage"), "flow": ("out_dir",), "export": ("out",),
    "sweep": ("out",), "train-digits": ("out",), "train-cifar": ("out",), "network": ("out",),
}
#: Extra files an output file brings (``verilog -o X.v`` also writes ``X.v.json``).
SIDE_FILES: dict[str, tuple[str, ...]] = {"verilog": (".json",)}
#: Commands that build in the simulator cache when no ``--build-dir`` is given.
USES_BUILD_CACHE = ("sim", "flow")
#: Commands that run tools in a temporary folder (Verilator lint, Yosys).
USES_TEMP = ("verilog", "synth", "flow", "prove", "sweep")


def check_outputs(command: str, args: argparse.Namespace) -> None:
    """Raise :class:`OutputError` (one line naming the path) when an output of
    ``command`` given in ``args`` could not be written."""
    for dest in OUTPUT_FILES.get(command, ()):
        value = getattr(args, dest, None)
        if value:
            what = f"--{dest.replace('_', '-')}"
            check_output_file(value, what=f"{what} file")
            for suffix in SIDE_FILES.get(command, ()):
                check_output_file(value + suffix, what=f"{what} side file")
    for dest in OUTPUT_FOLDERS.get(command, ()):
        value = getattr(args, dest, None)
        if value:
            check_output_folder(value, what=f"--{dest.replace('_', '-')} folder")
    if command in USES_BUILD_CACHE and not getattr(args, "build_dir", None):
        # sim and flow load the verification room right after anyway
        from verif.build import cache_root

        root = cache_root()
        fix = "set INSITUGEN_CACHE to a plain, writable folder" + (
            " or pass --build-dir" if command == "sim" else "")
        check_build_folder(root.resolve(), what="simulator cache folder", fix=fix)
        try:
            check_output_folder(root, what="simulator cache folder")
        except OutputError as e:
            raise OutputError(f"{e} ({fix})") from None
    if command in USES_TEMP:
        _check_temp()


def _check_temp() -> None:
    try:
        folder = tempfile.gettempdir()
    except FileNotFoundError:
        raise OutputError(f"no writable temporary folder (TMPDIR = "
                          f"'{clip(os.environ.get('TMPDIR', ''))}'): set TMPDIR to a writable "
                          f"folder") from None
    try:
        check_output_folder(folder, what="temporary folder")
    except OutputError as e:
        raise OutputError(f"{e} (set TMPDIR to a writable folder)") from None
