"""A stage of a journey and the bilingual labels marketers see."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Labels:
    fi: str
    en: str

    def as_json(self) -> dict[str, str]:
        return {"fi": self.fi, "en": self.en}


@dataclass(frozen=True)
class Stage:
    id: str
    labels: Labels
