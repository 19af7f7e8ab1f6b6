"""Hostile input: random invalid configs and corrupted code files are refused with one
clear error line, a non-zero exit, and no output file (partial or temporary) left behind.

The generators are seeded; the counts tried are printed (run with -s to see them).
"""

from __future__ import annotations

import io
import random

import numpy as np
import pytest

import insitugen
from flows.cli import main
from insitugen.config import GeneratorConfig

SMALL = GeneratorConfig(out_channels=4, in_channels=3, base_in=2, base_out=2, lanes=4)

# (field, bad values) -- each out of range, of the wrong type, or not a choice
BAD_VALUES = {
    "out_channels": [0, -3, 4097, 1.5, "8", True, [4]],
    "in_channels": [0, 99999, "x", 2.0],
    "kernel": [0, 12, -1, "3"],
    "base_in": [-1, 65, "2", 0.5],
    "base_out": [-5, 4097, "44"],
    "qb": [0, 17, -2, "3"],
    "qu": [0, 33, 6.0],
    "qv": [0, 100, "three"],
    "engine_bits": [0, 17, "3"],
    "lanes": [0, 1025, -64, 3.3],
    "out_bits": [1, 33, -8, "8"],
    "shift": [-1, 63, "10"],
    "rounding": ["round", "", 3, "HALF_EVEN"],
    "order": ["nchw", "", 1],
    "recombination": ["both", 0],
    "layer": ["lstm", 2],
    "block": ["fpga", 7],
    "mystery_field": [1, "x"],
}
COMBINATIONS = [
    {"layer": "linear", "kernel": 3},
    {"out_bits": 0, "shift": 4},
    {"qb": 16, "qu": 16, "qv": 16, "base_in": 64, "base_out": 4096, "out_channels": 4096},
]


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def _write_config(path, overrides: dict) -> None:
    data = {k: v for k, v in SMALL.to_dict().items()}
    data.update(overrides)
    path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in data.items()))


def _assert_refused(capsys, argv, out_dir, what: str) -> None:
    before = set(p.name for p in out_dir.iterdir())
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc != 0, f"{what}: exit code 0"
    assert err.startswith("insitugen: error: ") and "\n" not in err, f"{what}: {err!r}"
    assert "Traceback" not in err
    after = set(p.name for p in out_dir.iterdir())
    assert after == before, f"{what}: left files behind: {sorted(after - before)}"


def test_random_invalid_configs_refused(tmp_path, capsys):
    rng = random.Random(20261129)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cfg_path = tmp_path / "bad.toml"
    tried = 0
    for n in range(520):
        if n % 13 == 0:
            overrides = dict(rng.choice(COMBINATIONS))
        else:
            overrides = {}
            for field in rng.sample(sorted(BAD_VALUES), rng.randint(1, 3)):
                overrides[field] = rng.choice(BAD_VALUES[field])
        _write_config(cfg_path, overrides)
        _assert_refused(capsys, ["golden", str(cfg_path), "--out", str(out_dir / "W.npz")],
                        out_dir, f"config #{n} {overrides}")
        tried += 1
    # also a few files that are not TOML at all
    for n, text in enumerate(["out_channels = \n", "[[[", "\x00\x01binary", "kernel = 3 3\n"]):
        cfg_path.write_text(text)
        _assert_refused(capsys, ["golden", str(cfg_path), "--out", str(out_dir / "W.npz")],
                        out_dir, f"non-TOML #{n}")
        tried += 1
    print(f"\nrefused {tried} random invalid configs (seed 20261129), each with one clear "
          f"line, non-zero exit, nothing left behind")
    assert tried >= 500


def _corrupt_codes(rng: random.Random, path, good: dict) -> str:
    """Write one corrupted code file; return what was done."""
    kind = rng.choice(["shape", "range_hi", "range_neg", "missing", "dtype", "extra_level",
                       "truncated", "garbage", "pickled", "empty", "flattened"])
    arrays = {k: v.copy() for k, v in good.items()}
    name = rng.choice(sorted(arrays))
    if kind == "shape":
        a = arrays[name]
        axis = rng.randrange(a.ndim)
        arrays[name] = np.concatenate([a, a.take([0], axis=axis)], axis=axis)
    elif kind == "flattened":
        arrays[name] = arrays[name].reshape(-1)
    elif kind == "range_hi":
        bits = SMALL.code_bits[name]
        flat = arrays[name].reshape(-1)
        flat[rng.randrange(flat.size)] = (1 << bits) + rng.randrange(100)
    elif kind == "range_neg":
        flat = arrays[name].reshape(-1)
        flat[rng.randrange(flat.size)] = -1 - rng.randrange(5)
    elif kind == "missing":
        del arrays[name]
    elif kind == "dtype":
        arrays[name] = arrays[name].astype(np.float32) + 0.5
    elif kind == "extra_level":
        pass  # handled below with a config whose level is off
    if kind in ("truncated", "garbage", "empty", "pickled"):
        if kind == "truncated":
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            data = buf.getvalue()
            path.write_bytes(data[: rng.randrange(1, len(data) - 1)])
        elif kind == "garbage":
            path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
        elif kind == "empty":
            path.write_bytes(b"")
        else:
            obj = np.empty(1, dtype=object)
            obj[0] = {"payload": "os.system"}
            arrays[name] = obj
            with open(path, "wb") as f:
                np.savez(f, **arrays)
        return kind
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return kind


