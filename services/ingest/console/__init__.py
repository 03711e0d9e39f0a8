"""The console: a small static page over the read API, served at `/` by whatever serves that
API (`polku ingest`, `polku dev`).

Plain files, no build step: `static/index.html`, ES modules under `static/js/`, a stylesheet,
and Apache ECharts vendored under `static/vendor/` (docs/console.md). This module only serves
them, with headers that keep the page current and keep it from loading or running anything
from elsewhere; everything the page shows comes from the read and analytics APIs, which check
the read token themselves. The files hold no data, so they are served without a token.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"
# Where the page's files are served; the page itself is at `/`.
PREFIX = "/console"

# The page's own files are revalidated on every load (a 304 when unchanged), so an upgrade of
# Polku is never met by yesterday's scripts. Vendored libraries carry their version in their
# path and never change under it.
REVALIDATE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"

# The page shows personal data: it may load scripts, styles and data from this origin only, and
# no other site may frame it. ECharts sets inline styles on the elements it draws, hence
# 'unsafe-inline' for styles (never for scripts).
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class ConsoleFiles(StaticFiles):
    """The static files, with the console's cache and security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["cache-control"] = (
            IMMUTABLE if path.startswith("vendor/") else REVALIDATE
        )
        response.headers.update(SECURITY_HEADERS)
        return response


def add_console_routes(app: FastAPI) -> None:
    """Serve the page at `/` and its files under `/console/`."""

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html",
                            headers={"cache-control": REVALIDATE, **SECURITY_HEADERS})

    app.mount(PREFIX, ConsoleFiles(directory=STATIC), name="console")
