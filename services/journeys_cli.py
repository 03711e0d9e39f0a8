"""`polku journeys ...` commands: validate journey files, print their JSON Schema, simulate."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from shared.journey import (
    InvalidTouchpoint,
    JourneyError,
    Transition,
    json_schema,
    load_journey,
    parse_time,
    validate_path,
)
from shared.settings import ServiceSettings
from shared.simulation import simulate as simulate_journey
from shared.wire import decode_touchpoint

app = typer.Typer(help="Journey definitions: validate, schema, simulate.", no_args_is_help=True)


@app.command()
def validate(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Journey file or directory (default: $POLKU_JOURNEYS_DIR or journeys/)."
        ),
    ] = None,
) -> None:
    """Check journey files and print every problem as file:line: field: message."""
    # The directory the services load (POLKU_JOURNEYS_DIR, default journeys/), read as they do.
    target = path or ServiceSettings().journeys_dir
    problems = validate_path(target)
    for problem in problems:
        typer.echo(str(problem))
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {target}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{target}: no problems", err=True)


@app.command()
def schema() -> None:
    """Print the JSON Schema of journey files (for editor completion)."""
    typer.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))


@app.command()
def simulate(
    # A directory or a missing file is a usage error (exit 2) named by click, not a traceback.
    journey: Annotated[
        Path, typer.Option("--journey", help="Journey YAML file.", exists=True, dir_okay=False,
                           readable=True)
    ],
    events: Annotated[
        Path, typer.Option("--events", help="Touchpoints, one JSON message a line.", exists=True,
                           dir_okay=False, readable=True)
    ],
    until: Annotated[
        str | None, typer.Option("--until", help="Tick timers up to this ISO 8601 instant.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print transitions as JSON lines.")
    ] = False,
) -> None:
    """Replay touchpoints through a journey and print each contact's path."""
    try:
        definition = load_journey(journey)
    except JourneyError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    except (OSError, UnicodeDecodeError) as e:  # e.g. a binary file given as the journey
        raise typer.BadParameter(f"{journey} cannot be read as a journey: {e}",
                                 param_hint="--journey") from None
    deadline = _instant(until) if until else None
    messages = _read_messages(events)
    if not messages:
        # Printing nothing and exiting 0 would read as "no contact moved".
        typer.echo(f"{events}: no valid touchpoint to simulate (every line is empty or was "
                   "refused, see above)", err=True)
        raise typer.Exit(1)
    paths = simulate_journey(definition, messages, until=deadline)
    for contact, transitions in paths.items():
        if as_json:
            for transition in transitions:
                typer.echo(json.dumps(transition.to_json(), ensure_ascii=False))
        else:
            typer.echo(_path_text(contact, transitions))


def _instant(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 instant with a time zone") from None


def _read_messages(events: Path) -> list[dict[str, Any]]:
    """Valid messages in file order; bad lines are reported and skipped, as the stager would
    dead-letter them."""
    try:
        text = events.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise typer.BadParameter(f"{events} is not UTF-8 text ({e.reason} at byte {e.start})",
                                 param_hint="--events") from None
    except OSError as e:
        raise typer.BadParameter(f"{events} cannot be read: {e.strerror}",
                                 param_hint="--events") from None
    messages: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            message = json.loads(line)
            decode_touchpoint(message)
        except json.JSONDecodeError as e:
            typer.echo(f"{events}:{number}: not JSON: {e.msg}", err=True)
            continue
        except InvalidTouchpoint as e:
            typer.echo(f"{events}:{number}: {e}", err=True)
            continue
        messages.append(message)
    return messages


def _path_text(contact: str, transitions: list[Transition]) -> str:
    if not transitions:
        return f"{contact}: not in the journey"
    lines = [f"{contact}:"]
    for t in transitions:
        source = t.from_stage or "(outside)"
        lines.append(f"  {t.at.isoformat()}  {source} -> {t.to_stage}  [{t.cause}] {t.reason}")
    return "\n".join(lines)
