# SPDX-License-Identifier: Apache-2.0
"""Design-space sweep: space files, expansion, cache, parallel and Dask runs, outputs, plots.

Most tests drive the sweep machinery with :func:`model_evaluate`, a cheap
deterministic stand-in for synthesis (module level, so spawned worker processes
and Dask can import it); ``test_real_*`` run the real evaluation (Yosys through
``synth.report.run_synth``) on a few small points, and the slow test
runs the 48-point example of ``examples/sweep/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from flows import sweep as S
from flows.commands import sweep as sweep_command
from flows.sweep.plots import PLOTS
from insitugen.config import GeneratorConfig
from insitugen.errors import ConfigError, ToolError

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_GRID = REPO_ROOT / "examples" / "sweep" / "small_grid.toml"
EXAMPLE_RANDOM = REPO_ROOT / "examples" / "sweep" / "random_mlg.toml"
VERSIONS = {"insitugen": "test", "liberty_sha256": "none"}


def model_evaluate(cfg: GeneratorConfig, liberty) -> dict:
    """A deterministic area model (not synthesis): the sweep machinery's test double."""
    engine = 40.0 * (cfg.engine_bits + 1) ** 2 * cfg.lanes
    generator = engine * (1.0 + 0.03 * cfg.qu / cfg.engine_bits) + 150 * cfg.engine_bits
    return {"area_unit": "GE (model)", "generator_area": generator, "engine_area": engine,
            "dedicated_area": 2.5 * engine, "logic_added": generator - engine,
            "overhead": (generator - engine) / engine, "depth": 10 + 2 * cfg.engine_bits,
            "delay_ns": 2.0 + 0.1 * cfg.lanes, "fmax_mhz": 1000 / (2.0 + 0.1 * cfg.lanes)}


def failing_on_lanes_4(cfg: GeneratorConfig, liberty) -> dict:
    if cfg.lanes == 4:
        raise ToolError("Yosys failed on 'design.v': simulated failure")
    return model_evaluate(cfg, liberty)


def space(text: str, tmp_path: Path, name: str = "space.toml") -> S.SweepSpace:
    path = tmp_path / name
    path.write_text(text)
    return S.load_space(path)


#: The [base] table of the small spaces: a 4 -> 4 3x3 layer with both levels on.
BASE = """
[base]
out_channels = 4
in_channels = 4
kernel = 3
base_in = 2
base_out = 2
shift = 4
"""

SMALL = BASE + """[grid]
engine_bits = [2, 3]
qu = [3, 6]
lanes = [2, 4]
"""


