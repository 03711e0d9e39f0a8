"""Domain exceptions of the journey engine, each carrying what a caller needs to report it."""

from __future__ import annotations

from collections.abc import Iterable

from shared.journey.model.problem import Problem


class InvalidTouchpoint(ValueError):
    """A message on the touchpoints topic is malformed; the stager dead-letters it with `str(e)`."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class JourneyError(ValueError):
    """Journey definitions are invalid; `problems` lists every one, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class StateMismatch(ValueError):
    """A contact state was handed to the engine with another journey's or contact's tick."""
