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
    """Tests never read or write the user's persistent JAX compilation cache (neither in this process
    nor in the CLI subprocesses they start), unless a test sets LAYERSCOPE_JAX_CACHE itself: results
    and timings must not depend on what earlier runs left in ~/.cache."""
    import os

    os.environ["LAYERSCOPE_JAX_CACHE"] = "off"


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_kernels():
    """Drop JAX's compiled executables after every test module.

    Each XLA:CPU executable holds ~6 memory mappings while JAX's caches keep it alive (measured here:
    200 small jitted functions take a process from 425 to 1688 mappings; ``jax.clear_caches()`` brings
    it back to 508). One pytest process running the whole suite compiles thousands of kernels and
    reached the kernel's limit (``vm.max_map_count`` = 65530): CI died with SIGSEGV / SIGABRT inside
    XLA compilation (and once in executable deserialisation) at the same NAC test each time, which no
    test run alone reproduces. Clearing per module bounds the count by the largest module."""
    yield
    import sys

    if "jax" in sys.modules:
        import gc

        sys.modules["jax"].clear_caches()
        gc.collect()
