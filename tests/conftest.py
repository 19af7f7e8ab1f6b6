# SPDX-License-Identifier: Apache-2.0
"""Shared pytest setup: slow tests run only with --runslow; the liberty fixtures (the
shipped IHP library, the tiny test library); the functional coverage report of the run.

Functional coverage (``verif.coverage``): every simulation that passes
writes its coverage to ``<coverage dir>/parts/session-<pid>`` (``run_sim`` reads
``$INSITUGEN_COVERAGE_DIR``, which this file sets in the main process; xdist
workers inherit it); at the end the main process merges the parts into
``functional_coverage.json`` and ``functional_coverage.txt``, removes its parts
folder and prints the summary, naming any bin not hit. The folder is
``coverage_report/`` at the repo root unless ``--coverage-dir`` says otherwise. When
the whole default suite ran (no path, ``-k`` or ``-m`` selection) and passed, a missing
bin fails the run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (full-size layers, long sweeps)")
    parser.addoption("--coverage-dir", default=str(REPO_ROOT / "coverage_report"),
                     help="where the functional coverage report of the run is written "
                          "(default: coverage_report/ at the repo root)")


def _coverage_parts(config) -> Path:
    """This session's folder of per-run coverage files: one per pytest session (its main
    process's pid), so two test runs at once never mix or delete each other's files.
    xdist workers inherit it through the environment the main process set."""
    from verif.runner import COVERAGE_ENV

    if hasattr(config, "workerinput") and os.environ.get(COVERAGE_ENV):
        return Path(os.environ[COVERAGE_ENV])
    return Path(config.getoption("--coverage-dir")).resolve() / "parts" / f"session-{os.getpid()}"


def pytest_configure(config):
    from synth.report import SYNTH_CACHE_ENV
    from verif.runner import COVERAGE_ENV

    # every test that synthesizes runs Yosys (a cached result would skip the very runs a
    # test of timeouts, cancelling or tool errors is about); tests/test_synth_cache.py
    # turns the cache on where it is the subject. Xdist workers inherit this.
    os.environ.setdefault(SYNTH_CACHE_ENV, "0")

    parts = _coverage_parts(config)
    if not hasattr(config, "workerinput"):
        shutil.rmtree(parts, ignore_errors=True)    # a leftover of a reused pid
        parts.mkdir(parents=True)
    os.environ[COVERAGE_ENV] = str(parts)


def _whole_default_suite(config) -> bool:
    opt = config.option
    selected = [a for a in config.args if Path(a).resolve() != REPO_ROOT / "tests"]
    return not selected and not opt.keyword and not opt.markexpr


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput"):
        return
    parts = _coverage_parts(config)
    if not any(parts.glob("*.json")):
        return
    from verif.coverage import write_folder_report

    folder = parts.parent.parent
    merged = write_folder_report(parts, folder)
    shutil.rmtree(parts, ignore_errors=True)                   # merged: no longer needed
    config._insitugen_coverage = (merged, folder)
    if merged["missing"] and exitstatus == 0 and _whole_default_suite(config):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        config._insitugen_coverage_failed = True


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    found = getattr(config, "_insitugen_coverage", None)
    if found is None:
        return
    from verif.coverage import format_summary

    merged, folder = found
    tr = terminalreporter
    tr.section("functional coverage")
    tr.write(format_summary(merged))
    from verif.coverage import REPORT_STEM

    tr.write_line(f"report: {folder / (REPORT_STEM + '.txt')} (and .json)")
    if getattr(config, "_insitugen_coverage_failed", False):
        tr.write_line("FAILED: the whole default suite must hit every functional coverage "
                      "bin; the missing ones are listed above", red=True)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


#: Test data kept in the repository (tests/data/README.md says what each file is).
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def liberty_path() -> Path:
    """The IHP SG13G2 typical liberty shipped in the package (synth/pdk)."""
    from synth.liberty import resolve_liberty

    return resolve_liberty("ihp")


@pytest.fixture
def tiny_liberty_path() -> Path:
    """A hand-written eight-cell liberty with round numbers (tests/data/tiny.lib)."""
    return DATA / "tiny.lib"
