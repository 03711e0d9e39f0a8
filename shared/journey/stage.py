"""A stage of a journey and the bilingual labels marketers see."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Labels:
    fi: str
    en: str


@dataclass(frozen=True)
class Stage:
    id: str
    labels: Labels
