# SPDX-License-Identifier: Apache-2.0
"""Pieces several command modules share (light: argparse and the base floor only)."""

from __future__ import annotations

import argparse
import importlib
from typing import Any, Iterator

from insitugen.config import Config, GeneratorConfig, default_config, load_config
from insitugen.errors import ConfigError


class LazyChoices:
    """``argparse`` choices read from ``module.attribute`` when first needed: when a
    value is checked or that option's help is printed, never when the parser is built.
    The choices keep one source (the room that defines them) while ``insitugen --help``
    imports no room."""

    def __init__(self, module: str, attribute: str):
        self.module, self.attribute = module, attribute

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(importlib.import_module(self.module), self.attribute))

    def __contains__(self, value: object) -> bool:
        return value in self._values()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values())


def config_or_default(path: str | None) -> Config:
    """The config file at ``path``, or the built-in default config when none is given."""
    return default_config() if path is None else load_config(path)


def need_generator(cfg: Config, what: str) -> GeneratorConfig:
    if not isinstance(cfg, GeneratorConfig):
        raise ConfigError(f"'{what}' needs a generator config (block = \"generator\"), "
                          f"not block = \"{cfg.BLOCK}\"")
    return cfg


def add_simulator_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--simulator", choices=LazyChoices("verif.simulators", "SIMULATORS"),
                   default="verilator", metavar="SIMULATOR",
                   help="HDL simulator: %(choices)s (default: %(default)s)")


def add_sim_args(p: argparse.ArgumentParser) -> None:
    """Options of every command that runs the cocotb testbench."""
    add_simulator_arg(p)
    p.add_argument("--seed", type=int, default=None,
                   help="random seed of stimulus and back-pressure (default: random, printed)")
    p.add_argument("--waves", nargs="?", const=True, default=None, metavar="PATH",
                   help="dump waveforms to PATH (.vcd on Verilator, .fst on Icarus; default: "
                        "beside --out, else insitugen_out/<config name>.vcd) and print it")
    p.add_argument("--backpressure", choices=LazyChoices("verif.backpressure", "BACKPRESSURE"),
                   default="random", metavar="PATTERN",
                   help="output ready pattern and input valid gaps: %(choices)s "
                        "(default: %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show the simulator's and cocotb's own output (default: in the build "
                        "folder's sim.log)")
    p.add_argument("--build-dir", help="simulator build folder (default: a cache folder per "
                                       "config under $INSITUGEN_CACHE or ~/.cache/insitugen)")
