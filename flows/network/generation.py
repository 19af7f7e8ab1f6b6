# SPDX-License-Identifier: Apache-2.0
"""The generator's cycles and code-memory reads for one layer config.

One place asks the hardware for its schedule: everything in the network report that
depends on how the generator sequences a layer goes through the functions here, which
read :class:`insitugen.schedule.Schedule`, the schedule arithmetic of every generator
form that the RTL implements and its testbench checks cycle for cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from insitugen.config import GeneratorConfig


def _figures(cfg: GeneratorConfig):
    from insitugen.schedule import Schedule

    return Schedule(cfg)


def generation_cycles(cfg: GeneratorConfig) -> int:
    """Cycles of one generation pass of the layer, output always ready: from the clock edge
    that samples ``start`` to the handshake of the last beat (``pass_cycles``)."""
    return _figures(cfg).pass_cycles


def generation_cycles_lower_bound(cfg: GeneratorConfig) -> int:
    """``ceil(weights * engine multiplies per weight / lanes)`` (the MAC lower bound)."""
    return _figures(cfg).cycles_lower_bound


@dataclass(frozen=True)
class CodeReads:
    """Code-memory reads of one pass with read gating: each word read once per use."""

    words: dict[str, int]          # memory name -> words read per pass
    word_bits: dict[str, int]      # memory name -> bits per word

    @property
    def bits(self) -> int:
        return sum(self.words[k] * self.word_bits[k] for k in self.words)


def code_reads(cfg: GeneratorConfig) -> CodeReads:
    """Words read from each code memory in one pass, with read gating.

    The schedule runs ``n_rounds`` rounds; within a round, per basis row ``o`` (``Bo`` of
    them with level 2 on, else one: ``o = j``) and, with level 1 on, per basis kernel
    ``i < Bi``, the engine steps through the slice pairs of the same words. Gated, a
    word is read once per use, not once per step:

    * level 1 on: per (round, o, i) one ``B`` word (``K * qb`` bits) and the two ``U``
      rows of the channel window (``NB * qu`` bits each);
    * level 1 off: per (round, o) one ``B`` word of ``lanes * qb`` bits;
    * level 2 on: per (round, o) one ``V`` word (``qv`` bits), broadcast to every lane.

    Word widths and counts are those of :class:`insitugen.schedule.Schedule`
    (``memory_shapes``, ``reads_per_pass``), which the RTL's read enables are tested
    against.
    """
    fig = _figures(cfg)
    shapes = fig.memory_shapes
    words = dict(fig.reads_per_pass)
    return CodeReads(words=words, word_bits={k: shapes[k][1] for k in words})


__all__ = ["generation_cycles", "generation_cycles_lower_bound", "code_reads", "CodeReads"]
