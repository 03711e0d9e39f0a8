"""Loading and validating journey files: the only part of the journey core that reads files (and
the environment, which fills in `${NAME}` in webhook urls)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from shared.journey.model.errors import JourneyError
from shared.journey.model.journey import Journey
from shared.journey.model.problem import Problem
from shared.journey.parsing.journey import read_journey
from shared.journey.parsing.reader import Reader
from shared.journey.parsing.templates import template_document, template_ids
from shared.journey.parsing.yaml_source import load_yaml

JOURNEY_SUFFIXES = (".yaml", ".yml")


def check_yaml(
    text: str, file: str = "<journey>", environ: Mapping[str, str] | None = None
) -> tuple[Journey | None, list[Problem]]:
    """Parse journey YAML text; the journey is None whenever there is any problem.

    `environ` fills in `${NAME}` in webhook urls (default: this process's environment).
    """
    root, problems = load_yaml(text, file)
    if root is None:
        return None, problems
    reader = Reader(os.environ if environ is None else environ)
    reader.problems.extend(problems)
    journey = read_journey(reader, root)
    return (journey if not reader.problems else None), _sorted(reader.problems)


def journey_from_yaml(
    text: str, file: str = "<journey>", environ: Mapping[str, str] | None = None
) -> Journey:
    """Parse journey YAML text; raises JourneyError listing every problem."""
    journey, problems = check_yaml(text, file, environ)
    if journey is None:
        raise JourneyError(problems)
    return journey


def load_journey(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> Journey:
    path = Path(path)
    return journey_from_yaml(path.read_text(encoding="utf-8"), str(path), environ)


def load_journeys(
    directory: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> list[Journey]:
    """Every journey file (*.yaml, *.yml) directly in `directory`, sorted by file name.

    Raises JourneyError listing the problems of all files, so one run shows everything to fix.
    """
    journeys, problems = _check_directory(Path(directory), environ)
    if problems:
        raise JourneyError(problems)
    return journeys


def validate_path(path: str | os.PathLike[str]) -> list[Problem]:
    """Problems in one journey file or a directory of them; empty when all is well."""
    path = Path(path)
    if path.is_dir():
        return _check_directory(path)[1]
    if not path.is_file():
        return [Problem(str(path), 0, "(path)", "there is no such file or directory")]
    return _check_file(path)[1]


def load_template(template_id: str) -> Journey:
    """A built-in template as a journey of its own (its contacts enter at its first stage)."""
    if template_id not in template_ids():
        raise JourneyError(
            [Problem(template_id, 0, "template", f"there is no built-in template '{template_id}'")]
        )
    root, problems = template_document(template_id)
    reader = Reader()
    reader.problems.extend(problems)
    journey = read_journey(reader, root, is_template=True) if root is not None else None
    if journey is None or reader.problems:
        raise JourneyError(reader.problems)
    return journey


def _check_file(
    path: Path, environ: Mapping[str, str] | None = None
) -> tuple[Journey | None, list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return None, [Problem(str(path), 0, "(file)", f"cannot be read: {e}")]
    return check_yaml(text, str(path), environ)


def _check_directory(
    directory: Path, environ: Mapping[str, str] | None = None
) -> tuple[list[Journey], list[Problem]]:
    if not directory.is_dir():
        return [], [Problem(str(directory), 0, "(path)", "there is no such directory")]
    journeys: list[Journey] = []
    problems: list[Problem] = []
    first_file: dict[str, str] = {}
    for path in sorted(p for p in directory.iterdir() if p.suffix in JOURNEY_SUFFIXES):
        journey, found = _check_file(path, environ)
        problems.extend(found)
        if journey is None:
            continue
        if journey.id in first_file:
            problems.append(
                Problem(
                    str(path),
                    1,
                    "id",
                    f"journey id '{journey.id}' is already used by {first_file[journey.id]}; "
                    "each journey needs its own id",
                )
            )
            continue
        first_file[journey.id] = str(path)
        journeys.append(journey)
    return journeys, problems


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.file, p.line))
