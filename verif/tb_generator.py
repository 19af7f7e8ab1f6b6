"""cocotb testbench of the emitted Generator Verilog (a whole MLG layer, bit-exact).

Parameters come from the JSON file named by ``$INSITUGEN_PARAMS`` (written by
:func:`insitugen.verif.runner.run_sim`):

* ``config``: the generator config dict; ``seed``; ``result_path``;
* ``backpressure``: ``none | periodic | random`` -- the output ``ready``
  pattern and the gaps between input code beats;
* ``codes`` (optional): a ``.npz`` code file, read with
  :func:`insitugen.golden.codes.load_codes`; absent: random codes from the seed;
* ``out`` (optional): a ``.npz`` to write ``W`` (int64, ``cfg.weight_shape``,
  the RTL's weights of the first pass) and ``cycles``;
* ``passes`` (default 2): regenerations of the loaded layer without reloading;
  pass 2 is requested while pass 1 runs (``start`` held two cycles) and must
  follow it without a bubble; later passes are requested at the previous
  pass's last beat;
* ``reload`` (default false): then load a second random layer and check one pass.

Structure: code driver (seeded valid gaps) -> DUT -> output monitor (seeded
ready pattern, driven at falling edges) -> scoreboard: every beat's ``count``,
``last`` exactly at the final beat of each pass, unused lanes 0, and the
concatenated weights of each pass compared in bulk (numpy) with
:func:`insitugen.golden.generate.generate`; nothing may arrive after the last
pass. The monitor waits on value changes of ``valid`` / ``ready`` rather than
on every clock, so a long layer with sparse beats costs one scheduler event
per beat, and samples in the read-only phase, which is exact when ``valid``
stays high on consecutive cycles.

``result.json``: beats, cycles (start-sampling edge to the last beat's
handshake of pass 1), cycles of each pass, the design's ``pass_cycles``,
``cycles_lower_bound``, efficiency, wall times.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import Event, FallingEdge, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from insitugen.config import GeneratorConfig, config_from_dict
from insitugen.golden.codes import atomic_write, load_codes, random_codes, save_npz
from insitugen.golden.generate import generate
from insitugen.hdl.generator import Generator

PERIOD_NS = 10


def load_params() -> dict:
    path = os.environ.get("INSITUGEN_PARAMS")
    if not path:
        raise RuntimeError("INSITUGEN_PARAMS is not set: run this testbench through "
                           "insitugen.verif.runner.run_sim")
    return json.loads(Path(path).read_text())


def code_stream(cfg: GeneratorConfig, codes) -> list[int]:
    """The codes in load order: B, then U, then V, each row-major."""
    return np.concatenate([np.asarray(codes[name]).reshape(-1)
                           for name in cfg.code_shapes]).astype(np.int64).tolist()


def decode_beats(cfg: GeneratorConfig, payloads: list[int]):
    """Packed payload ints -> (w [beats, L] int64, count [beats], last [beats])."""
    L, wb = cfg.lanes, cfg.weight_bits
    cw = L.bit_length()
    total = L * wb + cw + 1
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
    last = bits[:, L * wb + cw]
    return w, count, last


def check_beats(cfg: GeneratorConfig, model: Generator, payloads: list[int], codes,
                label: str, seed: int) -> np.ndarray:
    """Scoreboard of one pass: beat count, ``count`` and ``last`` of every beat, unused
    lanes 0, and every weight equal to the golden model's; returns ``W`` (weight_shape)."""
    w, count, last = decode_beats(cfg, payloads)
    nb, L, R = model.n_beats, cfg.lanes, model.rounds_per_row
    assert len(w) == nb, f"{label}: {len(w)} beats, expected {nb} (seed {seed})"
    N = cfg.in_channels * cfg.K
    exp_count = np.full(nb, L, np.int64)
    exp_count[R - 1::R] = N - (R - 1) * L
    bad = np.nonzero(count != exp_count)[0]
    assert not len(bad), (f"{label}: beat {bad[0]} has count {count[bad[0]]}, expected "
                          f"{exp_count[bad[0]]} (seed {seed})")
    exp_last = np.zeros(nb, np.int64)
    exp_last[-1] = 1
    bad = np.nonzero(last != exp_last)[0]
    assert not len(bad), f"{label}: 'last' wrong on beat {bad[0]} (seed {seed})"
    unused = np.arange(L)[None, :] >= count[:, None]
    assert not (w[unused] != 0).any(), f"{label}: an unused lane is not 0 (seed {seed})"
    got = w[~unused]
    exp = generate(cfg, codes).numpy().reshape(-1)
    if not np.array_equal(got, exp):
        k = int(np.nonzero(got != exp)[0][0])
        idx = np.unravel_index(k, cfg.weight_shape)
        raise AssertionError(f"{label}: weight {tuple(int(x) for x in idx)} is {got[k]}, "
                             f"golden {exp[k]}; {int((got != exp).sum())} of {exp.size} "
                             f"differ (seed {seed})")
    return got.reshape(cfg.weight_shape)


