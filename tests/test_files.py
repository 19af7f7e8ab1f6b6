# SPDX-License-Identifier: Apache-2.0
"""insitugen.files: atomic writes leave the old file or the new one, never a part, and no
temporary file; the module and a JSON report write load no torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from insitugen.files import atomic_write, atomic_write_text


def test_atomic_write_replaces_whole_file_with_the_usual_mode(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    atomic_write_text(path, "one\n")
    atomic_write_text(path, "two\n")
    assert path.read_text() == "two\n"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["out.txt"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n")

    def half_then_fail(tmp):
        Path(tmp).write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_writing_a_report_loads_no_torch(tmp_path):
    root = Path(__file__).resolve().parent.parent
    code = ("import sys; from synth.render import write_report_json; "
            f"write_report_json({{'a': 1}}, {str(tmp_path / 'r.json')!r}); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(root)}, cwd=root, check=True)
    assert out.stdout.strip() == "False"
    assert (tmp_path / "r.json").read_text() == '{\n  "a": 1\n}\n'
