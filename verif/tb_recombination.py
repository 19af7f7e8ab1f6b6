# SPDX-License-Identifier: Apache-2.0
"""cocotb testbench of the emitted RecombinationUnit Verilog.

Parameters come from the JSON file named by ``$INSITUGEN_PARAMS`` (written by
:func:`verif.runner.run_sim`): ``config`` (a recombination config
dict), ``seed`` (the run seed), ``backpressure`` (``none | periodic | random``:
input valid gaps and output ready pattern), ``result_path``, ``stimulus`` (an
``.npz`` with ``names``, ``vectors`` [n, count] and the golden model's
``expected`` [n]) and ``tb`` (``mode``, ``count``, ``partial_bits``,
``serial_order``, ``pipeline_stages``, ``corner_cases``).

The stimulus (named corner cases: real sliced products of extreme operands,
partials at the rails, zero, alternating, one-hot per shift; then random real
sliced products) and the expected recombined values are computed by the runner
in its own process with the torch golden model
(:func:`verif.stimulus.write_stimulus`): this module imports only
numpy and cocotb, so the simulator's embedded Python starts in a fraction of
the time.

Structure: driver (valid pattern of :mod:`verif.backpressure`, from a numpy generator
seeded with ``cocotb.RANDOM_SEED``, itself derived from the run seed) -> input
monitor (the handshakes and payloads on the DUT's ``i`` ports) -> scoreboard (the
accepted beats must be the driven ones, in order; expected values of them) <-
output monitor (seeded ready pattern). Every output is compared; the test ends by checking
the count and that nothing extra arrives, and that the protocol monitors of
the testbench top (:mod:`verif.protocol`, Verilog, every clock) saw
no broken rule on either stream and every beat; their counters go to
``result.json`` (``protocol``). The clock runs inside the simulation
(the runner's testbench top); one coroutine drives and samples both interfaces,
two scheduler events per clock (drive after the rising edge, sample in the
read-only phase).
"""

from __future__ import annotations

import json
import time

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from insitugen.files import atomic_write_text
from verif.backpressure import generators, ready_pattern, valid_pattern
from verif.protocol import check_counts, read_monitor
from verif.tb_params import load_params


def input_beats(tb: dict, vectors: np.ndarray) -> list[int]:
    """Input payloads: one beat per vector (parallel: partial k at bits k*pb) or
    ``count`` beats per vector in ``serial_order`` (serial)."""
    pb = int(tb["partial_bits"])
    mask = (1 << pb) - 1
    rows = vectors.tolist()
    if tb["mode"] == "parallel":
        return [sum((p & mask) << (k * pb) for k, p in enumerate(v)) for v in rows]
    return [v[k] & mask for v in rows for k in tb["serial_order"]]


class _Streams:
    """Driver, input monitor and output monitor on the DUT's ``i`` / ``o`` streams."""

    def __init__(self, dut, beats: list[int], valid_pat, ready_pat):
        self.dut = dut
        self.beats = beats
        self.valid_pat, self.ready_pat = valid_pat, ready_pat
        self.accepted: list[int] = []    # input monitor: payloads the DUT accepted, in order
        self.got: list[int] = []         # output monitor
        self.cycles = 0

    async def reset(self):
        d = self.dut
        d.i__valid.value = 0
        d.o__ready.value = 0
        d.i__payload.value = 0
        d.rst.value = 1
        for _ in range(2):
            await RisingEdge(d.clk)
        d.rst.value = 0

    async def run(self, n_results: int):
        """Drive every beat and collect ``n_results`` outputs (the clock runs inside the
        simulation, the runner's testbench top)."""
        d, beats = self.dut, self.beats
        limit = len(self.valid_pat)
        idx, holding, cycle = 0, False, 0
        while len(self.got) < n_results:
            if cycle >= limit:
                raise AssertionError(f"timeout: {len(self.got)} of {n_results} results after "
                                     f"{cycle} cycles ({idx} of {len(beats)} input beats "
                                     f"accepted)")
            await RisingEdge(d.clk)
            # driver: once raised, valid and the payload hold until the handshake
            if not holding and idx < len(beats) and self.valid_pat[cycle]:
                holding = True
                d.i__payload.value = beats[idx]
            d.i__valid.value = holding
            d.o__ready.value = bool(self.ready_pat[cycle])
            await ReadOnly()
            # input monitor: the handshakes the DUT's own ports show, with their payload
            if d.i__valid.value and d.i__ready.value:
                self.accepted.append(d.i__payload.value.to_unsigned())
            if holding and d.i__ready.value:
                idx += 1
                holding = False
            if d.o__ready.value and d.o__valid.value:
                self.got.append(d.o__payload.value.to_signed())
            cycle += 1
        self.cycles = cycle

    async def extra_outputs(self, cycles: int) -> list[int]:
        """Outputs arriving in ``cycles`` more cycles of idle input and ready output."""
        d = self.dut
        await RisingEdge(d.clk)
        d.i__valid.value = 0
        d.o__ready.value = 1
        extra = []
        for _ in range(cycles):
            await ReadOnly()
            if d.o__valid.value:
                extra.append(d.o__payload.value.to_signed())
            await RisingEdge(d.clk)
        return extra


