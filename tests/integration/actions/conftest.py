"""Every actions test starts with no deliveries left by an earlier one, and the signing secret
its journeys name in the environment."""

from __future__ import annotations

import pytest

from tests.actions_harness import SECRET, SECRET_ENV


@pytest.fixture(autouse=True)
def _no_earlier_deliveries(no_earlier_deliveries: None) -> None:
    """(tests/conftest.py's fixture, for every test in this folder)"""


@pytest.fixture(autouse=True)
def signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