# ---- space files ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, words", [
    ("[base]\nfoo = 1\n[grid]\nqu = [3]\n", ["[base]", "'foo'", "known fields"]),
    ("[grid]\nquu = [3]\n", ["[grid]", "'quu'"]),
    ("[grid]\nqu = []\n", ["'qu'", "empty list"]),
    ("[grid]\nqu = 3\n", ["'qu'", "list of values"]),
    ("[grid]\nqu = [3, 3]\n", ["'qu'", "twice"]),
    ("[grid]\nqu = [3, 4.5]\n", ["'qu'", "4.5", "integers or strings"]),
    ("[grid]\nblock = [\"generator\"]\n", ["'block'"]),
    ("[base]\nqu = 3\n", ["exactly one of [grid]", "[random]"]),
    ("[grid]\nqu = [3]\n[random]\nqu = [3]\nsamples = 1\nseed = 0\n", ["exactly one of"]),
    ("[grid]\n", ["sweeps no field"]),
    ("[grid]\nqu = [3]\n[extra]\nx = 1\n", ["'extra'"]),
    ("[random]\nseed = 1\nqu = [3, 4]\n", ["'samples'"]),
    ("[random]\nsamples = 2\nqu = [3, 4]\n", ["'seed'"]),
    ("[random]\nsamples = 0\nseed = 1\nqu = [3, 4]\n", ["'samples'", ">= 1"]),
    ("[random]\nsamples = 5\nseed = 1\nqu = [3, 4]\n", ["samples = 5", "2 distinct"]),
    ("[random]\nsamples = 1\nseed = 1\nlanes = {min = 4, max = 2}\n", ["'lanes'", "empty"]),
    ("[random]\nsamples = 1\nseed = 1\nlanes = {min = 1}\n", ["'lanes'", "'max'"]),
    ("[random]\nsamples = 1\nseed = 1\nlanes = {min = 1, max = 4, by = 2}\n", ["'by'"]),
    ("[random]\nsamples = 1\nseed = 1\nlanes = {min = 1, max = 4, step = 0}\n", ["step"]),
    ("[grid]\nqu = [3]\n[synth]\noption_sets = [[\"-flatten\"]]\n", ["'-flatten'"]),
    ("[grid]\nqu = [3]\n[synth]\noption_sets = []\n", ["option_sets"]),
    ("[grid]\nqu = [3]\n[synth]\njobs = 2\n", ["'jobs'"]),
    ("[grid]\nqu = [3\n", ["not valid TOML"]),
    ("[grid]\nlanes = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nqu = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
     "qb = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nqv = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
     "base_out = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nshift = [0, 1]\n",
     ["200000 points", "more than 100000"]),
], ids=["base-unknown", "grid-unknown", "empty-list", "not-a-list", "repeated-value",
        "float-value", "block", "no-axes-table", "grid-and-random", "empty-grid", "unknown-table",
        "random-no-samples", "random-no-seed", "random-zero-samples", "random-too-many",
        "range-empty", "range-no-max", "range-unknown-key", "range-zero-step",
        "synth-bad-flag", "synth-empty", "synth-unknown-key", "bad-toml", "too-many-points"])
def test_space_errors(tmp_path, text, words):
    with pytest.raises(ConfigError) as info:
        space(text, tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "space.toml") in msg
    for w in words:
        assert w in msg, msg


def test_space_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        S.load_space(tmp_path / "nope.toml")


def test_grid_expansion_order_and_invalid_points(tmp_path):
    sp = space("[base]\nout_channels = 4\nin_channels = 4\nbase_out = 2\nshift = 4\n"
               "[grid]\nengine_bits = [2, 3]\nqu = [3, 17]\nlanes = [1, 2, 4]\n", tmp_path)
    assert sp.mode == "grid" and sp.size == sp.n_points == 12
    pts = S.expand_space(sp)
    assert [p.index for p in pts] == list(range(12))
    # last axis fastest, in the order written
    assert [dict(p.params) for p in pts[:4]] == [
        {"engine_bits": 2, "qu": 3, "lanes": 1}, {"engine_bits": 2, "qu": 3, "lanes": 2},
        {"engine_bits": 2, "qu": 3, "lanes": 4}, {"engine_bits": 2, "qu": 17, "lanes": 1}]
    invalid = [p for p in pts if p.config is None]
    assert len(invalid) == 6 and all(p.params["qu"] == 17 for p in invalid)
    assert all("'qu' = 17 is out of range" in p.error for p in invalid)
    ok = [p for p in pts if p.config is not None]
    assert all(p.config.out_channels == 4 and p.config.qu == p.params["qu"]
               and p.config.lanes == p.params["lanes"] for p in ok)


def test_random_expansion_is_seeded_distinct_and_in_range(tmp_path):
    text = ("[base]\nout_channels = 16\nin_channels = 16\n[random]\nsamples = 25\nseed = 3\n"
            "base_out = {min = 2, max = 16, step = 2}\nlanes = {min = 1, max = 9}\n"
            "rounding = [\"floor\", \"half_up\"]\n")
    pts = S.expand_space(space(text, tmp_path))
    again = S.expand_space(space(text, tmp_path, "again.toml"))
    other = S.expand_space(space(text.replace("seed = 3", "seed = 4"), tmp_path, "o.toml"))
    combos = [tuple(sorted(p.params.items())) for p in pts]
    assert len(pts) == 25 and len(set(combos)) == 25
    assert combos == [tuple(sorted(p.params.items())) for p in again]
    assert combos != [tuple(sorted(p.params.items())) for p in other]
    for p in pts:
        assert p.params["base_out"] in range(2, 17, 2)
        assert 1 <= p.params["lanes"] <= 9
        assert p.params["rounding"] in ("floor", "half_up")
        assert p.config is not None


