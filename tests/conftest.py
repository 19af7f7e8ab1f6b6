"""Shared pytest setup: slow tests run only with --runslow; helpers to find shared/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (full-size layers, long sweeps)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


def shared_pdk_liberty() -> Path | None:
    """The IHP sg13g2 liberty in ../shared/pdk beside the repo (or $INSITUGEN_LIBERTY)."""
    env = os.environ.get("INSITUGEN_LIBERTY")
    if env and Path(env).is_file():
        return Path(env)
    lib = REPO_ROOT.parent / "shared" / "pdk" / "sg13g2_stdcell_typ_1p20V_25C.lib"
    return lib if lib.is_file() else None


@pytest.fixture
def liberty_path() -> Path:
    lib = shared_pdk_liberty()
    if lib is None:
        pytest.skip("no liberty: ../shared/pdk/sg13g2_stdcell_typ_1p20V_25C.lib is absent "
                    "and INSITUGEN_LIBERTY is unset")
    return lib
