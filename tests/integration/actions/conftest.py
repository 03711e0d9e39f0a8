"""Every actions test starts with no deliveries left by an earlier one, and the signing secret
its journeys name in the environment."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.actions_harness import SECRET, SECRET_ENV, clear_deliveries


@pytest.fixture(autouse=True)
async def no_earlier_deliveries(engine: AsyncEngine) -> None:
    await clear_deliveries(engine)


@pytest.fixture(autouse=True)
def signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
