"""The one table `make bench` prints, and the record of a run it writes (bench/results/).

Each benchmark module returns what it measured as `Figure` values (its `figures()` function)
beside what it printed on the way; this module turns a run's figures into a Markdown table
(figure | Polku | baseline | peer | ratio | aim | met) and into JSON with the date, the commit
and the machine, so that two runs can be compared. Pure apart from `machine()`/`commit()`,
which read the host and git, and `write_record`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"
RECORD_FORMAT = 1


@dataclass(frozen=True)
class Figure:
    """One measured figure: Polku's value beside a baseline (the floor the machine and the
    libraries impose) and, where there is one, a peer (another system doing the same work).

    `polku` is None when the benchmark could not measure it (`note` says why). `met` is whether
    `aim` was reached (None: no aim, or nothing to judge). The ratio is Polku's value over the
    peer's where there is a peer, else over the baseline's.
    """

    name: str
    polku: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    peer: float | None = None
    peer_name: str = ""
    aim: str = ""
    met: bool | None = None
    note: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        against = self.peer if self.peer is not None else self.baseline
        if self.polku is None or not against:
            return None
        return self.polku / against

    @property
    def ratio_of(self) -> str:
        return "peer" if self.peer is not None else "baseline"


def failed(name: str, unit: str, reason: str, aim: str = "") -> Figure:
    """A figure that could not be measured, with the reason in its note."""
    return Figure(name, None, unit, aim=aim, note=f"not measured: {reason}")


def at_least(value: float | None, floor: float) -> bool | None:
    return None if value is None else value >= floor


def at_most(value: float | None, ceiling: float) -> bool | None:
    return None if value is None else value <= ceiling


def all_met(*checks: bool | None) -> bool | None:
    """Met when every check is; not met when one is not; unknown when one cannot be judged."""
    if any(check is False for check in checks):
        return False
    if any(check is None for check in checks):
        return None
    return True


def number(value: float | None, unit: str = "") -> str:
    """A value as the table shows it: thousands grouped, one decimal below 100."""
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"
    return f"{text} {unit}".rstrip()


def ratio_text(ratio: float) -> str:
    """Two decimals near 1, fewer as it grows (a latency can be thousands of raw hops)."""
    return f"{ratio:,.0f}" if ratio >= 100 else f"{ratio:.1f}" if ratio >= 10 else f"{ratio:.2f}"


def count(n: int) -> str:
    """200000 as 200k, 1000000 as 1M: how figure names give sizes."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:g}M"
    return f"{n / 1000:g}k" if n >= 1000 else str(n)


def _cell(value: float | None, unit: str, name: str) -> str:
    if value is None:
        return "-"
    return f"{number(value, unit)} ({name})" if name else number(value, unit)


def rows(figures: Sequence[Figure]) -> list[list[str]]:
    """The table's rows as text, header first."""
    table = [["figure", "Polku", "baseline", "peer", "ratio", "aim", "met"]]
    for f in figures:
        ratio = f.ratio
        table.append([
            f.name,
            number(f.polku, f.unit),
            _cell(f.baseline, f.unit, f.baseline_name),
            _cell(f.peer, f.unit, f.peer_name),
            "-" if ratio is None else f"{ratio_text(ratio)}x {f.ratio_of}",
            f.aim or "-",
            {True: "yes", False: "NO", None: "-"}[f.met],
        ])
    return table


def table(figures: Sequence[Figure]) -> str:
    """A Markdown table, its columns padded so that it also reads in a terminal, followed by
    the figures' notes."""
    text = rows(figures)
    widths = [max(len(row[i]) for row in text) for i in range(len(text[0]))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    lines = [line(text[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [line(row) for row in text[1:]]
    lines += [f"- {f.name}: {f.note}" for f in figures if f.note]
    return "\n".join(lines)


def record(figures: Sequence[Figure], started: datetime, seconds: float,
           machine_info: Mapping[str, Any], commit_info: Mapping[str, Any],
           options: Mapping[str, Any]) -> dict[str, Any]:
    """The run as a JSON-safe dict: when, on what, at which commit, and every figure."""
    return {
        "format": RECORD_FORMAT,
        "date": started.astimezone(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "commit": dict(commit_info),
        "machine": dict(machine_info),
        "options": dict(options),
        "figures": [{**asdict(f), "details": dict(f.details), "ratio": f.ratio,
                     "ratio_of": f.ratio_of if f.ratio is not None else None}
                    for f in figures],
    }


def write_record(data: Mapping[str, Any], path: Path = RESULTS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, kernel and Python of this host, and how busy it was."""
    memory_kb = 0
    with open("/proc/meminfo") as meminfo:
        for entry in meminfo:
            if entry.startswith("MemTotal:"):
                memory_kb = int(entry.split()[1])
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for entry in cpuinfo:
            if entry.startswith("model name"):
                model = entry.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        # Other work on the machine moves every figure; the load at the start says how much.
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def commit() -> dict[str, Any]:
    """The commit measured, and whether the work tree had changes on top of it."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  check=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"sha": git("rev-parse", "HEAD") or None,
            "branch": git("rev-parse", "--abbrev-ref", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