def test_random_can_draw_the_whole_space(tmp_path):
    pts = S.expand_space(space("[random]\nsamples = 6\nseed = 0\nqu = [3, 4, 5]\n"
                               "lanes = [1, 2]\n", tmp_path))
    assert sorted((p.params["qu"], p.params["lanes"]) for p in pts) == [
        (q, n) for q in (3, 4, 5) for n in (1, 2)]


def test_examples_are_valid():
    grid = S.load_space(EXAMPLE_GRID)
    pts = S.expand_space(grid)
    assert len(pts) == 48 and all(p.config is not None for p in pts)
    pts = S.expand_space(S.load_space(EXAMPLE_RANDOM))
    assert len(pts) == 12 and all(p.config is not None for p in pts)


# ---- figures, metrics, cache key, Pareto ---------------------------------------------------

def test_config_figures_follow_the_config():
    cfg = GeneratorConfig(out_channels=8, in_channels=8, kernel=3, base_in=2, base_out=4,
                          qu=4, lanes=5, shift=6)
    f = S.config_figures(cfg)
    assert f["code_memory_bits"] == cfg.code_memory_bits
    assert f["memory_saved_bits"] == cfg.weight_memory_bits - cfg.code_memory_bits
    assert f["rounds_per_row"] == -(-8 * 9 // 5) == 15
    assert f["steps_per_round"] == cfg.macs_per_weight
    assert f["cycles_lower_bound"] == -(-8 * 8 * 9 * cfg.macs_per_weight // 5)
    # latency: memory read, multiply-accumulate, output register + the default register stage
    assert f["latency"] == 4 and f["cycles_source"] == "schedule"
    assert f["cycles_per_pass"] == 8 * 15 * cfg.macs_per_weight + 4
    # both levels off: one step per round, the bound counts rounds, no register stage
    off = S.config_figures(cfg.replace(base_in=0, base_out=0))
    assert off["macs_per_weight"] == 0 and off["steps_per_round"] == 1
    assert off["cycles_lower_bound"] == 8 * 15 and off["cycles_per_pass"] == 8 * 15 + 3


def _design(ge, depth, nand2=None, delay=None, unit="1ns"):
    d = {"pdk_free": {"nand2_eq": nand2 if nand2 is not None else ge, "logic_depth": depth,
                      "flops": 3, "options": ["-booth"]}, "memory_bits": 40}
    if delay is not None:
        d["liberty"] = {"ge": ge, "area_um2": ge * 7.2576, "logic_depth": depth,
                        "delay_estimate": delay, "delay_unit": unit, "flops": 3,
                        "options": ["-booth"]}
    return d


def test_metrics_from_report_pdk_free_and_liberty():
    report = {"config": {"lanes": 2}, "seconds": 1.5, "designs": {
        "generator": _design(1200.0, 30), "reference_engine": _design(1000.0, 20),
        "dedicated_generator": _design(1500.0, 28), "recombination_level1": _design(50.0, 5)}}
    m = S.metrics_from_report(report)
    assert m["area_unit"] == "GE (PDK-free)"
    assert (m["generator_area"], m["engine_area"], m["dedicated_area"]) == (1200, 1000, 1500)
    assert m["logic_added"] == 200 and m["overhead"] == pytest.approx(0.2)
    assert m["recombination_area"] == 100.0 and m["depth"] == 30
    assert "fmax_mhz" not in m
    lib = {"config": {"lanes": 1}, "designs": {
        "generator": _design(1100.0, 22, nand2=1200.0, delay=2500.0, unit="1ps"),
        "reference_engine": _design(1000.0, 15, nand2=990.0, delay=2.0),
        "dedicated_generator": _design(1400.0, 25, delay=3.0)}}
    m = S.metrics_from_report(lib)
    assert m["area_unit"] == "GE (liberty)" and m["generator_area"] == 1100.0
    assert m["generator_nand2_eq"] == 1200.0 and m["engine_nand2_eq"] == 990.0
    assert m["delay_ns"] == pytest.approx(2.5) and m["fmax_mhz"] == pytest.approx(400.0)
    assert m["recombination_area"] == 0.0


def test_cache_key_covers_config_versions_and_evaluator():
    cfg = GeneratorConfig(out_channels=4, in_channels=4, base_out=2, shift=4)
    k = S.cache_key(cfg, VERSIONS, "e")
    assert k == S.cache_key(GeneratorConfig.from_dict(cfg.to_dict()), dict(VERSIONS), "e")
    assert k != S.cache_key(cfg.replace(lanes=3), VERSIONS, "e")
    assert k != S.cache_key(cfg, {**VERSIONS, "yosys": "Yosys 0.71"}, "e")
    assert k != S.cache_key(cfg, {**VERSIONS, "liberty_sha256": "ab"}, "e")
    assert k != S.cache_key(cfg, VERSIONS, "other")
    import functools
    assert (S.evaluator_name(functools.partial(S.evaluate_point, option_sets=(("-booth",),)))
            != S.evaluator_name(S.evaluate_point))


def test_cache_versions_record_liberty_hash(tmp_path):
    liberty_path = tmp_path / "any.lib"          # only hashed, never parsed here
    liberty_path.write_text("library (any) { }\n")
    v = S.cache_versions(liberty_path, yosys=False)
    import hashlib
    assert v["liberty_sha256"] == hashlib.sha256(liberty_path.read_bytes()).hexdigest()
    assert v["insitugen"] and v["amaranth"]
    assert S.cache_versions(None, yosys=False)["liberty_sha256"] == "none"
    with pytest.raises(ToolError, match="does not exist"):
        S.cache_versions(tmp_path / "missing.lib", yosys=False)


@pytest.mark.parametrize("points, front", [
    ([(10, 5), (8, 3), (12, 9), (7, 4), (12, 10)], [True, True, True, False, False]),
    ([(5, 1), (5, 1), (4, 2)], [True, True, False]),
    ([(1, 1)], [True]),
    ([], []),
    ([(3, 2), (3, 1)], [False, True]),
], ids=["mixed", "ties", "one", "none", "same-saved"])
def test_pareto_front(points, front):
    assert S.pareto_front(points) == front


# ---- running the sweep ---------------------------------------------------------------------

def test_sweep_parallel_cache_and_resume(tmp_path):
    sp = space(SMALL, tmp_path)
    cache = tmp_path / "cache"
    first = S.run_sweep(sp, evaluate=model_evaluate, jobs=2, cache_dir=cache,
                        versions=VERSIONS, progress=False, log=lambda m: None)
    assert (first.n_new, first.n_cached, first.n_invalid, first.n_failed) == (8, 0, 0, 0)
    assert len(list(cache.glob("*.json"))) == 8
    for row in first.rows:
        cfg = GeneratorConfig.from_dict({k: row[k] for k in S.CONFIG_FIELDS})
        assert row["status"] == "ok" and not row["cached"]
        assert row["generator_area"] == model_evaluate(cfg, None)["generator_area"]
        assert row["code_memory_bits"] == cfg.code_memory_bits
    # a rerun evaluates nothing (an evaluator that would fail proves it is not called:
    # same name, so same keys)
    calls = []

    def counting(cfg, liberty):
        calls.append(cfg)
        return model_evaluate(cfg, liberty)
    counting.__module__, counting.__qualname__ = model_evaluate.__module__, "model_evaluate"
    again = S.run_sweep(sp, evaluate=counting, jobs=1, cache_dir=cache, versions=VERSIONS,
                        progress=False, log=lambda m: None)
    assert (again.n_new, again.n_cached) == (0, 8) and calls == []
    assert [r["generator_area"] for r in again.rows] == [r["generator_area"] for r in first.rows]
    assert all(r["cached"] for r in again.rows)
    # a grown space evaluates only its new points
    grown = space(SMALL.replace("lanes = [2, 4]", "lanes = [2, 4, 8]"), tmp_path, "g.toml")
    more = S.run_sweep(grown, evaluate=counting, jobs=1, cache_dir=cache, versions=VERSIONS,
                       progress=False, log=lambda m: None)
    assert (more.n_new, more.n_cached) == (4, 8) and {c.lanes for c in calls} == {8}
    # a new tool version invalidates the cache
    newer = S.run_sweep(sp, evaluate=model_evaluate, jobs=1, cache_dir=cache,
                        versions={**VERSIONS, "yosys": "next"}, progress=False,
                        log=lambda m: None)
    assert (newer.n_new, newer.n_cached) == (8, 0)


def test_sweep_reports_counts_in_its_log(tmp_path):
    sp = space(SMALL, tmp_path)
    lines = []
    S.run_sweep(sp, evaluate=model_evaluate, cache_dir=tmp_path / "c", versions=VERSIONS,
                progress=False, log=lines.append)
    r = S.run_sweep(sp, evaluate=model_evaluate, cache_dir=tmp_path / "c", versions=VERSIONS,
                    progress=False, log=lines.append)
    assert "8 points, 0 cached, 8 new, 0 invalid" in lines[0]
    assert "8 points, 8 cached, 0 new, 0 invalid" in lines[1]
    assert r.summary().startswith("8 points: 8 cached, 0 new, 0 invalid, 0 failed")


def test_corrupt_cache_entry_is_recomputed(tmp_path):
    sp = space(SMALL, tmp_path)
    cache = tmp_path / "cache"
    S.run_sweep(sp, evaluate=model_evaluate, cache_dir=cache, versions=VERSIONS,
                progress=False, log=lambda m: None)
    files = sorted(cache.glob("*.json"))
    files[0].write_text("{ torn")
    files[1].write_text(json.dumps({"config": {"lanes": 99}, "metrics": {}}))
    r = S.run_sweep(sp, evaluate=model_evaluate, cache_dir=cache, versions=VERSIONS,
                    progress=False, log=lambda m: None)
    assert (r.n_new, r.n_cached) == (2, 6)
    assert json.loads(files[0].read_text())["metrics"]["engine_area"] > 0


def test_invalid_and_failing_points_do_not_stop_the_sweep(tmp_path):
    sp = space(SMALL.replace("qu = [3, 6]", "qu = [3, 17]"), tmp_path)
    cache = tmp_path / "cache"
    r = S.run_sweep(sp, evaluate=failing_on_lanes_4, jobs=2, cache_dir=cache,
                    versions=VERSIONS, progress=False, log=lambda m: None)
    status = {(row["engine_bits"], row["qu"], row["lanes"]): row for row in r.rows}
    assert (r.n_invalid, r.n_failed, r.n_new) == (4, 2, 2)
    for (_eb, qu, lanes), row in status.items():
        if qu == 17:
            assert row["status"] == "invalid" and "'qu' = 17 is out of range" in row["reason"]
        elif lanes == 4:
            assert row["status"] == "error" and "simulated failure" in row["reason"]
        else:
            assert row["status"] == "ok" and row["reason"] == ""
    assert len(list(cache.glob("*.json"))) == 2          # failures are not cached
    out = S.write_outputs(r, tmp_path / "out")
    rows = list(csv.DictReader(out["csv"].open()))
    assert [row["status"] for row in rows].count("invalid") == 4
    assert any("simulated failure" in row["reason"] for row in rows)


def test_bad_jobs_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="--jobs"):
        S.run_sweep(space(SMALL, tmp_path), evaluate=model_evaluate, jobs=0,
                    cache_dir=tmp_path / "c", versions=VERSIONS)


# ---- outputs and plots ---------------------------------------------------------------------

def assert_png_drawn(path: Path) -> None:
    """A PNG read back: a real image size and not one flat colour."""
    import matplotlib.image as mpimg
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] >= 300 and img.shape[1] >= 400, img.shape
    rgb = img[..., :3]
    assert float(np.var(rgb)) > 1e-3, f"{path} is blank"
    # more than axes and text: a good share of pixels differ from the background
    background = rgb[0, 0]
    assert np.mean(np.any(np.abs(rgb - background) > 0.05, axis=-1)) > 0.01, path


