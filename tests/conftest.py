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
