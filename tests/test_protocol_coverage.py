"""Unit tests of the stream protocol checker (verif.protocol) and the coverage
bins / merge / report logic (verif.coverage).

The checker is run for real: a tiny Amaranth producer, emitted to Verilog, on
Verilator through cocotb_tools.runner. The producer misbehaves on purpose when
its ``mode`` input says so (mode 1: drops valid every 8th cycle whatever ready
says; mode 2: changes the payload every 8th cycle even while stalled). The
cocotb tests of this module (``protocol_*``, not collected by pytest) are the
runner's test module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import cocotb

from insitugen.verif import coverage as cov

LAST_BIT = 8           # payload = {data[7:0], last}: last is bit 8
READY_PATTERN = "1101" + "0" * 10 + "11" + "0" * 3 + "1" * 5 + "0110"


# ---- the design -------------------------------------------------------------------------

def _producer_verilog() -> str:
    from amaranth.back import verilog
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

    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    return verilog.convert(Producer(), name="producer", emit_src=False)


# ---- cocotb side (runs inside the simulator) ---------------------------------------------

async def _run_producer(dut, mode, **checker_kw):
    from cocotb.clock import Clock
    from cocotb.triggers import RisingEdge

    from insitugen.verif.protocol import StreamProtocolChecker

    beats = []
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.mode.value = mode
    dut.o__ready.value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    checker = StreamProtocolChecker(dut, "o", dut.clk, last_field=LAST_BIT,
                                    on_beat=lambda i, stall, last: beats.append((i, stall, last)),
                                    **checker_kw)
    checker.start()
    dut.rst.value = 0
    for bit in READY_PATTERN * 3:
        dut.o__ready.value = int(bit)
        await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    checker.stop()
    return checker, beats


@cocotb.test()
async def protocol_good_producer_passes(dut):
    checker, beats = await _run_producer(dut, 0)
    checker.check()                                  # no violation
    assert checker.handshakes == READY_PATTERN.count("1") * 3
    assert checker.count_last() == checker.handshakes // 8
    checker.check(expected_last=checker.handshakes // 8, expected_handshakes=checker.handshakes)
    try:
        checker.check(expected_last=checker.count_last() + 1)
    except AssertionError as e:
        assert "last_count" in str(e)
    else:
        raise AssertionError("a wrong expected_last was not reported")
    assert [b[0] for b in beats] == list(range(checker.handshakes))
    assert max(b[1] for b in beats) == 10            # the 10-cycle stall of the pattern
    assert checker.longest_stall == 10
    assert checker.summary()["violations"] == []


@cocotb.test()
async def protocol_valid_drop_is_caught(dut):
    checker, _ = await _run_producer(dut, 1)
    rules = {v.rule for v in checker.violations}
    assert rules == {"valid_drop"}, checker.violations
    assert all(v.cycle > 0 for v in checker.violations)
    try:
        checker.check()
    except AssertionError as e:
        assert "valid_drop" in str(e) and "cycle " in str(e)
    else:
        raise AssertionError("check() passed a dropped valid")


@cocotb.test()
async def protocol_payload_change_is_caught(dut):
    checker, _ = await _run_producer(dut, 2)
    assert {v.rule for v in checker.violations} == {"payload_change"}, checker.violations


@cocotb.test()
async def protocol_disabled_checker_watches_nothing(dut):
    checker, _ = await _run_producer(dut, 1, enabled=False)
    assert not checker.enabled and checker.cycles == 0
    checker.check()                                  # off: nothing to report


# ---- pytest side ---------------------------------------------------------------------------

def test_protocol_checker_on_verilator(tmp_path, monkeypatch):
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    from insitugen.gen.verilog import LINT_WAIVERS, verilator_env

    monkeypatch.setenv("PATH", verilator_env()["PATH"])
    # The runner hands sys.path to the simulator as PYTHONPATH: make this module importable.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent))
    src = tmp_path / "producer.v"
    src.write_text(_producer_verilog())
    runner = get_runner("verilator")
    runner.build(sources=[src], hdl_toplevel="producer", build_dir=tmp_path / "build",
                 build_args=list(LINT_WAIVERS), always=True)
    results = runner.test(hdl_toplevel="producer", test_module=Path(__file__).stem,
                          build_dir=tmp_path / "build", test_dir=tmp_path / "build", seed=1)
    total, failed = get_results(results)
    assert total == 4 and failed == 0


# ---- coverage ----------------------------------------------------------------------------

def test_bins_defined_for_issue_6():
    names = cov.point_names()
    for want in ("insitugen.recombination.a_slices", "insitugen.recombination.x_slices",
                 "insitugen.requant.floor", "insitugen.requant.half_up",
                 "insitugen.requant.half_even", "insitugen.requant.saturation",
                 "insitugen.codes.B", "insitugen.codes.U", "insitugen.codes.V",
                 "insitugen.backpressure", "insitugen.generator.events"):
        assert want in names
    bins = cov.point_bins("insitugen.recombination.a_slices")
    assert set(bins) == {f"{n}x{e}" for n in range(1, 5) for e in ("odd", "twos")}


def test_sampling_and_session_delta(tmp_path):
    from insitugen.config import RecombinationConfig
    import numpy as np

    session = cov.CoverageSession()
    cov.sample_recombination_config(RecombinationConfig(a_bits=6, x_bits=7, x_encoding="twos",
                                                        mode="serial"))
    # half_even, shift 2: 2 = 0b10 is a tie with even quotient (0), 6 = 0b110 a tie with
    # odd quotient (1), -2 a negative tie; 400 >> 2 = 100 saturates high in 6 bits.
    cov.sample_requant(np.array([2, 6, -2, 400, 1]), shift=2, rounding="half_even",
                       out_bits=6)
    cov.sample_codes("U", np.array([0, 5, 63]), bits=6)
    for idx, (stall, last) in enumerate([(0, False), (3, False), (9, True)]):
        cov.sample_beat(idx, stall, last)
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
    assert bp["no_stall"] == 1 and bp["stall_first_beat"] == 0
    assert bp["stall_last_beat"] == 1 and bp["long_stall_8plus"] == 1
    assert pts["insitugen.generator.events"]["bins"]["reload_while_idle"] == 1
    # A second session sees only its own samples.
    again = cov.CoverageSession()
    cov.sample_beat(0, 2, True)
    d2 = again.snapshot_delta()
    assert d2["insitugen.backpressure"]["bins"]["stall_first_beat"] == 1
    assert d2["insitugen.backpressure"]["bins"]["stall_last_beat"] == 1
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
