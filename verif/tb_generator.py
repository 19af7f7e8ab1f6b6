# SPDX-License-Identifier: Apache-2.0
"""cocotb testbench of the emitted Generator Verilog (a whole MLG layer, bit-exact).

Parameters come from the JSON file named by ``$INSITUGEN_PARAMS`` (written by
:func:`verif.runner.run_sim`):

* ``config``, ``seed``, ``result_path``, ``clock_period_ns``;
* ``backpressure``: ``none | periodic | random`` -- the output ``ready``
  pattern and the gaps between input code beats (seeded from
  ``cocotb.RANDOM_SEED``, which cocotb derives from the run seed);
* ``stimulus``: an ``.npz`` the runner wrote with the torch golden model
  (:func:`verif.stimulus.write_stimulus`): ``codes`` (the load stream:
  B, U, V row-major; from ``params["codes"]`` or ``random_codes(cfg, seed)``),
  ``expected`` (``golden.generate.generate`` of them, flat oihw) and, with
  ``reload``, ``codes_reload`` / ``expected_reload`` (``random_codes(cfg, seed+1)``);
* ``tb``: the design's figures (``lanes``, ``beat`` (weights per output beat),
  ``weight_bits``, ``row_weights``, ``weight_shape``, ``output_order``, ``n_beats``,
  ``row_beats``, ``rounds_per_row``, ``steps_per_round``, ``cycles_per_pass``,
  ``longest_beat_gap``, ``latency``, ``pass_cycles``, ``pass_period``,
  ``cycles_lower_bound``);
* ``out`` (optional): a ``.npz`` to write ``W`` (int64, ``weight_shape``, the
  RTL's weights of the first pass) and ``cycles``;
* ``passes`` (default 2): regenerations of the loaded layer without reloading;
  pass 2 is requested while pass 1 runs (``start`` held two cycles) and must
  follow it without a bubble; later passes are requested at the previous
  pass's last beat;
* ``reload`` (default false): then load the second layer and check one pass;
* ``reset_during`` (default false): first assert reset in the middle of a load
  and in the middle of a pass (with a beat stalled), check the design comes
  out idle and unloaded, then run the normal load and passes (which must be
  bit-exact: a correct pass after the resets).

This module imports only numpy and cocotb (no torch, no golden model; the
numpy-only :mod:`insitugen.order` maps the stream's order back to oihw), so the
simulator's embedded Python starts fast.

Structure: code driver (seeded valid gaps) -> DUT -> output monitor (seeded
ready pattern) -> scoreboard: every beat's ``count``, ``last`` exactly at the
final beat of each pass, unused lanes 0, and the concatenated weights of each
pass compared in bulk (numpy) with the expected weights; nothing may arrive
after the last pass. The protocol monitors in the testbench top
(:mod:`verif.protocol`, Verilog, every clock) watch both streams; at
the end their counters must show no broken rule, exactly one ``last`` per pass
and every beat and code accounted for.

Valid gaps and ready patterns are those of :mod:`verif.backpressure` (random
ready: runs of 1-6 ready cycles, stalls of 1-5 cycles, one stall in ten lasting
8-20 cycles, the ``long_stall_8plus`` coverage bin).

The clock runs inside the simulation (the runner's testbench top), so idle
cycles cost Python nothing: the output monitor sleeps on ``valid`` rising and
works per cycle only while ``valid`` is high, when it steps the ready pattern
(``ready`` matters only then; while ``valid`` is low it holds its last level).
It samples in the read-only phase before each rising edge, so a beat is
recorded exactly when ``valid & ready`` there.

``result.json``: beats, cycles (start-sampling edge to the last beat's
handshake of pass 1), cycles of each pass, the design's ``pass_cycles``,
``cycles_lower_bound``, efficiency, ``cycles_no_backpressure`` (measured when
back-pressure is ``none``), wall times, ``protocol`` (every stream's monitor
counters) and ``events`` (the generator coverage events completed and checked).
"""

