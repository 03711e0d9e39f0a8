"""Fixtures of the end-to-end tests that run in both modes (tests/deployments.py)."""

from __future__ import annotations

import pytest

from shared.settings import DatabaseSettings
from tests.deployments import MODES


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_for(mode: str, request: pytest.FixtureRequest) -> DatabaseSettings | None:
    """The distributed mode's stager runs on the real clock: it gets a database of its own."""
    if mode == "embedded":
        return None
    return request.getfixturevalue("own_database")  # type: ignore[no-any-return]
