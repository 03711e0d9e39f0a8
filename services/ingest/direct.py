"""Serves the tracking routes (POST /v1/track ... /v1/batch) straight from ASGI.

FastAPI's routing costs more than the work of a single-event request: matching the path
against every route of the app, solving the endpoint's (empty) dependencies, two exit stacks
and an exception-handling wrapper took ~80 of the ~140 µs of CPU the app spent per event
(measured in-process, Kafka left out). This middleware sits inside the app's own
middleware (errors, metrics), takes a POST whose path is exactly one of the tracking routes,
calls that route's endpoint itself and turns an IngestError into its answer with the same
`refused` handler the app registers. Everything else, including other methods on these
paths (405), goes on to FastAPI, which still serves these routes there (and documents them).
"""

from __future__ import annotations

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.ingest import routes
from services.ingest.errors import IngestError


class DirectRoutes:
    """ASGI middleware answering POSTs to the routes of `routes.router` without FastAPI's
    routing. Added with `app.add_middleware(DirectRoutes)`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Path -> route; the endpoints take the Request alone (routes.py reads the rest).
        self._routes: dict[str, APIRoute] = {
            route.path: route for route in routes.router.routes
            if isinstance(route, APIRoute) and "POST" in (route.methods or ())
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        # Behind a root_path the path is matched as FastAPI does; leave that case to it.
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            route = self._routes.get(scope["path"])
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # what FastAPI sets, and what the request metrics label by
        request = Request(scope, receive)
        try:
            response = await route.endpoint(request)
        except IngestError as exc:
            response = await routes.refused(request, exc)
        await response(scope, receive, send)
