# SPDX-License-Identifier: Apache-2.0
"""The ports and fixed figures of a block, read without building its component.

:func:`port_view` returns a plain interface object (``Signature.create()``), not an
Elaboratable, so reading a block's ports for the sidecar JSON or a report never
leaves an unused component behind.
"""

from __future__ import annotations

from amaranth.lib import wiring

from insitugen.config import Config, GeneratorConfig, RecombinationConfig
from insitugen.errors import ConfigError
from insitugen.schedule import Schedule

__all__ = ["port_view"]


def port_view(cfg: Config) -> wiring.PureInterface:
    """An interface with the block's ports (``.signature``, one attribute per port) and
    ``latency``; for a generator also ``schedule`` (its :class:`Schedule`)."""
    if isinstance(cfg, RecombinationConfig):
        from .recombination import recombination_signature
        view = recombination_signature(cfg).create()
        view.latency = cfg.pipeline_stages
        return view
    if isinstance(cfg, GeneratorConfig):
        from .generator import generator_signature
        view = generator_signature(cfg).create()
        view.schedule = Schedule(cfg)
        view.latency = view.schedule.latency
        return view
    raise ConfigError(f"no hardware block for config {cfg!r}: expected a generator or "
                      f"recombination config")
