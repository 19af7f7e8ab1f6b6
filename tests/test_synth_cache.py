# SPDX-License-Identifier: Apache-2.0
"""The synthesis cache (``synth.yosys.synthesize_many(cache_dir=...)``, ``run_synth(cache=)``):
a hit gives exactly the result Yosys gave, anything that changes the run misses, and a
half-written or corrupt entry is never read as a result."""

from __future__ import annotations

import json

import pytest

from insitugen.config import RecombinationConfig
from synth import yosys as Y
from synth.report import SYNTH_CACHE_ENV, run_synth, synthesis_cache_dir

MAC = ("module t(input clk, input [3:0] a, input [3:0] b, output reg [7:0] q);\n"
       "  always @(posedge clk) q <= q + a * b;\n"
       "endmodule\n")


def _same(a: Y.SynthRun, b: Y.SynthRun) -> None:
    assert (a.cells, a.num_cells, a.depth, a.memories, a.nand2_eq, a.area_um2) == \
        (b.cells, b.num_cells, b.depth, b.memories, b.nand2_eq, b.area_um2)


def _entries(cache):
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


def test_a_hit_gives_what_yosys_gave(tmp_path):
    cache = tmp_path / "cache"
    first = Y.synthesize_many([("mac", MAC, "t")], tmp_path / "w1", cache_dir=cache)["mac"]
    assert not first.cached and len(_entries(cache)) == 1
    again = Y.synthesize_many([("mac", MAC, "t")], tmp_path / "w2", cache_dir=cache)["mac"]
    assert again.cached
    _same(first, again)
    assert again.seconds == pytest.approx(first.seconds, abs=1e-3)   # the making run's
    assert not (tmp_path / "w2" / "yosys.log").exists()              # Yosys did not run
    uncached = Y.synthesize_many([("mac", MAC, "t")], tmp_path / "w3")["mac"]
    assert not uncached.cached
    _same(first, uncached)


def test_liberty_hit_keeps_the_netlist_for_timing(tmp_path, tiny_liberty_path):
    from synth.liberty import read_liberty
    from synth.timing import critical_path
    lib = read_liberty(tiny_liberty_path)
    kw = {"liberty": tiny_liberty_path, "sequential_cells": lib.sequential_cells,
          "cache_dir": tmp_path / "cache"}
    first = Y.synthesize_many([("mac", MAC, "t")], tmp_path / "w1", **kw)["mac"]
    again = Y.synthesize_many([("mac", MAC, "t")], tmp_path / "w2", **kw)["mac"]
    assert again.cached and not first.cached
    _same(first, again)
    assert critical_path(again.netlist(), "t", lib) == critical_path(first.netlist(), "t", lib)


@pytest.mark.parametrize("change", ["verilog", "options", "top name", "liberty"])
def test_anything_that_changes_the_run_misses(tmp_path, change, tiny_liberty_path):
    base = {"designs": [("mac", MAC, "t")], "options": ("-booth", "-arith_tree"),
            "liberty": None}
    key0 = Y.synthesis_cache_key(base["designs"], Y.build_script("t", prefix="mac."),
                                 liberty=None, yosys=None)
    if change == "verilog":
        designs = [("mac", MAC.replace("a * b", "a * b + 1"), "t")]
        key = Y.synthesis_cache_key(designs, Y.build_script("t", prefix="mac."),
                                    liberty=None, yosys=None)
    elif change == "options":
        key = Y.synthesis_cache_key(base["designs"],
                                    Y.build_script("t", options=("-booth",), prefix="mac."),
                                    liberty=None, yosys=None)
    elif change == "top name":
        key = Y.synthesis_cache_key([("mac2", MAC, "t")], Y.build_script("t", prefix="mac2."),
                                    liberty=None, yosys=None)
    else:
        key = Y.synthesis_cache_key(base["designs"], Y.build_script("t", prefix="mac."),
                                    liberty=tiny_liberty_path, yosys=None)
    assert key != key0
    # and the same inputs give the same key
    assert key0 == Y.synthesis_cache_key(base["designs"], Y.build_script("t", prefix="mac."),
                                         liberty=None, yosys=None)


def test_edited_liberty_misses(tmp_path, tiny_liberty_path):
    lib2 = tmp_path / "edited.lib"
    lib2.write_text(tiny_liberty_path.read_text() + "\n/* edited */\n")
    lib3 = tmp_path / "same.lib"
    lib3.write_text(tiny_liberty_path.read_text())
    script = Y.build_script("t", liberty=True, prefix="mac.")
    keys = [Y.synthesis_cache_key([("mac", MAC, "t")], script, liberty=p, yosys=None)
            for p in (tiny_liberty_path, lib2, lib3)]
    assert keys[0] != keys[1] and keys[0] == keys[2]      # the bytes count, not the name


@pytest.mark.parametrize("damage", ["meta missing", "meta garbage", "old format", "stat missing"])
def test_a_broken_entry_runs_yosys_again(tmp_path, damage):
    cache = tmp_path / "cache"
    first = Y.synthesize_many([("mac", MAC, "t")], tmp_path / "w1", cache_dir=cache)["mac"]
    entry = cache / _entries(cache)[0]
    if damage == "meta missing":
        (entry / "meta.json").unlink()
    elif damage == "meta garbage":
        (entry / "meta.json").write_text("{not json")
    elif damage == "old format":
        (entry / "meta.json").write_text(json.dumps({"format": 0, "seconds": 1.0}))
    else:
        (entry / "mac.stat.json").unlink()
    again = Y.synthesize_many([("mac", MAC, "t")], tmp_path / "w2", cache_dir=cache)["mac"]
    assert not again.cached
    assert (tmp_path / "w2" / "yosys.log").is_file()
    _same(first, again)


def test_cache_switch(monkeypatch, tmp_path):
    monkeypatch.setenv("INSITUGEN_CACHE", str(tmp_path))
    monkeypatch.delenv(SYNTH_CACHE_ENV, raising=False)
    assert synthesis_cache_dir() == tmp_path / "synth"
    assert synthesis_cache_dir(False) is None
    for off in ("0", "off", "No", "false"):
        monkeypatch.setenv(SYNTH_CACHE_ENV, off)
        assert synthesis_cache_dir() is None
        assert synthesis_cache_dir(True) == tmp_path / "synth"     # an explicit yes wins
    monkeypatch.setenv(SYNTH_CACHE_ENV, "1")
    assert synthesis_cache_dir() == tmp_path / "synth"


def test_report_from_the_cache_equals_the_report_from_yosys(monkeypatch, tmp_path):
    """A whole report twice: the second takes every design from the cache and differs
    from the first only in its ``seconds`` and ``cached`` fields."""
    from synth.render import cached_phrase, report_markdown
    monkeypatch.setenv("INSITUGEN_CACHE", str(tmp_path))
    cfg = RecombinationConfig(engine_bits=2, a_bits=3, x_bits=5, terms=3)
    first = run_synth(cfg, cache=True)
    second = run_synth(cfg, cache=True)
    off = run_synth(cfg, cache=False)

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("seconds", "cached")}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    assert strip(first) == strip(second) == strip(off)
    assert not any(d["pdk_free"]["cached"] for d in first["designs"].values())
    assert all(d["pdk_free"]["cached"] for d in second["designs"].values())
    assert not any(d["pdk_free"]["cached"] for d in off["designs"].values())
    n = len(second["designs"])
    assert cached_phrase(first) == "" and f"{n} of {n} designs" in cached_phrase(second)
    assert "from the synthesis cache" in report_markdown(second)