def test_outputs_csv_json_and_plots(tmp_path):
    sp = space(SMALL.replace("qu = [3, 6]", "qu = [3, 6, 17]"), tmp_path)
    r = S.run_sweep(sp, evaluate=model_evaluate, jobs=1, cache_dir=tmp_path / "c",
                    versions=VERSIONS, progress=False, log=lambda m: None)
    out = S.write_outputs(r, tmp_path / "out")
    assert set(out) == {"csv", "json", *PLOTS}
    rows = list(csv.DictReader(out["csv"].open()))
    assert len(rows) == 12 and rows[0]["index"] == "0"
    assert {"status", "reason", "engine_bits", "qu", "lanes", "code_memory_bits",
            "memory_saved_bits", "cycles_lower_bound", "generator_area", "logic_added",
            "overhead", "pareto"} <= set(rows[0])
    ok = [row for row in rows if row["status"] == "ok"]
    assert len(ok) == 8 and any(row["pareto"] == "True" for row in ok)
    assert all(row["pareto"] == "False" for row in rows if row["status"] == "invalid")
    data = json.loads(out["json"].read_text())
    assert data["counts"] == {"points": 12, "cached": 0, "new": 8, "invalid": 4, "failed": 0}
    assert data["space"]["axes"]["qu"] == [3, 6, 17] and len(data["rows"]) == 12
    front = [row for row in data["rows"] if row["pareto"]]
    others = [row for row in data["rows"] if row["status"] == "ok" and not row["pareto"]]
    for o in others:         # every non-front point is dominated by a front point
        assert any(f["memory_saved_bits"] >= o["memory_saved_bits"]
                   and f["logic_added"] <= o["logic_added"] for f in front)
    for name in PLOTS:
        assert out[name] == tmp_path / "out" / "plots" / f"{name}.png"
        assert_png_drawn(out[name])


