"""Shared fixtures. Fixture modules live in tests/fixtures/ and are loaded here."""

import os
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.ports",
    "tests.fixtures.broker",
    "tests.fixtures.database",
    "tests.fixtures.stack",
    "tests.fixtures.bank",
    "tests.fixtures.staff",
    "tests.fixtures.webhook",
]

SHARED_DATA = Path(
    os.environ.get("LIFECERT_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$LIFECERT_TEST_DATA``); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"test data not found at {SHARED_DATA}: set LIFECERT_TEST_DATA to its folder")
    return SHARED_DATA
