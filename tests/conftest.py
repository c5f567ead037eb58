"""Shared fixtures: the real measured data in ../shared/data (read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def nac_dir(shared_data) -> Path:
    d = shared_data / "powgen-nac"
    if not d.is_dir():
        pytest.skip(f"{d} is absent")
    return d


def pytest_configure(config):
    """Tests never read or write a persistent JAX compilation cache (neither in this process nor in
    the CLI subprocesses they start), unless a test sets LAYERSCOPE_JAX_CACHE itself: cached XLA:CPU
    executables read back in a long test process crashed CI (see layerscope._jaxcache)."""
    import os

    os.environ["LAYERSCOPE_JAX_CACHE"] = "off"