def test_random_corrupted_code_files_refused(tmp_path, capsys):
    from golden.codes import random_codes
    rng = random.Random(1129)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cfg_path = tmp_path / "layer.toml"
    cfg_path.write_text(SMALL.to_toml())
    off_path = tmp_path / "intra_off.toml"
    off_path.write_text(SMALL.replace(base_in=0).to_toml())
    good = {k: v.numpy() for k, v in random_codes(SMALL, 5).items()}
    codes_path = tmp_path / "codes.npz"
    kinds: dict[str, int] = {}
    for n in range(520):
        kind = _corrupt_codes(rng, codes_path, good)
        config = off_path if kind == "extra_level" else cfg_path
        _assert_refused(capsys, ["golden", str(config), "--codes", str(codes_path), "--out",
                                 str(out_dir / "W.npz")], out_dir, f"code file #{n} ({kind})")
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"\nrefused {sum(kinds.values())} corrupted code files (seed 1129): {kinds}")
    assert sum(kinds.values()) >= 500 and len(kinds) >= 10


def test_pickled_npz_is_refused_not_executed(tmp_path, capsys):
    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))
    obj = np.empty(1, dtype=object)
    obj[0] = Boom()
    p = tmp_path / "evil.npz"
    with open(p, "wb") as f:
        np.savez(f, B=obj)
    cfg_path = tmp_path / "layer.toml"
    cfg_path.write_text(SMALL.to_toml())
    rc = main(["golden", str(cfg_path), "--codes", str(p), "--out", str(tmp_path / "W.npz")])
    err = capsys.readouterr().err
    assert rc != 0 and "pickled" in err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "W.npz").exists()


def test_valid_golden_writes_weights(tmp_path, capsys):
    cfg_path = tmp_path / "layer.toml"
    cfg_path.write_text(SMALL.to_toml())
    out = tmp_path / "W.npz"
    assert main(["golden", str(cfg_path), "--seed", "3", "--out", str(out)]) == 0
    with np.load(out, allow_pickle=False) as z:
        assert z["W"].shape == (4, 3, 3, 3) and z["W"].dtype == np.int64


# ---- external tools: argument lists only ------------------------------------------------------

_PACKAGE_DIRS = ("insitugen", *insitugen.ROOMS)      # every room, the tool adapters included
_SPAWNERS = {("subprocess", n) for n in ("run", "Popen", "call", "check_call", "check_output",
                                          "getoutput", "getstatusoutput")}
_SHELLS = {("os", n) for n in ("system", "popen", "spawnl", "spawnlp", "execl", "execlp")}


def test_tools_are_started_with_argument_lists_never_a_shell():
    """Every process the package starts (Yosys, Verilator, make, Icarus, g++) gets an
    argument list: no ``shell=True``, no ``os.system`` / ``os.popen``, no string command
    built from config values. Checked on the syntax tree of every package module."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    calls = 0
    problems = []
    for folder in _PACKAGE_DIRS:
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                    continue
                base = node.func.value
                name = (base.id if isinstance(base, ast.Name) else None, node.func.attr)
                where = f"{path.relative_to(root)}:{node.lineno}"
                if name in _SHELLS or name[1] in ("getoutput", "getstatusoutput"):
                    problems.append(f"{where}: {name[0]}.{name[1]} runs a shell")
                if name not in _SPAWNERS:
                    continue
                calls += 1
                for kw in node.keywords:
                    if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant)
                                                  and kw.value.value is False):
                        problems.append(f"{where}: shell= is not False")
                if node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr,
                                                           ast.BinOp)):
                    problems.append(f"{where}: the command is a string, not an argument list")
    print(f"\n{calls} process starts checked in {', '.join(_PACKAGE_DIRS)}")
    assert calls >= 3, "the scan found no subprocess call: is it looking at the package?"
    assert not problems, "\n".join(problems)


# ---- the parser is light ------------------------------------------------------------------

_HEAVY = ("torch", "amaranth", "matplotlib", "cocotb", "sklearn")

_HELP_PROBE = """
import contextlib, io, json, sys
from flows.cli import build_parser
from flows.commands import COMMANDS, command_name
parser = build_parser()
loaded = {}
for module in ("",) + COMMANDS:
    argv = [command_name(module), "--help"] if module else ["--help"]
    if module == "prove":
        continue          # its --method help lists verif.formal.METHODS (imports Amaranth)
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
        parser.parse_args(argv)
    assert "usage: insitugen" in out.getvalue(), argv
    loaded[" ".join(argv)] = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps(loaded))
"""


def test_help_of_every_command_loads_no_heavy_package():
    """``insitugen --help`` and ``insitugen CMD --help`` build every subparser but import no
    torch, Amaranth, matplotlib, cocotb or scikit-learn (fresh interpreter: this one has)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    code = f"HEAVY = {_HEAVY!r}\n" + _HELP_PROBE
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=root, check=True).stdout
    loaded = json.loads(out)
    assert len(loaded) == 11                # insitugen --help and 10 commands' --help
    assert all(not mods for mods in loaded.values()), loaded


def test_lazy_choices_are_checked_from_their_source(capsys):
    from verif.formal import METHODS

    with pytest.raises(SystemExit) as e:
        main(["prove", "x.toml", "--method", "bogus"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'bogus'" in err and all(repr(m) in err for m in METHODS)