def test_plots_without_data_still_write_a_readable_png(tmp_path):
    from flows.sweep.plots import draw_plots
    written = draw_plots([{"index": 0, "status": "invalid", "reason": "x"}], tmp_path)
    assert set(written) == set(PLOTS)
    for path in written.values():
        assert_png_drawn(path)


# ---- Dask ----------------------------------------------------------------------------------

def test_dask_local_cluster(tmp_path):
    distributed = pytest.importorskip(
        "distributed", reason="Dask is an optional extra: pip install insitugen[dask]")
    sp = space(SMALL, tmp_path)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        r = S.run_sweep(sp, evaluate=model_evaluate, scheduler=cluster.scheduler_address,
                        cache_dir=tmp_path / "c", versions=VERSIONS, progress=False,
                        log=lambda m: None)
        assert (r.n_new, r.n_failed) == (8, 0)
        r2 = S.run_sweep(sp, evaluate=failing_on_lanes_4, scheduler=cluster,
                         cache_dir=tmp_path / "c2", versions=VERSIONS, progress=False,
                         log=lambda m: None)
        assert (r2.n_new, r2.n_failed) == (4, 4)
    local = S.run_sweep(sp, evaluate=model_evaluate, cache_dir=tmp_path / "c",
                        versions=VERSIONS, progress=False, log=lambda m: None)
    assert local.n_cached == 8              # Dask results land in the same cache
    assert [row["generator_area"] for row in local.rows] == [row["generator_area"]
                                                             for row in r.rows]