def check_results(dut, streams: _Streams, names, vectors, expected, seed: int) -> None:
    """Scoreboard: the input monitor saw every driven beat once, in order and intact (so
    ``expected`` are the golden values of what the DUT accepted); every output equals
    its golden value."""
    accepted, beats, got = streams.accepted, streams.beats, streams.got
    if accepted != beats:
        k = next((k for k, (a, b) in enumerate(zip(accepted, beats, strict=False))
                  if a != b), min(len(accepted), len(beats)))
        raise AssertionError(f"input monitor: the DUT accepted {len(accepted)} beats for "
                             f"{len(beats)} driven; first difference at beat {k} "
                             f"(seed {seed})")
    n_vec = len(vectors)
    assert len(got) == n_vec, f"{len(got)} results for {n_vec} inputs"
    bad = np.nonzero(np.array(got, dtype=object) != expected.astype(object))[0]
    for i in bad[:10].tolist():
        dut._log.error("result %d (%s): partials %s -> RTL %d, golden %d", i, names[i],
                       vectors[i].tolist(), got[i], int(expected[i]))
    assert not len(bad), f"{len(bad)} of {n_vec} results differ from golden (seed {seed})"


# ---- the test ---------------------------------------------------------------------

@cocotb.test()
async def recombination_matches_golden(dut):
    params = load_params()
    tb = params["tb"]
    # cocotb seeds `random` per test from COCOTB_RANDOM_SEED (the run seed) and the
    # test's name and exposes that derived seed as RANDOM_SEED: the handshake
    # patterns derive from it, the stimulus from the run seed (in the runner), so one
    # run seed replays everything.
    seed = int(params["seed"])
    test_seed = cocotb.RANDOM_SEED
    dut._log.info("run seed %d (replay with --seed %d), test seed %d; backpressure %s",
                  seed, seed, test_seed, params["backpressure"])
    with np.load(params["stimulus"], allow_pickle=False) as npz:
        names = npz["names"].tolist()
        vectors = npz["vectors"]
        expected = npz["expected"]
    beats = input_beats(tb, vectors)
    limit = 30 * len(beats) + 200
    valid_rng, ready_rng = generators(test_seed)
    streams = _Streams(dut, beats, valid_pattern(params["backpressure"], valid_rng, limit),
                       ready_pattern(params["backpressure"], ready_rng, limit))

    await streams.reset()
    t0 = time.perf_counter()
    await streams.run(len(vectors))
    wall = time.perf_counter() - t0
    extra = await streams.extra_outputs(2 * int(tb["pipeline_stages"]) + 8)

    check_results(dut, streams, names, vectors, expected, seed)
    assert not extra, f"{len(extra)} extra output beats after the last result: {extra[:5]}"
    await ReadOnly()                # the last edge has updated the monitors' counters
    protocol = {s: read_monitor(dut, s) for s in ("i", "o")}
    check_counts("i", protocol["i"], expected_handshakes=len(beats))
    check_counts("o", protocol["o"], expected_handshakes=len(vectors))

    cycle = streams.cycles
    result = {"beats": len(streams.got), "input_beats": len(beats), "cycles": cycle,
              "seed": seed, "vectors": len(vectors), "corner_cases": int(tb["corner_cases"]),
              "backpressure": params["backpressure"], "wall_s": wall,
              "cycles_per_s": cycle / wall if wall else None,
              "beats_per_s": len(beats) / wall if wall else None,
              "latency": int(tb["pipeline_stages"]), "protocol": protocol}
    dut._log.info("%d results (%d input beats) in %d cycles, %.0f cycles/s",
                  len(streams.got), len(beats), cycle, result["cycles_per_s"] or 0)
    atomic_write_text(params["result_path"], json.dumps(result, indent=2) + "\n")