class GeneratorTB:
    """Driver, monitor and scoreboard around one DUT."""

    def __init__(self, dut, params: dict):
        self.dut = dut
        self.params = params
        self.cfg = config_from_dict(params["config"])
        if not isinstance(self.cfg, GeneratorConfig):
            raise TypeError("tb_generator needs a generator config")
        self.seed = int(params.get("seed", cocotb.RANDOM_SEED))
        self.rng = random.Random(self.seed)
        self.bp = params.get("backpressure", "random")
        model = Generator(self.cfg)                 # properties only, never elaborated
        model._MustUse__silence = True
        self.model = model
        self.payloads: list[int] = []
        self.handshake_ns: list[float] = []
        self.pass_end_ns: list[float] = []
        self.pass_done = Event()

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

    def _gap(self) -> int:
        if self.bp == "none":
            return 0
        if self.bp == "periodic":
            self._gap_n = getattr(self, "_gap_n", 0) + 1
            return 1 if self._gap_n % 7 == 0 else 0
        return self.rng.choice((0, 0, 0, 1, 2)) if self.rng.random() < 0.3 else 0

    async def load(self, stream: list[int]):
        """Drive every code once; a beat is taken at an edge where valid & ready."""
        d = self.dut
        clk = d.clk
        for code in stream:
            gap = self._gap()
            if gap:
                d.codes__valid.value = 0
                for _ in range(gap):
                    await RisingEdge(clk)
            d.codes__payload.value = code
            d.codes__valid.value = 1
            while True:
                await ReadOnly()
                taken = d.codes__ready.value == 1
                await RisingEdge(clk)
                if taken:
                    break
        d.codes__valid.value = 0
        await RisingEdge(clk)
        assert d.loaded.value == 1, f"loaded did not rise after {len(stream)} codes (seed {self.seed})"

    # ---- output side -------------------------------------------------------------------
    def ready_runs(self):
        """Endless (level, cycles) runs of the output ready pattern."""
        if self.bp == "none":
            while True:
                yield 1, 1 << 30
        elif self.bp == "periodic":
            while True:
                yield 1, 3
                yield 0, 2
        else:
            while True:
                yield 1, self.rng.randint(1, 6)
                yield 0, self.rng.randint(1, 5)

    async def drive_ready(self):
        d = self.dut
        await FallingEdge(d.clk)
        for level, cycles in self.ready_runs():
            d.weights__ready.value = level
            await Timer(cycles * PERIOD_NS, unit="ns")

    async def monitor(self, n_last: int):
        """Record payloads until ``n_last`` beats with ``last`` set have been taken.

        ``ready`` changes only at falling edges (see :meth:`drive_ready`) and ``valid``
        only at rising edges, so the read-only phase after a falling edge sees both as
        the next rising edge will: a handshake exactly when both are 1 there.
        """
        d = self.dut
        clk, valid, ready, payload = d.clk, d.weights__valid, d.weights__ready, d.weights__payload
        last_bit = self.cfg.lanes * self.cfg.weight_bits + self.cfg.lanes.bit_length()
        seen = 0
        await FallingEdge(clk)
        while seen < n_last:
            await ReadOnly()
            v, r = valid.value == 1, ready.value == 1
            if v and r:
                word = payload.value.to_unsigned()
                self.payloads.append(word)
                await RisingEdge(clk)                      # the handshake edge
                t = get_sim_time(unit="ns")
                self.handshake_ns.append(t)
                if (word >> last_bit) & 1:
                    seen += 1
                    self.pass_end_ns.append(t)
                    self.pass_done.set()
                await FallingEdge(clk)
            elif not v:
                await RisingEdge(valid)                    # the next beat (at a rising edge)
                await FallingEdge(clk)
            else:
                await RisingEdge(ready)                    # driven at a falling edge