def test_scheduler_without_dask_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(ToolError, match=r"pip install insitugen\[dask\]"):
        S.run_sweep(space(SMALL, tmp_path), evaluate=model_evaluate,
                    scheduler="tcp://127.0.0.1:1", cache_dir=tmp_path / "c",
                    versions=VERSIONS, progress=False, log=lambda m: None)


def test_unreachable_scheduler_is_a_tool_error(tmp_path):
    pytest.importorskip("distributed", reason="Dask is an optional extra: "
                                              "pip install insitugen[dask]")
    import dask
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}), \
            pytest.raises(ToolError, match="could not connect to the Dask scheduler"):
        S.run_sweep(space(SMALL, tmp_path), evaluate=model_evaluate,
                    scheduler="tcp://127.0.0.1:9", cache_dir=tmp_path / "c",
                    versions=VERSIONS, progress=False, log=lambda m: None)


# ---- the real evaluation (Yosys) -----------------------------------------------------------

def _cli(argv):
    parser = argparse.ArgumentParser()
    sweep_command.add_args(parser)
    return sweep_command.run(parser.parse_args(argv))


REAL = BASE + """qb = 3
qv = 3
out_bits = 8
[grid]
engine_bits = [2, 4]
qu = [4]
lanes = [2]
[synth]
option_sets = [["-booth", "-arith_tree"]]
"""


