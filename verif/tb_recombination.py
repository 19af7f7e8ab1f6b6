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
(:func:`verif.runner.write_stimulus`): this module imports only
numpy and cocotb, so the simulator's embedded Python starts in a fraction of
the time.

Structure: driver (valid gaps from a numpy generator seeded with
``cocotb.RANDOM_SEED``, itself derived from the run seed) -> input monitor ->
scoreboard (expected values of what the input monitor saw) <- output monitor
(seeded ready pattern). Every output is compared; the test ends by checking
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
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from verif.protocol import check_counts, read_monitor
from verif.tb_params import load_params


def gap_patterns(mode: str, rng: np.random.Generator, length: int):
    """(valid, ready) booleans per cycle for the input valid gaps and output ready."""
    if mode == "none":
        return np.ones(length, bool), np.ones(length, bool)
    if mode == "periodic":
        t = np.arange(length)
        return (t % 4) != 3, (t % 5) < 3          # coprime periods: every phase meets
    if mode == "random":
        return rng.random(length) < 0.7, rng.random(length) < 0.6
    raise ValueError(f"backpressure must be none | periodic | random, not {mode!r}")


def input_beats(tb: dict, vectors: np.ndarray) -> list[int]:
    """Input payloads: one beat per vector (parallel: partial k at bits k*pb) or
    ``count`` beats per vector in ``serial_order`` (serial)."""
    pb = int(tb["partial_bits"])
    mask = (1 << pb) - 1
    rows = vectors.tolist()
    if tb["mode"] == "parallel":
        return [sum((p & mask) << (k * pb) for k, p in enumerate(v)) for v in rows]
    return [v[k] & mask for v in rows for k in tb["serial_order"]]


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
    rng = np.random.default_rng(test_seed)
    with np.load(params["stimulus"], allow_pickle=False) as npz:
        names = npz["names"].tolist()
        vectors = npz["vectors"]
        expected = npz["expected"]

    beats = input_beats(tb, vectors)
    limit = 30 * len(beats) + 200
    valid_pat, ready_pat = gap_patterns(params["backpressure"], rng, limit)

    clk, rst = dut.clk, dut.rst
    i_valid, i_ready, i_payload = dut.i__valid, dut.i__ready, dut.i__payload
    o_valid, o_ready, o_payload = dut.o__valid, dut.o__ready, dut.o__payload

    # the clock runs inside the simulation (runner's testbench top)
    i_valid.value = 0
    o_ready.value = 0
    i_payload.value = 0
    rst.value = 1
    for _ in range(2):
        await RisingEdge(clk)
    rst.value = 0

    n_vec = len(vectors)
    accepted = []            # input monitor: beats seen accepted, in order
    got = []                 # output monitor
    idx, holding, cycle = 0, False, 0
    t0 = time.perf_counter()
    while len(got) < n_vec:
        if cycle >= limit:
            raise AssertionError(f"timeout: {len(got)} of {n_vec} results after "
                                 f"{cycle} cycles ({idx} of {len(beats)} input beats accepted)")
        await RisingEdge(clk)
        # driver: once raised, valid and the payload hold until the handshake
        if not holding and idx < len(beats) and valid_pat[cycle]:
            holding = True
            i_payload.value = beats[idx]
        i_valid.value = holding
        o_ready.value = bool(ready_pat[cycle])
        await ReadOnly()
        if holding and i_ready.value:
            accepted.append(beats[idx])
            idx += 1
            holding = False
        if ready_pat[cycle] and o_valid.value:
            got.append(o_payload.value.to_signed())
        cycle += 1
    wall = time.perf_counter() - t0

    # Nothing extra may arrive: idle input, output always ready.
    await RisingEdge(clk)
    i_valid.value = 0
    o_ready.value = 1
    extra = []
    for _ in range(2 * int(tb["pipeline_stages"]) + 8):
        await ReadOnly()
        if o_valid.value:
            extra.append(o_payload.value.to_signed())
        await RisingEdge(clk)

    # scoreboard: expected values of what the input monitor saw vs the output monitor
    assert accepted == beats, "input monitor: accepted beats differ from the driven sequence"
    assert len(got) == n_vec, f"{len(got)} results for {n_vec} inputs"
    got_arr = np.array(got, dtype=object)
    bad = np.nonzero(got_arr != expected.astype(object))[0]
    for i in bad[:10].tolist():
        dut._log.error("result %d (%s): partials %s -> RTL %d, golden %d", i, names[i],
                       vectors[i].tolist(), got[i], int(expected[i]))
    assert not len(bad), (f"{len(bad)} of {n_vec} results differ from golden "
                          f"(seed {seed})")
    assert not extra, f"{len(extra)} extra output beats after the last result: {extra[:5]}"
    await ReadOnly()                # the last edge has updated the monitors' counters
    protocol = {s: read_monitor(dut, s) for s in ("i", "o")}
    check_counts("i", protocol["i"], expected_handshakes=len(beats))
    check_counts("o", protocol["o"], expected_handshakes=n_vec)

    result = {"beats": len(got), "input_beats": len(beats), "cycles": cycle, "seed": seed,
              "vectors": n_vec, "corner_cases": int(tb["corner_cases"]),
              "backpressure": params["backpressure"], "wall_s": wall,
              "cycles_per_s": cycle / wall if wall else None,
              "beats_per_s": len(beats) / wall if wall else None,
              "latency": int(tb["pipeline_stages"]), "protocol": protocol}
    dut._log.info("%d results (%d input beats) in %d cycles, %.0f cycles/s",
                  len(got), len(beats), cycle, result["cycles_per_s"] or 0)
    out = Path(params["result_path"])
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)
