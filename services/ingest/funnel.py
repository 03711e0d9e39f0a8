"""The funnel's arithmetic: stage figures from counted contacts, percentiles from durations.

Pure. The queries (services/ingest/analytics.py) count a period's contacts by what the stager
stored of each (`contact_states.reached`, a bit per stage reached, and `in_order`, how many of
the journey's stages it first reached in order) and read the durations of their stage visits;
this turns those counts into the figures docs/analytics.md defines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.db.read_model import REACHED_BITS

IN_ORDER = "in_order"
ANY_ORDER = "any_order"

# (reached bits, in_order) -> contacts with exactly that progress
Progress = Mapping[tuple[int, int], int]


@dataclass(frozen=True)
class TimeInStage:
    """Completed visits of a stage: their median and 90th percentile duration, in seconds, and
    how many were read; `sample` is the share of the period's visits read (1.0: all)."""

    median_s: float | None
    p90_s: float | None
    visits: int
    sample: float = 1.0


NO_VISITS = TimeInStage(None, None, 0)


@dataclass(frozen=True)
class StageFigures:
    stage: str
    reached: int
    conversion_to_next: float | None
    conversion_from_first: float | None
    dropped: int
    time_in_stage: TimeInStage


def stage_figures(stages: Sequence[str], counted: Progress, mode: str,
                  times: Mapping[str, TimeInStage]) -> list[StageFigures]:
    """The figures of each stage of a journey (`stages`, in order) for the contacts `counted`.

    In order, a contact counts at stage i when it reached the stages 0..i, each first reached
    after the one before (`in_order` > i); in any order, when it reached stage i at all.
    Conversion to the next stage is the share of a stage's contacts that count at the next one
    too, conversion from the first the share of the first stage's that count at this one.
    """
    n = len(stages)
    reached, onward, from_first = [0] * n, [0] * n, [0] * n
    for (bits, depth), contacts in counted.items():
        if mode == IN_ORDER:
            hit = [i < depth for i in range(n)]
        else:
            hit = [i < REACHED_BITS and bool(bits >> i & 1) for i in range(n)]
        for i in range(n):
            if hit[i]:
                reached[i] += contacts
                if i + 1 < n and hit[i + 1]:
                    onward[i] += contacts
                if hit[0]:
                    from_first[i] += contacts
    return [
        StageFigures(
            stage=stage,
            reached=reached[i],
            conversion_to_next=_share(onward[i], reached[i]) if i + 1 < n else None,
            conversion_from_first=_share(from_first[i], reached[0]),
            dropped=reached[i] - onward[i] if i + 1 < n else 0,
            time_in_stage=times.get(stage, NO_VISITS),
        )
        for i, stage in enumerate(stages)
    ]


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """The p-th quantile of ascending `ordered`, interpolated between the two nearest values
    (PostgreSQL's percentile_cont, so both databases give the same answer)."""
    if not ordered:
        return None
    position = p * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def time_in_stage(durations: Sequence[float], sample: float = 1.0) -> TimeInStage:
    ordered = sorted(durations)
    return TimeInStage(percentile(ordered, 0.5), percentile(ordered, 0.9), len(ordered), sample)
