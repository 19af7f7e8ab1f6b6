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


def add_target_args(p: argparse.ArgumentParser) -> None:
    """``--target`` / ``--device`` / ``--freq`` of the commands that synthesize."""
    p.add_argument("--target", choices=LazyChoices("synth.fpga", "TARGETS"), default="asic",
                   metavar="TARGET",
                   help="asic (Yosys area, delay estimate) or an FPGA: resources, and nextpnr "
                        "place-and-route Fmax on ecp5/ice40/gowin; %(choices)s (default: "
                        "%(default)s)")
    p.add_argument("--device", help="FPGA device for place and route (default: the smallest "
                                    "that fits), e.g. 25k/45k/85k (ecp5), hx1k/up5k/hx8k "
                                    "(ice40), 9k/20k/138k (gowin)")
    p.add_argument("--freq", type=float, help="target frequency in MHz given to nextpnr "
                                              "(default: 200 on ecp5 and gowin, 100 on ice40)")


def check_target_args(args: argparse.Namespace) -> None:
    """One line for options that do not go with the target (before any work), and the
    FPGA target's tools (Yosys is checked by the command)."""
    if args.target == "asic":
        for opt in ("device", "freq"):
            if getattr(args, opt, None) is not None:
                raise ConfigError(f"--{opt} is for an FPGA --target (ecp5, ice40, gowin), not "
                                  f"asic")
        return
    if getattr(args, "liberty", None):
        raise ConfigError(f"--liberty is for --target asic, not {args.target}")
    if args.freq is not None and not args.freq > 0:
        raise ConfigError(f"--freq must be a frequency in MHz > 0, not {args.freq}")
    from synth.fpga import PNR_FAMILIES
    if args.target in PNR_FAMILIES:
        from eda.nextpnr import nextpnr_command
        nextpnr_command(args.target)         # a missing nextpnr: one line naming the package
    elif args.device is not None or args.freq is not None:
        raise ConfigError(f"--device and --freq need a target with place and route "
                          f"({', '.join(PNR_FAMILIES)}), not {args.target}")