@cocotb.test()
async def generate_layer(dut):
    """Load a layer, regenerate it ``passes`` times back to back, optionally reload; bit-exact."""
    params = load_params()
    tb = GeneratorTB(dut, params)
    cfg, model, seed = tb.cfg, tb.model, tb.seed
    passes = int(params.get("passes", 2))
    if passes < 1:
        raise ValueError("params 'passes' must be >= 1")
    dut._log.info(f"tb_generator: seed {seed}, backpressure {tb.bp}, passes {passes}, "
                  f"{model.n_beats} beats/pass, {model.steps_per_round} steps/round")
    wall0 = time.perf_counter()
    if params.get("codes"):
        codes = load_codes(cfg, params["codes"])
    else:
        codes = random_codes(cfg, seed)
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    await tb.reset()
    t0 = time.perf_counter()
    await tb.load(code_stream(cfg, codes))
    load_s = time.perf_counter() - t0

    cocotb.start_soon(tb.drive_ready())
    mon = cocotb.start_soon(tb.monitor(passes))
    clk = dut.clk
    t0 = time.perf_counter()
    # start held for two cycles: the first starts pass 1, the second queues pass 2
    dut.start.value = 1
    await RisingEdge(clk)
    start_ns = get_sim_time(unit="ns")
    if passes == 1:
        dut.start.value = 0
    else:
        await RisingEdge(clk)
        dut.start.value = 0
        requested = 2
        while requested < passes:
            while len(tb.pass_end_ns) < requested - 1:
                tb.pass_done.clear()
                await tb.pass_done.wait()
            dut.start.value = 1
            await RisingEdge(clk)
            dut.start.value = 0
            requested += 1
    await mon
    sim_wall = time.perf_counter() - t0
    nb = model.n_beats
    W = None
    for k in range(passes):
        got = check_beats(cfg, model, tb.payloads[k * nb:(k + 1) * nb], codes,
                          f"pass {k + 1}", seed)
        if W is None:
            W = got
    # nothing extra may arrive
    for _ in range(model.steps_per_round + model.latency + 2):
        await RisingEdge(clk)
    assert len(tb.payloads) == passes * nb, (f"{len(tb.payloads) - passes * nb} extra beats "
                                             f"after the last pass (seed {seed})")
    assert dut.busy.value == 0, f"busy still high after the last pass (seed {seed})"

    cycles = [round((tb.pass_end_ns[0] - start_ns) / PERIOD_NS)]
    for k in range(1, passes):
        cycles.append(round((tb.pass_end_ns[k] - tb.pass_end_ns[k - 1]) / PERIOD_NS))
    if tb.bp == "none":
        assert cycles[0] == model.pass_cycles, (
            f"pass 1 took {cycles[0]} cycles, the design's formula says {model.pass_cycles}")
        if passes > 1:
            per_pass = nb * model.steps_per_round
            assert cycles[1] == per_pass, (f"pass 2 followed pass 1 after {cycles[1]} cycles, "
                                           f"expected {per_pass} (no bubble)")

    reload_checked = False
    if params.get("reload"):
        tb.payloads.clear()
        tb.pass_end_ns.clear()
        codes2 = random_codes(cfg, seed + 1)
        await tb.load(code_stream(cfg, codes2))
        mon = cocotb.start_soon(tb.monitor(1))
        dut.start.value = 1
        await RisingEdge(clk)
        dut.start.value = 0
        await mon
        check_beats(cfg, model, tb.payloads[:nb], codes2, "reloaded layer", seed)
        reload_checked = True

    bound = model.cycles_lower_bound
    result = {
        "beats": passes * nb, "beats_per_pass": nb, "passes": passes,
        "cycles": cycles[0], "pass_cycles": cycles,
        "design_pass_cycles": model.pass_cycles, "latency": model.latency,
        "steps_per_round": model.steps_per_round,
        "cycles_lower_bound": bound, "efficiency": bound / cycles[0],
        "backpressure": tb.bp, "seed": seed, "reload_checked": reload_checked,
        "load_wall_s": load_s, "generate_wall_s": sim_wall,
        "tb_wall_s": time.perf_counter() - wall0,
    }
    dut._log.info(f"tb_generator: {json.dumps(result)}")
    if params.get("result_path"):
        text = json.dumps(result, indent=2, sort_keys=True) + "\n"
        atomic_write(params["result_path"], lambda tmp: Path(tmp).write_text(text))
    if params.get("out"):
        save_npz(params["out"], W=W.astype(np.int64), cycles=np.int64(cycles[0]))
