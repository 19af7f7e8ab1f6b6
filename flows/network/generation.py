"""The generator's cycles and code-memory reads for one layer config.

One place asks the hardware for its schedule: everything in the network report that
depends on how the generator sequences a layer goes through the functions here, which
read the figures of :class:`hdl.generator.Generator` (the same arithmetic its RTL
implements and its testbench checks cycle for cycle). Swapping the source (e.g. to a
schedule class shared by every generator form) is a change to this module only.
"""

from __future__ import annotations

from dataclasses import dataclass

from insitugen.config import GeneratorConfig


def _figures(cfg: GeneratorConfig):
    from hdl.generator import Generator

    return Generator.figures(cfg)


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

    The schedule runs ``n_beats`` rounds; within a round, per basis row ``o`` (``Bo`` of
    them with level 2 on, else one: ``o = j``) and, with level 1 on, per basis kernel
    ``i < Bi``, the engine steps through the slice pairs of the same words. Gated, a
    word is read once per use, not once per step:

    * level 1 on: per (round, o, i) one ``B`` word (``K * qb`` bits) and the two ``U``
      rows of the channel window (``NB * qu`` bits each);
    * level 1 off: per (round, o) one ``B`` word of ``lanes * qb`` bits;
    * level 2 on: per (round, o) one ``V`` word (``qv`` bits), broadcast to every lane.

    Word widths are those of :attr:`hdl.generator.Generator.memory_shapes`.
    """
    fig = _figures(cfg)
    shapes = fig.memory_shapes
    rounds = fig.n_beats
    o_loop = cfg.Bo if cfg.level2 else 1
    words: dict[str, int] = {}
    if cfg.level1:
        words["B"] = rounds * o_loop * cfg.Bi
        words["U"] = 2 * rounds * o_loop * cfg.Bi
    else:
        words["B"] = rounds * o_loop
    if cfg.level2:
        words["V"] = rounds * o_loop
    return CodeReads(words=words, word_bits={k: shapes[k][1] for k in words})


__all__ = ["generation_cycles", "generation_cycles_lower_bound", "code_reads", "CodeReads"]
