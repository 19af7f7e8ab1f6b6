"""cocotb testbench of the emitted RecombinationUnit Verilog.

Parameters come from the JSON file named by ``$INSITUGEN_PARAMS`` (written by
:func:`insitugen.verif.runner.run_sim`): ``config`` (a recombination config
dict), ``backpressure`` (``none | periodic | random``: input valid gaps and
output ready pattern), ``result_path``, optional ``vectors`` (random vectors,
default 256).

Structure: driver (seeded valid gaps) -> input monitor -> golden model
(``golden.arith.recombine`` with ``cfg.widths.shifts``) -> scoreboard <- output
monitor (seeded ready pattern). Stimulus: named corner cases (extreme operand
codes, every partial at the rails of ``partial_bits``, zero, alternating,
one-hot per shift) and random partials that are real sliced products of random
operands (``terms`` products summed). Every output is compared; the test ends
by checking the count and that nothing extra arrives.

One coroutine drives and samples both interfaces, two scheduler events per
clock (drive after the rising edge, sample in the read-only phase), which is
the cheapest exact way to see each handshake.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
import torch
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from insitugen import widths as W
from insitugen.config import RecombinationConfig, config_from_dict
from insitugen.golden import arith

DEFAULT_VECTORS = 256


def load_params() -> dict:
    path = os.environ.get("INSITUGEN_PARAMS")
    if not path:
        raise RuntimeError("INSITUGEN_PARAMS is not set: run this testbench through "
                           "insitugen.verif.runner.run_sim")
    return json.loads(Path(path).read_text())


# ---- stimulus ---------------------------------------------------------------------

def operand_extremes(op: W.SlicedOperand) -> dict[str, int]:
    """Named extreme inputs of an operand: codes for ``odd``, integers for ``twos``."""
    if op.encoding == "odd":
        return {"max": (1 << op.bits) - 1, "min": 0}
    lo, hi = op.range
    return {"max": hi, "min": lo, "zero": 0}


def random_operands(op: W.SlicedOperand, shape, gen: torch.Generator) -> torch.Tensor:
    if op.encoding == "odd":
        return torch.randint(0, 1 << op.bits, shape, generator=gen, dtype=torch.int64)
    lo, hi = op.range
    return torch.randint(lo, hi + 1, shape, generator=gen, dtype=torch.int64)


def products(cfg: RecombinationConfig, a: torch.Tensor, x: torch.Tensor) -> list[list[int]]:
    """Engine partials (index k) of ``sum_t a[:, t] * x[:, t]`` for each row."""
    parts = arith.sliced_partials(a, x, cfg.a, cfg.x, dim=-1)
    return torch.stack(parts, dim=-1).tolist()


def stimulus(cfg: RecombinationConfig, n_random: int, gen: torch.Generator):
    """(names, vectors, exact): named corners first, then random products.

    ``exact[i]`` is the true ``sum a*x`` for product vectors (None for rail
    vectors, which are not products of any operands).
    """
    wd = cfg.widths
    n, T = wd.count, cfg.terms
    names, vecs, exact = [], [], []

    def add_products(name, a, x):
        for row, p in enumerate(products(cfg, a, x)):
            names.append(name if a.shape[0] == 1 else f"{name}[{row}]")
            vecs.append(p)
        exact.extend((arith.operand_value(a, cfg.a) * arith.operand_value(x, cfg.x))
                     .sum(-1).tolist())

    for an, av in operand_extremes(cfg.a).items():
        for xn, xv in operand_extremes(cfg.x).items():
            add_products(f"a_{an}_x_{xn}", torch.full((1, T), av), torch.full((1, T), xv))
    lo, hi = W.twos_range(wd.partial_bits)
    rails = {
        "partials_all_min": [lo] * n,
        "partials_all_max": [hi] * n,
        "partials_zero": [0] * n,
        "partials_alternating": [hi if k % 2 else lo for k in range(n)],
        "partials_alternating_inv": [lo if k % 2 else hi for k in range(n)],
        "partials_minus_one": [-1] * n,
    }
    for k in range(n):
        rails[f"onehot_max_k{k}"] = [hi if j == k else 0 for j in range(n)]
        rails[f"onehot_min_k{k}"] = [lo if j == k else 0 for j in range(n)]
    for name, v in rails.items():
        names.append(name)
        vecs.append(v)
        exact.append(None)
    a = random_operands(cfg.a, (n_random, T), gen)
    x = random_operands(cfg.x, (n_random, T), gen)
    add_products("random", a, x)
    return names, vecs, exact


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


# ---- the test ---------------------------------------------------------------------

@cocotb.test()
async def recombination_matches_golden(dut):
    params = load_params()
    cfg = config_from_dict(params["config"])
    if not isinstance(cfg, RecombinationConfig):
        raise RuntimeError(f"tb_recombination needs a recombination config, got {cfg.BLOCK}")
    wd = cfg.widths
    # cocotb seeds `random` per test from COCOTB_RANDOM_SEED (the run seed) and the
    # test's name and exposes that derived seed as RANDOM_SEED: numpy and torch
    # generators derive from it, so one run seed replays everything.
    seed = int(params["seed"])
    test_seed = cocotb.RANDOM_SEED
    dut._log.info("run seed %d (replay with --seed %d), test seed %d; backpressure %s",
                  seed, seed, test_seed, params["backpressure"])
    gen = torch.Generator().manual_seed(test_seed % (1 << 63))
    rng = np.random.default_rng(test_seed)

    names, vectors, exact = stimulus(cfg, int(params.get("vectors", DEFAULT_VECTORS)), gen)
    expected = arith.recombine(torch.tensor(vectors, dtype=torch.int64), wd.shifts).tolist()
    for i, (e, t) in enumerate(zip(expected, exact)):   # the stimulus itself is sound
        assert t is None or e == t, f"{names[i]}: golden recombination {e} != exact {t}"

    pb, mask = wd.partial_bits, (1 << wd.partial_bits) - 1
    if cfg.mode == "parallel":
        beats = [sum((p & mask) << (k * pb) for k, p in enumerate(v)) for v in vectors]
        per_group = 1
    else:
        beats = [v[k] & mask for v in vectors for k in wd.serial_order]
        per_group = wd.count
    limit = 30 * len(beats) + 200
    valid_pat, ready_pat = gap_patterns(params["backpressure"], rng, limit)

    clk, rst = dut.clk, dut.rst
    i_valid, i_ready, i_payload = dut.i__valid, dut.i__ready, dut.i__payload
    o_valid, o_ready, o_payload = dut.o__valid, dut.o__ready, dut.o__payload

    cocotb.start_soon(Clock(clk, 10, unit="ns").start())
    i_valid.value = 0
    o_ready.value = 0
    i_payload.value = 0
    rst.value = 1
    for _ in range(2):
        await RisingEdge(clk)
    rst.value = 0

    accepted = []            # input monitor: beats seen accepted, in order
    got = []                 # output monitor
    idx, holding, cycle = 0, False, 0
    t0 = time.perf_counter()
    while len(got) < len(vectors):
        if cycle >= limit:
            raise AssertionError(f"timeout: {len(got)} of {len(vectors)} results after "
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
    for _ in range(2 * cfg.pipeline_stages + 8):
        await ReadOnly()
        if o_valid.value:
            extra.append(o_payload.value.to_signed())
        await RisingEdge(clk)

    # scoreboard: golden of what the input monitor saw vs what the output monitor saw
    assert accepted == beats, "input monitor: accepted beats differ from the driven sequence"
    mism = [(i, names[i], vectors[i], g, e) for i, (g, e) in enumerate(zip(got, expected))
            if g != e]
    for i, name, v, g, e in mism[:10]:
        dut._log.error("result %d (%s): partials %s -> RTL %d, golden %d", i, name, v, g, e)
    assert not mism, f"{len(mism)} of {len(expected)} results differ from golden (seed {seed})"
    assert len(got) == len(expected), f"{len(got)} results for {len(expected)} inputs"
    assert not extra, f"{len(extra)} extra output beats after the last result: {extra[:5]}"

    result = {"beats": len(got), "input_beats": len(beats), "cycles": cycle, "seed": seed,
              "vectors": len(vectors), "corner_cases": sum(n != "random" and
                                                            not n.startswith("random[")
                                                            for n in names),
              "backpressure": params["backpressure"], "wall_s": wall,
              "cycles_per_s": cycle / wall if wall else None,
              "beats_per_s": len(beats) / wall if wall else None,
              "latency": cfg.pipeline_stages}
    dut._log.info("%d results (%d input beats) in %d cycles, %.0f cycles/s",
                  len(got), len(beats), cycle, result["cycles_per_s"] or 0)
    out = Path(params["result_path"])
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)
