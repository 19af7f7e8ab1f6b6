# SPDX-License-Identifier: Apache-2.0
"""What a new user meets first: one-line usage errors, honest messages for wrong files,
checks before the first step, file modes, default output folders, waves, the flow's plots
and the README's worked commands writing where .gitignore covers them."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from flows.cli import main
from insitugen.config import GeneratorConfig, RecombinationConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
TINY = GeneratorConfig(out_channels=4, in_channels=4, kernel=3, base_in=2, base_out=2, qb=3,
                       qu=4, qv=3, engine_bits=2, lanes=2, out_bits=8, shift=4)
RECOMB = RecombinationConfig(engine_bits=2, a_bits=4, x_bits=3, terms=2, mode="serial")


def _one_error_line(err: str) -> str:
    assert err.startswith("insitugen: error: "), err
    assert err.count("\n") == 1 and err.endswith("\n"), f"not one line: {err!r}"
    assert "usage:" not in err
    return err


# ---- argparse errors: one line, exit 2 (issue 13, item 6) ----------------------------------

@pytest.mark.parametrize("argv", [
    [], ["nosuch"], ["sim"], ["sim", "x.toml", "--bogus"], ["flow", "--seed", "x"],
    ["sweep", "--jobs"], ["train-digits", "--qb", "three"], ["sim", "x.toml",
                                                             "--simulator", "modelsim"],
])
def test_usage_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = _one_error_line(capsys.readouterr().err)
    assert not re.match(r"insitugen \S+: error", err)       # never 'insitugen sim: error:'


def test_usage_error_points_at_the_command_help(capsys):
    with pytest.raises(SystemExit):
        main(["sim", "x.toml", "--bogus"])
    assert "'insitugen sim --help'" in capsys.readouterr().err


# ---- a text file as --codes (item 4) --------------------------------------------------------

@pytest.mark.parametrize("kind", ["text", "npy", "empty"])
def test_code_file_that_is_not_an_npz_archive(kind, tmp_path, capsys):
    cfg_path = tmp_path / "layer.toml"
    cfg_path.write_text(TINY.to_toml())
    codes = tmp_path / "codes.npz"
    if kind == "text":
        codes.write_text("B = 1 2 3\nU = 4 5 6\n")
    elif kind == "npy":
        with open(codes, "wb") as f:
            np.save(f, np.zeros(3, dtype=np.int64))
    else:
        codes.write_bytes(b"")
    rc = main(["golden", str(cfg_path), "--codes", str(codes), "--out", str(tmp_path / "W.npz")])
    err = _one_error_line(capsys.readouterr().err)
    assert rc == 2 and ("not an .npz" in err or "empty" in err) and "pickle" not in err
    assert "np.savez" in err and not (tmp_path / "W.npz").exists()


# ---- emitted Verilog honours the umask (item 8) ---------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_verilog_and_sidecar_get_the_umask_mode(umask, tmp_path, capsys):
    cfg_path = tmp_path / "recomb.toml"
    cfg_path.write_text(RECOMB.to_toml())
    out = tmp_path / "recomb.v"
    old = os.umask(umask)
    try:
        assert main(["verilog", str(cfg_path), "-o", str(out)]) == 0
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    want = stat.S_IMODE(plain.stat().st_mode)
    assert want == 0o666 & ~umask
    for p in (out, tmp_path / "recomb.v.json"):
        assert stat.S_IMODE(p.stat().st_mode) == want, p


# ---- checks before the first step (item 5) --------------------------------------------------

def _flow_refused(argv, capsys, *needles):
    rc = main(["flow", *argv])
    cap = capsys.readouterr()
    err = _one_error_line(cap.err)
    assert rc == 2 and "[1/3]" not in cap.out, "the flow started before the check failed"
    for n in needles:
        assert n in err, err


def test_flow_checks_the_output_folder_first(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    _flow_refused(["--out-dir", str(blocker / "out"), "--no-synth"], capsys, "--out-dir",
                  "is a file")


def test_flow_checks_the_liberty_first(tmp_path, capsys):
    _flow_refused(["--liberty", str(tmp_path / "nosuch.lib"), "--out-dir", str(tmp_path)],
                  capsys, "nosuch.lib")


def test_flow_checks_the_simulator_first(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))        # no iverilog or vvp on it
    _flow_refused(["--simulator", "icarus", "--out-dir", str(tmp_path / "o")], capsys,
                  "Icarus Verilog not found")
    assert not (tmp_path / "o").exists()


def test_flow_checks_yosys_first(tmp_path, capsys, monkeypatch):
    import eda.yosys
    from insitugen.errors import ToolError

    def missing(yosys=None):
        raise ToolError("Yosys was not found: " + eda.yosys.INSTALL_HINT)
    monkeypatch.setattr(eda.yosys, "yosys_command", missing)
    _flow_refused(["--out-dir", str(tmp_path)], capsys, "Yosys was not found")


def test_sim_checks_outputs_before_building(tmp_path, capsys):
    cfg_path = tmp_path / "layer.toml"
    cfg_path.write_text(TINY.to_toml())
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for extra in (["--out", str(blocker / "W.npz")], ["--waves", str(tmp_path / "w.fst")],
                  ["--coverage", str(blocker / "cov")]):
        rc = main(["sim", str(cfg_path), *extra])
        cap = capsys.readouterr()
        _one_error_line(cap.err)
        assert rc == 2 and "insitugen sim:" not in cap.out, extra     # no build started


def test_synth_checks_yosys_and_its_outputs_first(tmp_path, capsys):
    cfg_path = tmp_path / "recomb.toml"
    cfg_path.write_text(RECOMB.to_toml())
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for extra, needle in ((["--json", str(blocker / "r.json")], "--json"),
                          (["--markdown", str(tmp_path)], "--markdown"),
                          (["--yosys", str(tmp_path / "no-yosys")], "no-yosys")):
        rc = main(["synth", str(cfg_path), *extra])
        cap = capsys.readouterr()
        assert rc == 2 and needle in _one_error_line(cap.err), extra
        assert "| design" not in cap.out                    # no report: nothing synthesized


# ---- training writes to a default folder; the README's train -> export runs (item 2) --------

def _readme_commands() -> list[list[str]]:
    """Every ``insitugen ...`` command of the README's sh blocks (continuations joined,
    ``&&`` chains split), as argument lists."""
    cmds = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            for part in line.split("&&"):
                words = shlex.split(part)
                if words[:1] == ["insitugen"]:
                    cmds.append(words[1:])
    return cmds


def test_train_digits_then_export_as_the_readme_shows(tmp_path, capsys, monkeypatch):
    from flows.commands.train_digits import DEFAULT_OUT

    cmds = _readme_commands()
    train = next(c for c in cmds if c[:1] == ["train-digits"])
    export = next(c for c in cmds if c[:1] == ["export"])
    sim = next(c for c in cmds if c[:1] == ["sim"] and "--codes" in c)
    assert "--out" not in train                        # the README relies on the default
    monkeypatch.chdir(tmp_path)
    quick = ["--teacher-epochs", "1", "--student-epochs", "1", "--projection-steps", "5",
             "--threads", "1"]
    assert main(train + quick) == 0
    out = capsys.readouterr().out
    assert f"to {DEFAULT_OUT}" in out
    for name in ("teacher.pt", "student.pt", "digits.json"):
        assert (tmp_path / DEFAULT_OUT / name).is_file(), name
    assert json.loads((tmp_path / DEFAULT_OUT / "digits.json").read_text())["student_accuracy"]
    assert main(export) == 0                           # exactly as written
    capsys.readouterr()
    config = sim[1]
    codes = sim[sim.index("--codes") + 1]
    assert Path(config).is_file() and Path(codes).is_file()
    # the codes the README simulates load and generate (golden: the simulation itself is
    # the cocotb suite's job)
    assert main(["golden", config, "--codes", codes, "--out", "W.npz"]) == 0


def test_train_cifar_needs_no_out():
    from flows.cli import build_parser
    from flows.commands.train_cifar import DEFAULT_OUT

    args = build_parser().parse_args(["train-cifar", "--data", "somewhere"])
    assert args.out == DEFAULT_OUT
    assert "train-cifar --data PATH" in README


def test_training_checks_its_output_folder_first(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    rc = main(["train-digits", "--out", str(blocker / "digits")])
    cap = capsys.readouterr()
    _one_error_line(cap.err)
    assert rc == 2 and "teacher" not in cap.out


# ---- waves (item 3) -------------------------------------------------------------------------

def test_waves_default_path(tmp_path):
    from flows.cli import build_parser
    from flows.commands.sim import _waves_path

    p = build_parser()
    assert _waves_path(p.parse_args(["sim", "a/layer.toml"])) is None
    assert _waves_path(p.parse_args(["sim", "a/layer.toml", "--waves"])) == \
        Path("insitugen_out/layer.vcd")
    assert _waves_path(p.parse_args(["sim", "a/layer.toml", "--waves", "--simulator", "icarus",
                                     "--out", "r/W.npz"])) == Path("r/W.fst")
    assert _waves_path(p.parse_args(["sim", "a/layer.toml", "--waves", "x/y.vcd"])) == \
        Path("x/y.vcd")


SIMULATORS = [pytest.param("verilator"),
              pytest.param("icarus", marks=pytest.mark.skipif(
                  shutil.which("iverilog") is None, reason="Icarus (iverilog) not installed"))]


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_waves_go_where_asked_and_never_stay_stale(simulator, tmp_path, capsys):
    from verif.runner import run_sim
    from verif.waves import DEFAULT_STEM, WAVE_FILES, wave_suffix

    build = tmp_path / "build"
    dest = tmp_path / "out" / f"run{wave_suffix(simulator)}"
    res = run_sim(RECOMB, simulator=simulator, seed=3, waves=True, waves_path=dest,
                  build_dir=build, quiet=True)
    assert res.waves == dest.resolve() and dest.stat().st_size > 0
    head = dest.read_bytes()[:64]
    if simulator == "verilator":
        assert b"$date" in head or b"$version" in head or b"$timescale" in head
    assert str(dest.resolve()) in capsys.readouterr().out           # the path is printed
    assert not (build / WAVE_FILES[simulator]).exists()
    # an old dump in the build folder (either name) is gone after a run without waves
    for stale in (WAVE_FILES[simulator], DEFAULT_STEM + wave_suffix(simulator)):
        (build / stale).write_text("old dump")
    res = run_sim(RECOMB, simulator=simulator, seed=3, build_dir=build, quiet=True)
    assert res.waves is None
    assert not any((build / n).exists() for n in
                   (WAVE_FILES[simulator], DEFAULT_STEM + wave_suffix(simulator)))


def test_waves_suffix_must_match_the_simulator(tmp_path):
    from insitugen.errors import ConfigError
    from verif.waves import check_waves_path

    with pytest.raises(ConfigError, match=r"\*\.vcd"):
        check_waves_path(tmp_path / "w.fst", "verilator")
    with pytest.raises(ConfigError, match="folder"):
        check_waves_path(tmp_path, "icarus")


# ---- the flow's plots (item 9) --------------------------------------------------------------

def test_flow_writes_and_names_its_plots(tmp_path, capsys):
    from flows.flow_plots import FLOW_PLOTS, area_by_class

    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY.to_toml())
    out_dir = tmp_path / "out"
    assert main(["flow", str(cfg_path), "--out-dir", str(out_dir)]) == 0
    stdout = capsys.readouterr().out
    summary = json.loads((out_dir / "flow.json").read_text())
    assert set(summary["plots"]) == set(FLOW_PLOTS)
    for name, path in summary["plots"].items():
        assert Path(path) == out_dir / f"{name}.png"
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert str(path) in stdout                          # named in the report
    assert summary["sim"]["cycles_backpressure"] >= summary["sim"]["cycles"] > 0
    # the area plot's cell classes add up to each design's reported area
    report = json.loads((out_dir / "synth.json").read_text())
    for name, d in report["designs"].items():
        parts = area_by_class(d["pdk_free"]["cells"])
        assert sum(parts.values()) == pytest.approx(d["pdk_free"]["nand2_eq"], abs=0.05), name
        assert parts["flops"] > 0 or d["pdk_free"]["flops"] == 0


def test_flow_plots_say_what_is_missing(tmp_path):
    from flows.flow_plots import FLOW_PLOTS, draw_flow_plots

    written = draw_flow_plots({"sim": {}}, None, tmp_path)
    assert sorted(written) == sorted(FLOW_PLOTS)
    assert all(p.is_file() and p.stat().st_size > 0 for p in written.values())


# ---- README: outputs in ignored folders (item 8), the 5 % line explained (item 10) ---------

def _ignored_folders() -> list[str]:
    lines = (ROOT / ".gitignore").read_text().splitlines()
    return [ln.strip("/") for ln in lines if ln.endswith("/") and "*" not in ln]


def test_readme_examples_write_into_ignored_folders():
    ignored = _ignored_folders()
    outputs = []
    for cmd in _readme_commands():
        for opt in ("-o", "--out", "--out-dir", "--json", "--markdown", "--waves"):
            if opt in cmd[:-1]:
                outputs.append(cmd[cmd.index(opt) + 1])
    assert len(outputs) >= 5
    for path in outputs:
        assert Path(path).parts[0] in ignored, f"README writes {path} outside {ignored}"
    for name in re.findall(r"n\.load\('([^']+)'\)", README):
        assert Path(name).parts[0] in ignored, name


def test_readme_explains_the_overhead_target_line():
    from flows.sweep.plots import OVERHEAD_TARGET

    pct = f"{100 * OVERHEAD_TARGET:.0f} %"
    sweep = README[README.index("`insitugen sweep SPACE.toml --jobs N`"):]
    sweep = sweep[:sweep.index("\n## ")]
    assert pct in sweep and "target" in sweep and "dashed" in sweep


def test_flow_runs_its_two_simulations_side_by_side(tmp_path, capsys, monkeypatch):
    """Without functional coverage (a user's run) the flow's two simulations run at once
    on one shared build; both are checked and reported as when run one after the other."""
    from verif.runner import COVERAGE_ENV

    monkeypatch.delenv(COVERAGE_ENV, raising=False)
    monkeypatch.setenv("INSITUGEN_CACHE", str(tmp_path / "cache"))
    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(TINY.to_toml())
    out_dir = tmp_path / "out"
    assert main(["flow", str(cfg_path), "--out-dir", str(out_dir), "--no-synth"]) == 0
    stdout = capsys.readouterr().out
    assert "output always ready and, beside it, random back-pressure" in stdout
    sim = json.loads((out_dir / "flow.json").read_text())["sim"]
    assert (sim["seed"], sim["seed_backpressure"]) == (1, 2)
    assert sim["beats"] == sim["beats_backpressure"] > 0
    assert sim["cycles_backpressure"] >= sim["cycles"] > 0
    assert (out_dir / "weights.npz").is_file()