from __future__ import annotations

import json
import time

import cocotb
import numpy as np
from cocotb.triggers import Event, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from insitugen.files import atomic_write_text, save_npz
from insitugen.order import beat_counts, from_stream
from verif.backpressure import generators, ready_levels, valid_levels
from verif.protocol import check_counts, monitor_signal, read_monitor
from verif.tb_params import load_params


def decode_beats(tb: dict, payloads: list[int]):
    """Packed payload ints -> (w [beats, b] int64, count [beats], last [beats]); ``b`` =
    ``tb["beat"]`` weights per beat."""
    L, wb = int(tb["beat"]), int(tb["weight_bits"])
    last_bit = int(tb["last_bit"])                 # count sits between the lanes and last
    cw = last_bit - L * wb
    total = last_bit + 1
    nbytes = (total + 7) // 8
    if not payloads:
        return (np.zeros((0, L), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    raw = b"".join(p.to_bytes(nbytes, "little") for p in payloads)
    bits = np.unpackbits(np.frombuffer(raw, np.uint8).reshape(len(payloads), nbytes),
                         axis=1, bitorder="little")[:, :total].astype(np.int64)
    lanes = bits[:, :L * wb].reshape(len(payloads), L, wb)
    weights = (1 << np.arange(wb, dtype=np.int64)).copy()
    weights[-1] = -weights[-1]                     # two's complement sign bit
    w = lanes @ weights
    count = bits[:, L * wb:L * wb + cw] @ (1 << np.arange(cw, dtype=np.int64))
    last = bits[:, last_bit]
    return w, count, last


def check_beats(tb: dict, payloads: list[int], expected: np.ndarray, label: str,
                seed: int) -> np.ndarray:
    """Scoreboard of one pass: beat count, ``count`` and ``last`` of every beat, unused
    lanes 0, and every weight equal to ``expected`` (flat oihw; the stream's order,
    ``tb["output_order"]``, is mapped back to oihw by :mod:`insitugen.order`); returns ``W``
    (weight_shape, oihw whatever the hardware order)."""
    w, count, last = decode_beats(tb, payloads)
    nb, b = int(tb["n_beats"]), int(tb["beat"])
    assert len(w) == nb, f"{label}: {len(w)} beats, expected {nb} (seed {seed})"
    N, order = int(tb["row_weights"]), tb.get("output_order", "oihw")
    p = int(tb["weight_shape"][0])
    exp_count = beat_counts(order, p, N, b)     # b weights, a row's (tile's) last the rest
    bad = np.nonzero(count != exp_count)[0]
    assert not len(bad), (f"{label}: beat {bad[0]} has count {count[bad[0]]}, expected "
                          f"{exp_count[bad[0]]} (seed {seed})")
    exp_last = np.zeros(nb, np.int64)
    exp_last[-1] = 1
    bad = np.nonzero(last != exp_last)[0]
    assert not len(bad), f"{label}: 'last' wrong on beat {bad[0]} (seed {seed})"
    unused = np.arange(b)[None, :] >= count[:, None]
    assert not (w[unused] != 0).any(), f"{label}: an unused lane is not 0 (seed {seed})"
    got = from_stream(w[~unused], order, p, N, b)
    shape = tuple(tb["weight_shape"])
    if not np.array_equal(got, expected):
        k = int(np.nonzero(got != expected)[0][0])
        idx = np.unravel_index(k, shape)
        raise AssertionError(f"{label}: weight {tuple(int(x) for x in idx)} is {got[k]}, "
                             f"golden {expected[k]}; {int((got != expected).sum())} of "
                             f"{expected.size} differ ({order} order, seed {seed})")
    return got.reshape(shape)


class GeneratorTB:
    """Driver, monitor and scoreboard around one DUT."""

    def __init__(self, dut, params: dict):
        self.dut = dut
        self.params = params
        self.tb = params["tb"]
        self.seed = int(params["seed"])
        self.bp = params.get("backpressure", "random")
        self.payloads: list[int] = []
        self.pass_end_ns: list[float] = []
        self.pass_done = Event()
        # the valid pattern steps once per cycle the source is not holding a code, the
        # ready pattern once per cycle the output is valid (verif.backpressure)
        valid_rng, ready_rng = generators(cocotb.RANDOM_SEED)
        self._offers = valid_levels(self.bp, valid_rng)
        self._ready = ready_levels(self.bp, ready_rng)

    # ---- stimulus --------------------------------------------------------------------
    async def reset(self):
        d = self.dut
        d.rst.value = 1
        d.start.value = 0
        d.codes__valid.value = 0
        d.codes__payload.value = 0
        d.weights__ready.value = 0
        for _ in range(2):
            await RisingEdge(d.clk)
        d.rst.value = 0
        await RisingEdge(d.clk)

    async def load(self, stream: list[int], expect_loaded: bool = True):
        """Drive every code once; a beat is taken at an edge where valid & ready.
        ``expect_loaded``: the stream is a whole layer (``loaded`` must rise)."""
        d = self.dut
        clk = d.clk
        valid, ready, payload = d.codes__valid, d.codes__ready, d.codes__payload
        for code in stream:
            if not next(self._offers):
                valid.value = 0
                await RisingEdge(clk)
                while not next(self._offers):
                    await RisingEdge(clk)
            payload.value = code
            valid.value = 1
            while True:
                await ReadOnly()
                taken = ready.value == 1
                await RisingEdge(clk)
                if taken:
                    break
        valid.value = 0
        await RisingEdge(clk)
        if expect_loaded:
            assert d.loaded.value == 1, (f"loaded did not rise after {len(stream)} codes "
                                         f"(seed {self.seed})")

    # ---- output side -------------------------------------------------------------------
    async def monitor(self, n_last: int):
        """Record payloads until ``n_last`` beats with ``last`` set have been taken.

        ``valid`` and ``ready`` change only right after rising edges (``valid`` is the
        design's, ``ready`` written here then), so the read-only phase sees both as
        the next rising edge will: a handshake exactly when both are 1 there.
        """
        d = self.dut
        clk, valid, ready, payload = d.clk, d.weights__valid, d.weights__ready, d.weights__payload
        last_bit = int(self.tb["last_bit"])
        levels = self._ready
        seen = 0
        while seen < n_last:
            await ReadOnly()
            if valid.value != 1:
                await RisingEdge(valid)                # the next beat (at a rising clock edge)
                ready.value = next(levels)             # ready for the cycle now starting
                continue
            if ready.value == 1:
                word = payload.value.to_unsigned()
                self.payloads.append(word)
                await RisingEdge(clk)                  # the handshake edge
                if (word >> last_bit) & 1:
                    seen += 1
                    self.pass_end_ns.append(get_sim_time(unit="ns"))
                    self.pass_done.set()
            else:
                await RisingEdge(clk)
            ready.value = next(levels)

    async def reset_scenario(self, codes: list[int]):
        """Reset in the middle of a load, then in the middle of a pass while a beat is
        stalled; after each the design must be idle, unloaded and ready for codes."""
        d, clk, seed = self.dut, self.dut.clk, self.seed

        async def pulse_reset(where: str):
            d.rst.value = 1
            d.codes__valid.value = 0          # the source is reset too
            d.start.value = 0
            for _ in range(2):
                await RisingEdge(clk)
            d.rst.value = 0
            await RisingEdge(clk)
            await ReadOnly()
            state = {"loaded": d.loaded.value, "busy": d.busy.value,
                     "weights valid": d.weights__valid.value, "codes ready": d.codes__ready.value}
            assert state == {"loaded": 0, "busy": 0, "weights valid": 0, "codes ready": 1}, \
                f"after a reset {where}: {state} (seed {seed})"
            await RisingEdge(clk)

        # mid-load: half the codes in, then reset
        await self.load(codes[:max(1, len(codes) // 2)], expect_loaded=False)
        await pulse_reset("in the middle of a load")
        # mid-generation: load fully, start, take some beats, stall one, reset
        await self.load(codes)
        handshakes = getattr(d, monitor_signal("weights", "handshakes"))
        base = handshakes.value.to_unsigned()
        target = min(3, int(self.tb["n_beats"]) // 2)    # a few beats in, never the last
        d.weights__ready.value = 1
        d.start.value = 1
        await RisingEdge(clk)
        d.start.value = 0
        while handshakes.value.to_unsigned() - base < target:
            await RisingEdge(clk)
        d.weights__ready.value = 0
        for _ in range(int(self.tb["longest_beat_gap"]) + int(self.tb["latency"]) + 3):
            await RisingEdge(clk)
        await ReadOnly()
        assert d.weights__valid.value == 1 and d.busy.value == 1, \
            f"no beat stalled mid-pass before the reset (seed {seed})"
        await RisingEdge(clk)
        await pulse_reset("in the middle of a pass")


async def run_passes(tb: GeneratorTB, passes: int) -> float:
    """Request ``passes`` passes of the loaded layer and collect their beats; the time
    (ns) of the edge that sampled the first ``start``. ``start`` is held two cycles: the
    first starts pass 1, the second queues pass 2; later passes are requested at the
    previous pass's last beat."""
    dut, clk = tb.dut, tb.dut.clk
    mon = cocotb.start_soon(tb.monitor(passes))
    dut.start.value = 1
    await RisingEdge(clk)
    start_ns = get_sim_time(unit="ns")
    if passes > 1:
        await RisingEdge(clk)
    dut.start.value = 0
    for requested in range(2, passes):
        while len(tb.pass_end_ns) < requested - 1:
            tb.pass_done.clear()
            await tb.pass_done.wait()
        dut.start.value = 1
        await RisingEdge(clk)
        dut.start.value = 0
    await mon
    return start_ns


def pass_cycles(tb: GeneratorTB, start_ns: float, period: float) -> list[int]:
    """Cycles of each pass (pass 1 from the start-sampling edge, later ones from the
    previous pass's last beat); exact against the design's figures without back-pressure."""
    fig, ends = tb.tb, tb.pass_end_ns
    cycles = [round((ends[0] - start_ns) / period)]
    cycles += [round((ends[k] - ends[k - 1]) / period) for k in range(1, len(ends))]
    if tb.bp == "none":
        assert cycles[0] == fig["pass_cycles"], (
            f"pass 1 took {cycles[0]} cycles, the design's formula says {fig['pass_cycles']}")
        per_pass = int(fig["pass_period"])
        if len(cycles) > 1:
            assert cycles[1] == per_pass, (f"pass 2 followed pass 1 after {cycles[1]} cycles, "
                                           f"expected {per_pass} (no bubble)")
    return cycles


async def check_reload(tb: GeneratorTB, stim: dict) -> None:
    """Load the second layer while idle, run one pass, check it bit-exact."""
    dut, nb = tb.dut, int(tb.tb["n_beats"])
    tb.payloads.clear()
    tb.pass_end_ns.clear()
    await tb.load(stim["codes_reload"].tolist())
    mon = cocotb.start_soon(tb.monitor(1))
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    await mon
    check_beats(tb.tb, tb.payloads[:nb], stim["expected_reload"], "reloaded layer", tb.seed)


@cocotb.test()
async def generate_layer(dut):
    """Load a layer, regenerate it ``passes`` times back to back, optionally reload; bit-exact."""
    params = load_params()
    tb = GeneratorTB(dut, params)
    fig, seed = tb.tb, tb.seed
    passes = int(params.get("passes", 2))
    if passes < 1:
        raise ValueError("params 'passes' must be >= 1")
    nb = int(fig["n_beats"])
    dut._log.info(f"tb_generator: run seed {seed}, test seed {cocotb.RANDOM_SEED}, "
                  f"backpressure {tb.bp}, passes {passes}, {nb} beats/pass, "
                  f"{fig['steps_per_round']} steps/round")
    wall0 = time.perf_counter()
    with np.load(params["stimulus"], allow_pickle=False) as npz:
        stim = {k: npz[k] for k in npz.files}
    await tb.reset()
    events = []
    if params.get("reset_during"):
        await tb.reset_scenario(stim["codes"].tolist())
        events += ["reset_mid_load", "reset_mid_generation"]
    # the checks below count from here: lasts and beats of the passes asked for
    since = {s: read_monitor(dut, s) for s in ("weights", "codes")}
    t0 = time.perf_counter()
    await tb.load(stim["codes"].tolist())
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    start_ns = await run_passes(tb, passes)
    sim_wall = time.perf_counter() - t0
    W = [check_beats(fig, tb.payloads[k * nb:(k + 1) * nb], stim["expected"],
                     f"pass {k + 1}", seed) for k in range(passes)][0]
    # nothing extra may arrive
    for _ in range(int(fig["longest_beat_gap"]) + int(fig["latency"]) + 2):
        await RisingEdge(dut.clk)
    assert len(tb.payloads) == passes * nb, (f"{len(tb.payloads) - passes * nb} extra beats "
                                             f"after the last pass (seed {seed})")
    assert dut.busy.value == 0, f"busy still high after the last pass (seed {seed})"
    cycles = pass_cycles(tb, start_ns, float(params.get("clock_period_ns", 10)))

    reload_checked = bool(params.get("reload"))
    if reload_checked:
        await check_reload(tb, stim)
    n_passes = passes + int(reload_checked)
    n_codes = len(stim["codes"]) + (len(stim["codes_reload"]) if reload_checked else 0)
    await ReadOnly()                # the last handshake's edge has updated the counters
    protocol = {s: read_monitor(dut, s) for s in ("weights", "codes")}
    check_counts("weights", protocol["weights"], since=since["weights"],
                 expected_last=n_passes, expected_handshakes=n_passes * nb)
    check_counts("codes", protocol["codes"], since=since["codes"], expected_handshakes=n_codes)
    events += ["regenerate_back_to_back"] * (passes > 1) + ["reload_while_idle"] * reload_checked

    bound = int(fig["cycles_lower_bound"])
    result = {
        "beats": passes * nb, "beats_per_pass": nb, "passes": passes,
        "cycles": cycles[0], "pass_cycles": cycles,
        "design_pass_cycles": fig["pass_cycles"], "latency": fig["latency"],
        "steps_per_round": fig["steps_per_round"],
        "cycles_lower_bound": bound, "efficiency": bound / cycles[0],
        "backpressure": tb.bp, "seed": seed, "reload_checked": reload_checked,
        "load_wall_s": load_s, "generate_wall_s": sim_wall,
        "beats_per_s": passes * nb / sim_wall if sim_wall else None,
        "tb_wall_s": time.perf_counter() - wall0,
        "protocol": protocol, "events": events,
    }
    if tb.bp == "none":
        result["cycles_no_backpressure"] = cycles[0]
    dut._log.info(f"tb_generator: {json.dumps(result)}")
    _write_outputs(params, result, W)


def _write_outputs(params: dict, result: dict, W: np.ndarray) -> None:
    """``result.json`` and, when asked (``params["out"]``), the RTL's weights."""
    if params.get("result_path"):
        atomic_write_text(params["result_path"],
                          json.dumps(result, indent=2, sort_keys=True) + "\n")
    if params.get("out"):
        # the same deterministic writer as every other weights file (byte-identical on
        # any host), standard library + numpy only, as a testbench must be
        save_npz(params["out"], W=W.astype(np.int64), cycles=np.int64(result["cycles"]))


