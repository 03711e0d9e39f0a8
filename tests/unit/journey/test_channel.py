"""Specification of how a touchpoint's channel is derived."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
        # Without context.campaign, the UTM tags of the page URL stand in for it.
        ({}, {"page": {"url": "https://x.fi/?utm_source=google&utm_medium=cpc"}}, "paid_search"),
        ({"url": "https://x.fi/kampanja?utm_medium=Newsletter"}, {}, "email"),
        ({}, {"page": {"url": "https://x.fi/?utm_source=linkedin&utm_campaign=kevat"}}, "social"),
        ({}, {"page": {"url": "x.fi/hinnat?utm_source=partner%20portal"}}, "partner portal"),
        (
            {"url": "https://x.fi/?utm_medium=display"},
            {"page": {"url": "https://x.fi/?utm_medium=cpc"}},
            "paid_search",
        ),
        # ... only when the campaign has neither medium nor source; it beats the referrer.
        (
            {},
            {"campaign": {"source": "bing"}, "page": {"url": "https://x.fi/?utm_medium=email"}},
            "search",
        ),
        (
            {},
            {"campaign": {"name": "kevat"}, "page": {"url": "https://x.fi/?utm_medium=email"}},
            "email",
        ),
        (
            {},
            {"page": {"url": "https://x.fi/?utm_medium=cpc",
                      "referrer": "https://news.example.org/a"}},
            "paid_search",
        ),
        (
            {},
            {"page": {"url": "https://x.fi/?utm_medium=&utm_source=",
                      "referrer": "https://news.example.org/a"}},
            "referral",
        ),
    ],
)
def test_channel_derivation(
    properties: dict[str, Any], context: dict[str, Any], channel: str
) -> None:
    assert derive_channel(properties, context) == channel


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1/?utm_medium=cpc",  # an unclosed IPv6 host: urlsplit raises
        "?utm_medium",
        "https://x.fi/?%zz=%zz&&==&utm_medium",
        "://",
        "",
        "https://x.fi/#?utm_medium=cpc",
        " " * 100,
    ],
)
def test_a_garbage_page_url_has_no_campaign(url: str) -> None:
    assert derive_channel({}, {"page": {"url": url}}) == "direct"


@pytest.mark.parametrize("url", [None, 42, ["https://x.fi/?utm_medium=cpc"], {"a": 1}])
def test_a_page_url_that_is_not_text_is_ignored(url: object) -> None:
    assert derive_channel({"url": url}, {"page": {"url": url}}) == "direct"


@given(st.text(alphabet=st.sampled_from("hts:/[]?&=%#@.x_utmedium ") | st.characters()))
def test_no_page_url_makes_channel_derivation_raise(url: str) -> None:
    assert derive_channel({"url": url}, {"page": {"url": url}})
