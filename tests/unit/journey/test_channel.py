"""Specification of how a touchpoint's channel is derived."""

from __future__ import annotations

from typing import Any

import pytest

from shared.journey import derive_channel


@pytest.mark.parametrize(
    ("properties", "context", "channel"),
    [
        ({"channel": "Store"}, {"campaign": {"medium": "cpc"}}, "store"),
        ({}, {"campaign": {"medium": "cpc", "source": "google"}}, "paid_search"),
        ({}, {"campaign": {"medium": "E-mail"}}, "email"),
        ({}, {"campaign": {"medium": "podcast"}}, "podcast"),
        ({}, {"campaign": {"source": "linkedin"}}, "social"),
        ({}, {"campaign": {"source": "bing"}}, "search"),
        ({}, {"campaign": {"source": "partner-portal"}}, "partner-portal"),
        ({}, {"page": {"referrer": "https://www.google.fi/search?q=crm"}}, "search"),
        ({}, {"page": {"referrer": "https://duckduckgo.com/"}}, "search"),
        ({}, {"page": {"referrer": "https://m.facebook.com/story"}}, "social"),
        ({}, {"page": {"referrer": "https://t.co/abc"}}, "social"),
        ({}, {"page": {"referrer": "https://news.example.org/a"}}, "referral"),
        (
            {},
            {"page": {"referrer": "https://shop.example/a", "url": "https://shop.example/b"}},
            "internal",
        ),
        ({"referrer": "https://www.linkedin.com/feed"}, {}, "social"),
        ({}, {"page": {"referrer": ""}}, "direct"),
        ({}, {"channel": "server"}, "direct"),
        ({}, {}, "direct"),
    ],
)
def test_channel_derivation(
    properties: dict[str, Any], context: dict[str, Any], channel: str
) -> None:
    assert derive_channel(properties, context) == channel
