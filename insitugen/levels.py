# SPDX-License-Identifier: Apache-2.0
"""The two generation levels of MLG: one rule for the hardware config and the golden layers.

``base_in`` (Bi) > 0 turns the intra-kernel level on (``W1 = U x B``, ``U`` present),
``base_out`` (Bo) > 0 the cross-kernel level (``W = V x W1``, ``V`` present); 0 turns
a level off. With the cross level off the basis has ``out_channels`` rows.
:class:`GenerationLevels` is mixed into :class:`insitugen.config.GeneratorConfig` and
:class:`golden.mlg.MLGLayerBase`, which both carry ``out_channels``, ``base_in`` and
``base_out``.
"""

from __future__ import annotations

__all__ = ["GenerationLevels"]


class GenerationLevels:
    """Level flags, basis size and code shapes from ``out_channels``, ``base_in`` and
    ``base_out`` (attributes of the class it is mixed into)."""

    # Declared for type checkers only: no values, so a dataclass (GeneratorConfig) does not
    # take them as fields and nn.Module (MLGLayerBase) gets no class attributes.
    out_channels: int
    base_in: int
    base_out: int

    @property
    def level1(self) -> bool:
        """Intra-kernel generation (``U``) on."""
        return self.base_in > 0

    @property
    def level2(self) -> bool:
        """Cross-kernel generation (``V``) on."""
        return self.base_out > 0

    @property
    def generated(self) -> bool:
        """At least one level on (otherwise the whole weight is stored, quantized)."""
        return self.level1 or self.level2

    @property
    def Bo(self) -> int:
        """Rows of the basis: ``base_out``, or ``out_channels`` when level 2 is off."""
        return self.base_out if self.level2 else self.out_channels

    @property
    def Bi(self) -> int:
        return self.base_in

    def level_shapes(self, in_channels: int, kernel_area: int) -> dict[str, tuple[int, ...]]:
        """Shapes of the stored tensors for ``in_channels`` (per group) and ``kernel_area``
        (``K = k * k``): ``B`` always, ``U`` / ``V`` when their level is on."""
        q, K = in_channels, kernel_area
        shapes: dict[str, tuple[int, ...]] = {
            "B": (self.Bo, self.Bi, K) if self.level1 else (self.Bo, q, K)}
        if self.level1:
            shapes["U"] = (self.Bo, q, self.Bi)
        if self.level2:
            shapes["V"] = (self.out_channels, self.Bo)
        return shapes
