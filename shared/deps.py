"""Typed parts of a FastAPI app: the one object a service's routes serve from.

A service hands its routes one frozen dataclass (its engine, settings, clock, ...) once, when
the app starts; routes get it back typed, through FastAPI's `Depends`, or with `of(app)` where a
dependency would cost too much per request (ingest's tracking routes). Nothing else is read off
`app.state`.
"""

from __future__ import annotations

from typing import Generic, TypeVar, cast

from fastapi import FastAPI, Request

T = TypeVar("T")


class AppPart(Generic[T]):
    """One typed object of an app, kept on `app.state` under `name`; a FastAPI dependency."""

    def __init__(self, name: str) -> None:
        self.name = name

    def provide(self, app: FastAPI, value: T) -> None:
        """Hand the routes of `app` their object (in its lifespan, before serving)."""
        setattr(app.state, self.name, value)

    def of(self, app: FastAPI) -> T:
        return cast(T, getattr(app.state, self.name))

    def __call__(self, request: Request) -> T:
        return self.of(request.app)
