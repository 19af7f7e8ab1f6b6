# SPDX-License-Identifier: Apache-2.0
"""Stimulus and expected outputs of a simulation, computed in the runner's process.

:func:`write_stimulus` runs the golden model (torch) here and writes its results to an
``.npz`` that the testbench reads, so the testbench in the simulator's embedded
Python imports only numpy and cocotb.
"""

from __future__ import annotations

from pathlib import Path

from insitugen.config import Config
from insitugen.errors import VerificationError
from verif.tb_top import stream_last_bits

__all__ = ["write_stimulus", "generator_tb_figures"]


def write_stimulus(cfg: Config, params: dict, path: Path, *,
                   sample_coverage: bool = False) -> dict:
    """Compute the block's stimulus and the golden model's expected outputs, write them
    to ``path`` (``.npz``, atomically) and return the entries to merge into
    ``params.json``: ``stimulus`` (the file) and ``tb`` (the design figures the
    testbench needs). The testbench then imports only numpy and cocotb: torch and
    the golden model stay out of the simulator's embedded Python.

    Recombination (seeded by ``params["seed"]``): named corner cases (real sliced
    products of extreme operands, partials at the rails of ``partial_bits``, zero,
    alternating, one-hot per shift) then ``params.get("vectors", 256)`` random real
    sliced products; arrays ``names``, ``vectors`` [n, count], ``expected`` [n].

    Generator: the codes (``params["codes"]`` via ``golden.codes.load_codes``, else
    ``random_codes(cfg, seed)``) as the load stream ``codes`` and
    ``golden.generate.generate`` of them as ``expected`` (flat, oihw); with
    ``params["reload"]`` also ``codes_reload`` / ``expected_reload`` from
    ``random_codes(cfg, seed + 1)``.

    ``sample_coverage``: also sample the stimulus into the functional coverage
    (:mod:`verif.coverage`): the recombination config; the generator's
    code sets (zero / max codes) and the full-precision values entering its
    requantizer (ties of the rounding mode, saturation), per layer.
    """
    import numpy as np

    from insitugen.files import save_npz

    if cfg.BLOCK == "recombination":
        arrays, tb = _recombination_stimulus(cfg, params)
        if sample_coverage:
            from verif.coverage import sample_recombination_config
            sample_recombination_config(cfg)
    else:
        arrays, tb = _generator_stimulus(cfg, params, sample_coverage)
    save_npz(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return {"stimulus": str(path), "tb": tb}


def _operand_extremes(op) -> dict[str, int]:
    """Named extreme inputs of an operand: codes for ``odd``, integers for ``twos``."""
    if op.encoding == "odd":
        return {"max": (1 << op.bits) - 1, "min": 0}
    lo, hi = op.range
    return {"max": hi, "min": lo, "zero": 0}


def _random_operands(op, shape, gen):
    import torch

    if op.encoding == "odd":
        return torch.randint(0, 1 << op.bits, shape, generator=gen, dtype=torch.int64)
    lo, hi = op.range
    return torch.randint(lo, hi + 1, shape, generator=gen, dtype=torch.int64)


def _recombination_stimulus(cfg, params: dict):
    import numpy as np
    import torch

    from golden import arith
    from insitugen import widths as W

    wd = cfg.widths
    n, T = wd.count, cfg.terms
    gen = torch.Generator().manual_seed(int(params["seed"]) % (1 << 63))
    names: list[str] = []
    vecs: list[list[int]] = []
    exact: list[int | None] = []

    def add_products(name, a, x):
        parts = torch.stack(arith.sliced_partials(a, x, cfg.a, cfg.x, dim=-1), dim=-1)
        for row, p in enumerate(parts.tolist()):
            names.append(name if a.shape[0] == 1 else f"{name}[{row}]")
            vecs.append(p)
        exact.extend((arith.operand_value(a, cfg.a) * arith.operand_value(x, cfg.x))
                     .sum(-1).tolist())

    for an, av in _operand_extremes(cfg.a).items():
        for xn, xv in _operand_extremes(cfg.x).items():
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
    n_random = int(params.get("vectors", 256))
    a = _random_operands(cfg.a, (n_random, T), gen)
    x = _random_operands(cfg.x, (n_random, T), gen)
    add_products("random", a, x)

    expected = arith.recombine(torch.tensor(vecs, dtype=torch.int64), wd.shifts).tolist()
    # the stimulus itself is sound: recombined partials equal the exact sums
    for i, (e, t) in enumerate(zip(expected, exact, strict=True)):
        if t is not None and e != t:
            raise VerificationError(f"recombination stimulus {names[i]}: golden "
                                    f"recombination {e} != exact sum {t}")
    arrays = {"names": np.array(names), "vectors": np.array(vecs, dtype=np.int64),
              "expected": np.array(expected, dtype=np.int64)}
    tb = {"mode": cfg.mode, "count": n, "partial_bits": wd.partial_bits,
          "serial_order": list(wd.serial_order), "pipeline_stages": cfg.pipeline_stages,
          "corner_cases": len(names) - n_random}
    return arrays, tb


def _generator_stimulus(cfg, params: dict, sample_coverage: bool = False):
    import numpy as np

    from golden.codes import load_codes, load_order, random_codes
    from golden.generate import generate

    seed = int(params["seed"])
    layers = {"": load_codes(cfg, params["codes"]) if params.get("codes")
              else random_codes(cfg, seed)}
    if params.get("reload"):
        layers["_reload"] = random_codes(cfg, seed + 1)
    arrays = {}
    for suffix, codes in layers.items():
        arrays[f"codes{suffix}"] = load_order(cfg, codes)
        arrays[f"expected{suffix}"] = generate(cfg, codes).numpy().astype(np.int64).reshape(-1)
        if sample_coverage:
            _sample_generator_layer(cfg, codes)
    return arrays, generator_tb_figures(cfg)


def _sample_generator_layer(cfg, codes) -> None:
    from golden.generate import full_precision
    from verif import coverage as cov

    cov.sample_generator_config(cfg)
    for name, tensor in codes.items():
        cov.sample_codes(name, tensor, cfg.code_bits[name])
    cov.sample_requant(full_precision(cfg, codes), shift=cfg.shift, rounding=cfg.rounding,
                       out_bits=cfg.out_bits)


def generator_tb_figures(cfg) -> dict:
    """The design figures the generator testbench's scoreboard needs (``params["tb"]``)."""
    from insitugen.schedule import Schedule

    model = Schedule(cfg)
    return {"lanes": cfg.lanes, "beat": model.beat, "weight_bits": cfg.weight_bits,
            "row_weights": cfg.in_channels * cfg.K, "weight_shape": list(cfg.weight_shape),
            "output_order": cfg.order,
            "n_beats": model.n_beats, "row_beats": model.row_beats,
            "rounds_per_row": model.rounds_per_row,
            "steps_per_round": model.steps_per_round, "cycles_per_pass": model.cycles_per_pass,
            "longest_beat_gap": model.longest_beat_gap, "latency": model.latency,
            "pass_cycles": model.pass_cycles, "pass_period": model.pass_period,
            "cycles_lower_bound": model.cycles_lower_bound,
            "last_bit": stream_last_bits(cfg)["weights"]}
