# SPDX-License-Identifier: Apache-2.0
"""The house: the import graph between rooms has no cycle and no edge against the floors,
and the README's Layout section shows the graph the code has (scripts/import_graph.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "scripts" / "import_graph.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("import_graph", module)
    spec.loader.exec_module(module)
    return module


IG = _load_script()


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, timeout=120)


def test_readme_shows_the_generated_import_graph():
    run = _run()
    block = IG.readme_block(REPO_ROOT / "README.md")
    assert block is not None, "README.md lacks the import-graph markers in its Layout section"
    assert block == run.stdout.strip(), (
        "the README's import graph differs from the code's: run "
        "python scripts/import_graph.py --write-readme")


def test_rooms_have_no_cycle_and_no_upward_edge():
    edges = IG.collect_edges(REPO_ROOT)
    assert edges, "no import between rooms found: the checker reads nothing"
    assert IG.problems(edges) == []
    assert _run().returncode == 0


def _pyproject() -> dict:
    import tomllib
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_every_room_folder_is_a_package_of_its_name_and_installed():
    """A fresh install gets every package folder under its own name: pyproject's
    ``packages`` lists exactly the folders (and subfolders) of the rooms that hold an
    ``__init__.py``, and no package-dir mapping renames them."""
    tool = _pyproject()["tool"]["setuptools"]
    assert "package-dir" not in tool
    found = set()
    for room in IG.floor_of():
        folder = REPO_ROOT / room
        if folder.is_dir() and room != "benchmarks":        # benchmarks: scripts, no package
            assert (folder / "__init__.py").is_file(), room
            found |= {".".join(p.parent.relative_to(REPO_ROOT).parts)
                      for p in folder.rglob("__init__.py")}
    assert set(tool["packages"]) == found


def test_package_data_globs_match_files():
    """Every package-data pattern ships at least one file (no dead globs)."""
    for package, patterns in _pyproject()["tool"]["setuptools"]["package-data"].items():
        folder = REPO_ROOT.joinpath(*package.split("."))
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"{package}: '{pattern}' matches no file"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checker_finds_a_back_edge_and_a_cycle(tmp_path):
    """A synthetic tree: gen imports golden (down: allowed); golden imports gen lazily inside a
    function (up) and hdl through a relative import (its own floor): both are reported, and
    the cycle gen -> golden -> gen; relative imports within a room and tests/ are no edges."""
    root = _tree(tmp_path, {
        "insitugen/__init__.py": "",
        "golden/__init__.py": "",
        "golden/model.py": "import os\n\ndef f():\n    from gen.verilog import emit\n",
        "golden/sub/deep.py": "from ...hdl import thing\n",
        "hdl/__init__.py": "from . import parts\nfrom .parts import x\n",
        "gen/__init__.py": "",
        "gen/verilog.py": "import golden.model as gm\nfrom insitugen import config\n",
        "tests/test_x.py": "import flows\n",                  # tests are not a room
    })
    edges = IG.collect_edges(root)
    assert [(e.src, e.dst, e.path, e.line) for e in edges] == [
        ("gen", "golden", "gen/verilog.py", 1), ("gen", "insitugen", "gen/verilog.py", 2),
        ("golden", "gen", "golden/model.py", 4), ("golden", "hdl", "golden/sub/deep.py", 1)]
    assert IG.find_cycle(IG.graph_of(edges)) == ["gen", "golden", "gen"]
    bad = IG.against_floors(edges)
    assert [(e.src, e.dst) for e in bad] == [("golden", "gen"), ("golden", "hdl")]
    found = IG.problems(edges)
    assert found[0] == "import cycle between rooms: gen -> golden -> gen"
    assert "golden/model.py:4: 'golden' imports 'gen', a room on a higher floor" in found[1]
    assert "'golden' imports 'hdl', a room on its own floor" in found[2]
    run = _run("--root", str(root))
    assert run.returncode == 1
    assert "import cycle between rooms: gen -> golden -> gen" in run.stderr
    assert "| 3 | `gen` | `golden`, `insitugen` |" in run.stdout


def test_a_sound_tree_passes_and_the_readme_block_is_rewritten(tmp_path):
    root = _tree(tmp_path, {"gen/a.py": "from golden import b\n", "golden/b.py": "",
                            "README.md": f"# x\n\n{IG.BEGIN}\nstale\n{IG.END}\n\nend\n"})
    assert IG.problems(IG.collect_edges(root)) == []
    run = _run("--root", str(root), "--write-readme")
    assert run.returncode == 0, run.stderr
    text = (root / "README.md").read_text()
    assert "stale" not in text and "| 3 | `gen` | `golden` |" in text and text.endswith("end\n")
    assert IG.readme_block(root / "README.md") == run.stdout.strip()
    assert _run("--root", str(root), "--check-readme").returncode == 0
    (root / "gen" / "d.py").write_text("import insitugen\n")   # a sound edge; README not updated
    run = _run("--root", str(root), "--check-readme")
    assert run.returncode == 1
    assert run.stderr.strip() == ("import_graph: README.md's import graph differs from the "
                                  "code's: run python scripts/import_graph.py --write-readme")


def test_write_readme_without_markers_is_one_clear_error(tmp_path):
    (tmp_path / "README.md").write_text("# no markers\n")
    with pytest.raises(SystemExit, match="no .* markers: add them to its Layout section"):
        IG.write_readme(tmp_path / "README.md", "block")


def test_every_python_file_carries_the_licence_header():
    """Each source file names its licence (Apache-2.0, LICENSE) in an SPDX line at the top."""
    root = Path(__file__).resolve().parent.parent
    missing = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0].startswith(".") or "build" in rel.parts or rel.parts[0] == "sim_build":
            continue
        head = path.read_text().splitlines()[:2]
        if "# SPDX-License-Identifier: Apache-2.0" not in head:
            missing.append(str(rel))
    assert not missing, f"files without the SPDX header: {missing[:10]}"
    assert "Apache License" in (root / "LICENSE").read_text()