def test_real_sweep_small(tmp_path, capsys):
    """Two points through the CLI entry with real Yosys, then a resume from the cache."""
    (tmp_path / "space.toml").write_text(REAL)
    out = tmp_path / "out"
    args = [str(tmp_path / "space.toml"), "--jobs", "2", "--out", str(out), "--no-progress"]
    assert _cli(args) == 0
    text = capsys.readouterr().out
    assert "2 points: 0 cached, 2 new, 0 invalid, 0 failed" in text
    rows = json.loads((out / "results.json").read_text())["rows"]
    for row in rows:
        assert row["status"] == "ok", row["reason"]
        assert row["area_unit"] == "GE (PDK-free)"
        assert 0 < row["engine_area"] < row["generator_area"]
        assert row["logic_added"] == pytest.approx(row["generator_area"] - row["engine_area"])
        assert row["overhead"] == pytest.approx(row["logic_added"] / row["engine_area"],
                                                abs=1e-4)
        assert row["dedicated_area"] > 0 and row["depth"] > 0
        assert row["memory_bits"] >= row["code_memory_bits"]
        assert row["cycles_source"] == "schedule"
        assert row["cycles_per_pass"] >= row["cycles_lower_bound"] > 0
    by_bits = {row["engine_bits"]: row for row in rows}
    # on a 4-bit engine no operand of U (4 bits) / B / V (3 bits) is sliced: fewer steps
    assert by_bits[4]["steps_per_round"] < by_bits[2]["steps_per_round"]
    for name in PLOTS:
        assert_png_drawn(out / "plots" / f"{name}.png")
    assert _cli(args) == 0                    # the resume runs no Yosys: all points cached
    assert "2 points: 2 cached, 0 new, 0 invalid, 0 failed" in capsys.readouterr().out


@pytest.mark.slow
def test_real_example_48_points(tmp_path, capsys):
    """The 48-point example with --jobs 2, then resumed from its cache."""
    out = tmp_path / "out"
    args = [str(EXAMPLE_GRID), "--jobs", "2", "--out", str(out), "--no-progress"]
    t0 = time.perf_counter()
    assert _cli(args) == 0
    cold = time.perf_counter() - t0
    assert "48 points: 0 cached, 48 new, 0 invalid, 0 failed" in capsys.readouterr().out
    t0 = time.perf_counter()
    assert _cli(args) == 0
    warm = time.perf_counter() - t0
    assert "48 points: 48 cached, 0 new" in capsys.readouterr().out
    print(f"48-point example: cold {cold:.1f} s, cached {warm:.1f} s")
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 48 and all(row["status"] == "ok" for row in rows)
    for name in PLOTS:
        assert_png_drawn(out / "plots" / f"{name}.png")
