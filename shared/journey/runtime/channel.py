"""Which marketing channel brought a touchpoint, derived from its properties and Segment context.

Order of evidence, first that applies wins:

1. `properties.channel` set by the sender (lower-cased) - the sender knows best;
2. the campaign's medium (UTM medium), normalised (cpc -> paid_search, e-mail -> email, ...);
3. the campaign's source (UTM source): a search engine -> search, a social network -> social,
   anything else -> the source itself, lower-cased;
4. the referrer (`context.page.referrer`, else `properties.referrer`): a search engine -> search,
   a social network -> social, the same site as the page -> internal, another site -> referral;
5. otherwise direct.

The campaign is `context.campaign` when it has a medium or a source; otherwise `utm_medium` and
`utm_source` from the query string of the page's URL (`context.page.url`, else `properties.url`).
Segment's analytics.js copies those into `context.campaign`, but other senders (server-side
calls, the mobile SDKs, a hand-written `fetch`) leave them in the URL, where a visit that came
from an ad would otherwise be `direct`. A URL that does not parse has no campaign.

Segment's `context.channel` ("browser", "server", "mobile") names the transport, not the marketing
channel, so it is deliberately ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DIRECT = "direct"

_MEDIUMS = {
    "cpc": "paid_search",
    "ppc": "paid_search",
    "paidsearch": "paid_search",
    "paid_search": "paid_search",
    "sem": "paid_search",
    "display": "display",
    "banner": "display",
    "cpm": "display",
    "social": "social",
    "social-media": "social",
    "social_media": "social",
    "paid_social": "paid_social",
    "paid-social": "paid_social",
    "email": "email",
    "e-mail": "email",
    "newsletter": "email",
    "organic": "search",
    "seo": "search",
    "referral": "referral",
    "affiliate": "affiliate",
    "print": "print",
    "qr": "print",
    "event": "event",
}

_SEARCH_ENGINES = (
    "google",
    "bing",
    "duckduckgo",
    "yahoo",
    "yandex",
    "baidu",
    "ecosia",
    "startpage",
)
# Short hosts whose labels are too generic to match on their own.
_SOCIAL_HOSTS = ("t.co", "x.com", "lnkd.in", "fb.me", "youtu.be")
_SOCIAL_NETWORKS = (
    "facebook",
    "instagram",
    "linkedin",
    "twitter",
    "youtube",
    "tiktok",
    "reddit",
    "pinterest",
    "threads",
    "bsky",
    "mastodon",
)


def derive_channel(properties: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """The channel of one touchpoint; pure, so the same message always gets the same channel."""
    explicit = properties.get("channel")
    if isinstance(explicit, str) and explicit.strip():
        return explicit.strip().lower()
    page = _mapping(context.get("page"))
    page_url = _text(page.get("url")) or _text(properties.get("url"))
    medium, source = _campaign(_mapping(context.get("campaign")), page_url)
    if medium:
        return _MEDIUMS.get(medium, medium)
    if source:
        return _classify_name(source) or source
    referrer = _text(page.get("referrer")) or _text(properties.get("referrer"))
    if referrer:
        return _classify_referrer(referrer, page_url)
    return DIRECT


def _campaign(campaign: Mapping[str, Any], page_url: str) -> tuple[str, str]:
    """(medium, source) of the campaign, from `context.campaign`, else the page URL's UTM tags."""
    medium, source = _text(campaign.get("medium")), _text(campaign.get("source"))
    if medium or source or not page_url:
        return medium, source
    tags = _query(page_url)
    return _text(tags.get("utm_medium")), _text(tags.get("utm_source"))


def _query(url: str) -> dict[str, str]:
    """The URL's query parameters, the first value of each; none for a URL that does not parse."""
    try:
        pairs = parse_qsl(urlsplit(url).query)
    except ValueError:
        return {}
    tags: dict[str, str] = {}
    for name, value in pairs:
        tags.setdefault(name, value)
    return tags


def _classify_referrer(referrer: str, page_url: str) -> str:
    host = _host(referrer)
    if not host:
        return DIRECT
    if page_url and _host(page_url) == host:
        return "internal"
    return _classify_host(host) or "referral"


def _classify_host(host: str) -> str | None:
    # Labels rather than suffixes, so google.fi, m.facebook.com and lnkd.in all classify.
    if host in _SOCIAL_HOSTS:
        return "social"
    labels = host.split(".")
    if any(label in _SEARCH_ENGINES for label in labels[:-1]):
        return "search"
    if any(label in _SOCIAL_NETWORKS for label in labels[:-1]):
        return "social"
    return None


def _classify_name(name: str) -> str | None:
    if "." in name:
        return _classify_host(name)
    if name in _SEARCH_ENGINES:
        return "search"
    if name in _SOCIAL_NETWORKS:
        return "social"
    return None


def _host(url: str) -> str:
    if "//" not in url:
        url = "//" + url
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return ""
    host = host or ""
    return host.removeprefix("www.")


def _text(value: object) -> str:
    return value.strip().lower() if isinstance(value, str) else ""


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
