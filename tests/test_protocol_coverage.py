# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the stream protocol monitors (verif.protocol) and the coverage
bins / merge / report logic (verif.coverage).

The Verilog monitor is run for real: a tiny Amaranth producer, emitted to
Verilog, wrapped in the runner's testbench top (which puts a monitor on its
stream), on Verilator through cocotb. The producer misbehaves on purpose when
its ``mode`` input says so (mode 1: drops valid every 8th cycle whatever ready
says; mode 2: changes the payload every 8th cycle even while stalled). The
cocotb tests of this module (``protocol_*``, not collected by pytest) sample the
stream every clock into the Python rules (``StreamRules``) as well and require
the two implementations to agree counter by counter.
"""

from __future__ import annotations

import json
from pathlib import Path

import cocotb
import pytest

from verif import coverage as cov
from verif import protocol

LAST_BIT = 8           # payload = {data[7:0], last}: last is bit 8
READY_PATTERN = "1101" + "0" * 10 + "11" + "0" * 3 + "1" * 5 + "0110"
#: counters that do not depend on where the Python side starts counting edges
COMPARED = tuple(c for c in protocol.COUNTERS if c not in ("cycles", "first_violation"))


# ---- the design -------------------------------------------------------------------------

def _producer_verilog() -> str:
    from amaranth.hdl import Module, Signal
    from amaranth.lib import data, stream, wiring
    from amaranth.lib.wiring import In, Out

    class Producer(wiring.Component):
        """Counts 0, 1, 2 ... on ``o``; ``last`` on every 8th value; ``mode`` misbehaves."""

        def __init__(self):
            layout = data.StructLayout({"data": 8, "last": 1})
            super().__init__({"o": Out(stream.Signature(layout)), "mode": In(2)})

        def elaborate(self, platform):
            m = Module()
            count = Signal(8)
            tick = Signal(3)
            m.d.sync += tick.eq(tick + 1)
            m.d.comb += [self.o.payload.data.eq(count), self.o.payload.last.eq(count[:3] == 7),
                         self.o.valid.eq(1)]
            with m.If((self.mode == 1) & (tick == 5)):
                m.d.comb += self.o.valid.eq(0)                     # drops valid mid-stall
            with m.If((self.mode == 2) & (tick == 5)):
                m.d.comb += self.o.payload.data.eq(count ^ 0x80)   # payload moves mid-stall
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += count.eq(count + 1)
            return m

    from gen.verilog import amaranth_verilog

    return amaranth_verilog(Producer(), "producer")


# ---- cocotb side (runs inside the simulator) ---------------------------------------------

async def _run_producer(dut, mode, reset_at=None):
    """Drive the ready pattern three times; return (Verilog counters, Python rules).

    The tests share one simulation, so the Verilog counters are returned as the
    difference to their values at the start (``longest_stall`` as this run's, and
    ``first_violation`` relative to the start; 0 when none). The Python rules see
    the values of each edge in the read-only phase before it. ``reset_at``: pattern
    index where reset is pulsed for 2 edges."""
    from cocotb.triggers import ReadOnly, RisingEdge, Timer

    rules = protocol.StreamRules("o", last_of=lambda p: (p >> LAST_BIT) & 1)
    dut.mode.value = mode
    dut.o__ready.value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await ReadOnly()
    base = protocol.read_monitor(dut, "o")
    for k, bit in enumerate([None, *(READY_PATTERN * 3)]):
        if bit is not None:                       # k = 0: the edge right after reading base
            await RisingEdge(dut.clk)
            dut.o__ready.value = int(bit)
            if reset_at is not None:
                dut.rst.value = int(reset_at <= k < reset_at + 2)
            await ReadOnly()
        rules.step(dut.o__valid.value == 1, dut.o__ready.value == 1,
                   dut.o__payload.value.to_unsigned(), reset=dut.rst.value == 1)
    await RisingEdge(dut.clk)
    await ReadOnly()                              # the last edge's counts are in
    now = protocol.read_monitor(dut, "o")
    await Timer(1, unit="ns")                     # leave the read-only phase
    counts = {c: now[c] - base[c] for c in protocol.COUNTERS}
    counts["first_violation"] = max(0, now["first_violation"] - base["cycles"]) \
        if not base["first_violation"] else (now["first_violation"] != base["first_violation"])
    counts["longest_stall"] = rules.counts["longest_stall"] \
        if now["longest_stall"] == max(base["longest_stall"], rules.counts["longest_stall"]) \
        else -1
    mismatch = {c: (counts[c], rules.counts[c]) for c in COMPARED if counts[c] != rules.counts[c]}
    assert not mismatch, f"Verilog monitor and StreamRules disagree: {mismatch}"
    return counts, rules


def _raises(fn, *words):
    try:
        fn()
    except protocol.ProtocolError as e:
        for w in words:
            assert w in str(e), (w, str(e))
        return
    raise AssertionError(f"no ProtocolError mentioning {words}")


@cocotb.test()
async def protocol_good_producer_passes(dut):
    counts, rules = await _run_producer(dut, 0)
    hs = READY_PATTERN.count("1") * 3
    protocol.check_counts("o", counts, expected_last=hs // 8, expected_handshakes=hs)
    rules.check(expected_last=hs // 8, expected_handshakes=hs)
    assert counts["longest_stall"] == 10 and counts["long_stalls"] == 3
    assert counts["first_violation"] == 0
    assert counts["stalled_first"] >= 1 and counts["stalled_middle"] >= 1
    assert counts["beats_no_stall"] + counts["stalled_first"] + counts["stalled_middle"] + \
        counts["stalled_last"] == hs
    _raises(lambda: protocol.check_counts("o", counts, expected_last=hs // 8 + 1),
            "beat(s) with last", "one per pass")
    _raises(lambda: protocol.check_counts("o", counts, expected_handshakes=hs - 1),
            "handshake(s)")


@cocotb.test()
async def protocol_valid_drop_is_caught(dut):
    counts, _ = await _run_producer(dut, 1)
    assert counts["valid_drops"] > 0 and counts["payload_changes"] == 0
    assert counts["first_violation"] > 0
    _raises(lambda: protocol.check_counts("o", counts), "valid fell", "first at edge")


@cocotb.test()
async def protocol_payload_change_is_caught(dut):
    counts, _ = await _run_producer(dut, 2)
    assert counts["payload_changes"] > 0 and counts["valid_drops"] == 0
    _raises(lambda: protocol.check_counts("o", counts), "payload changed")


@cocotb.test()
async def protocol_reset_during_a_stall_is_not_a_violation(dut):
    # edges 4..13 of the pattern are a 10-edge stall: reset in its middle, with the
    # misbehaving mode off, must clear the stall state and report nothing
    counts, rules = await _run_producer(dut, 0, reset_at=7)
    protocol.check_counts("o", counts)
    # the first repetition's 10-edge stall was cut by the reset: only the other two are long
    assert counts["long_stalls"] == 2


# ---- pytest side ---------------------------------------------------------------------------

def test_protocol_monitor_on_verilator(tmp_path, monkeypatch):
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    from verif.build import TIMESCALE, build_verilator
    from verif.tb_top import TB_TOP, tb_top_verilog

    # The runner hands sys.path to the simulator as PYTHONPATH: make this module importable.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent))
    verilog = _producer_verilog()
    src = tmp_path / "producer.v"
    src.write_text(verilog)
    top = tmp_path / "tb_top.v"
    top.write_text(tb_top_verilog(verilog, "producer", {"o": LAST_BIT}))
    build_verilator([src, top], TB_TOP, tmp_path / "build", log=tmp_path / "build.log")
    results = get_runner("verilator").test(
        hdl_toplevel=TB_TOP, hdl_toplevel_lang="verilog", test_module=Path(__file__).stem,
        build_dir=tmp_path / "build",
        test_dir=tmp_path / "build", seed=1, timescale=TIMESCALE)
    total, failed = get_results(results)
    assert total == 4 and failed == 0


def test_tb_top_puts_a_monitor_on_every_stream():
    from gen.verilog import emit_verilog, top_name
    from insitugen.config import GeneratorConfig, RecombinationConfig
    from verif.tb_top import stream_last_bits, tb_top_verilog

    for cfg, streams in ((RecombinationConfig(), ("i", "o")),
                         (GeneratorConfig(out_channels=2, in_channels=2, kernel=1, base_in=1,
                                          base_out=1, lanes=2), ("codes", "weights"))):
        text = tb_top_verilog(emit_verilog(cfg), top_name(cfg), stream_last_bits(cfg))
        for s in streams:
            for c in protocol.COUNTERS:
                assert f"reg [31:0] {protocol.monitor_signal(s, c)} " in text
        if cfg.BLOCK == "generator":
            bit = stream_last_bits(cfg)["weights"]
            assert f"mon_weights_last = weights__payload[{bit}];" in text
            assert "mon_codes_last = 1'b0;" in text


def test_stream_rules_unit():
    r = protocol.StreamRules("s", last_of=lambda p: p == 9)
    trace = [(1, 0, 5), (1, 0, 5), (1, 1, 5),      # beat 0 stalls 2 edges (first of a pass)
             (1, 1, 6), (0, 0, 0), (1, 0, 9),      # beat 1 clean; beat 2 (last) stalls 1
             (1, 1, 9), (1, 0, 3), (0, 0, 3)]      # beat 3 stalls, then valid drops
    for v, rd, p in trace:
        r.step(v, rd, p)
    c = r.counts
    assert (c["handshakes"], c["lasts"], c["beats_no_stall"]) == (3, 1, 1)
    assert (c["stalled_first"], c["stalled_last"], c["stalled_middle"]) == (1, 1, 0)
    assert (c["valid_drops"], c["first_violation"], c["longest_stall"]) == (1, 9, 2)
    r2 = protocol.StreamRules("s")
    for v, rd, p in [(1, 0, 1), (1, 0, 2), (1, 1, 2)]:
        r2.step(v, rd, p)
    # compared with the payload the stall began with: both later edges differ
    assert r2.counts["payload_changes"] == 2
    r3 = protocol.StreamRules("s")
    for v, rd, p, rst in [(1, 0, 1, 0), (0, 0, 0, 1), (0, 0, 0, 0)]:
        r3.step(v, rd, p, reset=rst)
    r3.check()                                      # valid fell in reset: allowed
    assert protocol.stream_prefixes(["clk", "a__valid", "a__ready", "a__payload",
                                     "b__valid", "b__payload"]) == ["a"]


# ---- coverage ----------------------------------------------------------------------------

def test_slice_bins_counted_from_constructed_configs():
    """The slice-count bins, counted from configs built here (not from the bin list): on a
    2-bit engine, a_bits = x_bits = 1..9 in both encodings give 1..5 slices per operand.
    Every (slices, encoding) pair from 1 to 4 slices must land in its own bin; 5 slices
    fall in no bin; no bin is left over."""
    from insitugen.config import RecombinationConfig

    session = cov.CoverageSession()
    built = {"a_slices": [], "x_slices": []}
    for encoding in ("odd", "twos"):
        for bits in range(1, 10):
            cfg = RecombinationConfig(engine_bits=2, a_bits=bits, a_encoding=encoding,
                                      x_bits=bits, x_encoding=encoding)
            built["a_slices"].append((cfg.a.count, encoding))
            built["x_slices"].append((cfg.x.count, encoding))
            cov.sample_recombination_config(cfg)
    delta = session.snapshot_delta()
    for point, pairs in built.items():
        bins = delta[f"insitugen.recombination.{point}"]["bins"]
        reachable = {p for p in pairs if p[0] <= 4}
        assert len(reachable) == 8 and (5, "odd") in pairs        # the sample is what we think
        hits = {b: h for b, h in bins.items() if h}
        assert len(hits) == len(bins) == len(reachable), (point, bins)
        assert sum(hits.values()) == sum(1 for p in pairs if p[0] <= 4)
        for n, encoding in reachable:
            assert hits[f"{n}x{encoding}"] == pairs.count((n, encoding))
    assert sum(delta["insitugen.recombination.mode"]["bins"].values()) == len(built["a_slices"])


def test_bins_follow_the_config_domain():
    """The bins are derived from the config's own domain, so a new rounding mode,
    encoding or mode of the config cannot go uncovered silently."""
    from insitugen.config import MODES, ROUNDINGS
    from insitugen.widths import ENCODINGS

    names = set(cov.point_names())
    assert {f"insitugen.requant.{r}" for r in ROUNDINGS} <= names
    assert set(cov.point_bins("insitugen.recombination.mode")) == set(MODES)
    for op in ("a", "x"):
        bins = cov.point_bins(f"insitugen.recombination.{op}_slices")
        assert {b.split("x", 1)[1] for b in bins} == set(ENCODINGS)
    # every protocol counter the back-pressure bins read exists in the monitor
    monitor = {c: 0 for c in protocol.COUNTERS}
    cov.sample_stream(monitor)                     # raises KeyError on a missing counter


def test_sampling_and_session_delta(tmp_path):
    import numpy as np

    from insitugen.config import RecombinationConfig

    session = cov.CoverageSession()
    cov.sample_recombination_config(RecombinationConfig(a_bits=6, x_bits=7, x_encoding="twos",
                                                        mode="serial"))
    # half_even, shift 2: 2 = 0b10 is a tie with even quotient (0), 6 = 0b110 a tie with
    # odd quotient (1), -2 a negative tie; 400 >> 2 = 100 saturates high in 6 bits.
    cov.sample_requant(np.array([2, 6, -2, 400, 1]), shift=2, rounding="half_even",
                       out_bits=6)
    cov.sample_codes("U", np.array([0, 5, 63]), bits=6)
    monitor = {c: 0 for c in protocol.COUNTERS}
    monitor.update(beats_no_stall=4, stalled_middle=2, stalled_last=1, long_stalls=1)
    cov.sample_stream(monitor)
    cov.sample_generator_event("reload_while_idle")
    path = tmp_path / "cov" / "t1.json"
    data = session.write(path, test="t1")
    on_disk = json.loads(path.read_text())
    assert on_disk == data and on_disk["format"] == cov.FORMAT
    pts = on_disk["points"]
    assert pts["insitugen.recombination.a_slices"]["bins"]["2xodd"] == 1
    assert pts["insitugen.recombination.x_slices"]["bins"]["3xtwos"] == 1
    assert pts["insitugen.recombination.mode"]["bins"]["serial"] == 1
    he = pts["insitugen.requant.half_even"]["bins"]
    assert he["tie_pos"] == 1 and he["tie_neg"] == 1
    assert he["tie_to_even_down"] == 1 and he["tie_to_even_up"] == 1
    assert pts["insitugen.requant.saturation"]["bins"] == {"high": 1, "low": 0, "in_range": 1}
    assert pts["insitugen.codes.U"]["bins"] == {"zero": 1, "max": 1}
    bp = pts["insitugen.backpressure"]["bins"]
    assert bp == {"no_stall": 1, "stall_first_beat": 0, "stall_middle_beat": 1,
                  "stall_last_beat": 1, "long_stall_8plus": 1}
    assert pts["insitugen.generator.events"]["bins"]["reload_while_idle"] == 1
    # A second session sees only its own samples.
    again = cov.CoverageSession()
    cov.sample_stream({**monitor, "stalled_first": 1, "beats_no_stall": 0})
    d2 = again.snapshot_delta()
    assert d2["insitugen.backpressure"]["bins"]["stall_first_beat"] == 1
    assert d2["insitugen.backpressure"]["bins"]["stall_last_beat"] == 1
    assert d2["insitugen.backpressure"]["bins"]["no_stall"] == 0
    assert d2["insitugen.codes.U"]["bins"]["zero"] == 0


def _cov_file(tmp_path, name, hits: dict[str, dict[str, int]]):
    points = {p: {"bins": dict(b), "at_least": 1} for p, b in hits.items()}
    data = {"format": cov.FORMAT, "test": name, "points": points}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def test_merge_sums_hits_and_lists_missing(tmp_path):
    a = _cov_file(tmp_path, "a", {"p.x": {"b1": 2, "b2": 0}, "p.y": {"c": 0}})
    b = _cov_file(tmp_path, "b", {"p.x": {"b1": 1, "b2": 0, "b3": 4}})
    merged = cov.merge_files([a, b])
    assert merged["tests"] == ["a", "b"]
    assert merged["points"]["p.x"]["bins"] == {"b1": 3, "b2": 0, "b3": 4}
    assert merged["points"]["p.y"]["bins"] == {"c": 0}
    assert cov.missing_bins(merged) == {"p.x": ["b2"], "p.y": ["c"]}
    assert merged["covered_bins"] == 2 and merged["total_bins"] == 4
    text = cov.format_summary(merged)
    assert "p.x" in text and "b2" in text and "MISSING" in text and "2/4" in text


def test_report_writer_and_bad_files(tmp_path):
    from insitugen.errors import InsitugenError

    a = _cov_file(tmp_path, "a", {"p.x": {"b1": 1}})
    out = tmp_path / "report" / "coverage.json"
    merged = cov.write_report([a], out, text_path=tmp_path / "report" / "coverage.txt")
    assert json.loads(out.read_text()) == merged
    assert "100.0%" in (tmp_path / "report" / "coverage.txt").read_text()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InsitugenError, match="bad.json"):
        cov.merge_files([bad])
    with pytest.raises(InsitugenError, match="missing.json"):
        cov.merge_files([tmp_path / "missing.json"])
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something-else", "points": {}}))
    with pytest.raises(InsitugenError, match="format"):
        cov.merge_files([other])


def test_sim_cli_reports_protocol_and_coverage(tmp_path, capsys):
    """``insitugen sim --coverage DIR``: protocol counts printed, the run's coverage file
    written under DIR/parts and merged into DIR/functional_coverage.txt."""
    from flows.cli import main

    cfg = Path(__file__).resolve().parent.parent / "examples" / "recombination" / \
        "odd6x6_parallel.toml"
    out = tmp_path / "cov"
    for seed in (3, 4):
        assert main(["sim", str(cfg), "--seed", str(seed), "--backpressure", "periodic",
                     "--coverage", str(out)]) == 0
    text = capsys.readouterr().out
    assert "protocol: stream 'o': 274 handshakes" in text and "0 violations" in text
    assert "functional coverage of the 2 run(s)" in text
    assert len(list((out / "parts").glob("*.json"))) == 2
    merged = json.loads((out / "functional_coverage.json").read_text())
    bins = merged["points"]["insitugen.recombination.mode"]["bins"]
    assert bins == {"parallel": 2, "serial": 0}
    assert "MISSING" in (out / "functional_coverage.txt").read_text()   # serial never ran
