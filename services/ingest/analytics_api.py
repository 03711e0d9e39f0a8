"""The analytics API: funnel, flows, stage population, contacts and transitions of a journey.

Served with the read API (services/ingest/read_api.py) and behind its token, in both run modes:
what it reads are the same contact states and transitions. The figures and what they mean are
defined in docs/analytics.md and computed in services/ingest/analytics.py; this module checks
the parameters (a 422 names the one that is wrong, a 404 the unknown journey) and shapes the
answers, whose schemas are in the OpenAPI document.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from services.ingest import analytics
from services.ingest.analytics import Period
from services.ingest.funnel import ANY_ORDER, IN_ORDER, StageFigures
from services.ingest.read_api import Api, ReadApi
from shared.bearer import require_bearer
from shared.journey import Journey

DEFAULT_PERIOD = timedelta(days=30)
MAX_CONTACTS_PAGE = 500
INTERVALS = {"day": timedelta(days=1), "week": timedelta(weeks=1)}
MODES = (IN_ORDER, ANY_ORDER)
SPLITS = (analytics.NONE, analytics.COHORT_WEEK, analytics.CHANNEL)
FORMATS = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def _authorised(request: Request, api: Api) -> None:
    require_bearer(request, api.token.value, api.token.setting)


router = APIRouter(prefix="/v1/analytics", tags=["analytics"],
                   dependencies=[Depends(_authorised)])

# --- answers (their schemas document the API) ---


class Labels(BaseModel):
    fi: str | None = None
    en: str | None = None


class PeriodOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from", description="Start, inclusive (UTC)")
    to: datetime = Field(description="End, exclusive (UTC)")


class TimeInStageOut(BaseModel):
    median_s: float | None = Field(description="Median seconds of a completed visit")
    p90_s: float | None = Field(description="90th percentile seconds of a completed visit")
    visits: int = Field(description="Completed visits the median and p90 were computed from")
    sample: float = Field(description="Share of the period's completed visits read: 1.0 is "
                                      "all; less when the period has over 50,000 contacts")


class StageOut(BaseModel):
    stage: str
    labels: Labels
    reached: int = Field(description="The period's contacts that reached this stage (in order: "
                                     "and every stage before it, in order)")
    conversion_to_next: float | None = Field(
        description="Share of them that reached the next stage too; null for the last stage")
    conversion_from_first: float | None = Field(
        description="Share of the first stage's contacts that reached this one")
    dropped: int = Field(description="Reached this stage, not the next one (0 for the last)")
    time_in_stage: TimeInStageOut


class SplitOut(BaseModel):
    key: str = Field(description="ISO week of entry (2026-W47) or first-touch channel")
    stages: list[StageOut]


class FunnelOut(BaseModel):
    journey: str
    period: PeriodOut
    mode: str
    split: str
    stages: list[StageOut]
    splits: list[SplitOut]


class NodeOut(BaseModel):
    stage: str
    labels: Labels
    still_in: int = Field(description="The period's contacts in this stage now")


class LinkOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str | None = Field(alias="from", description="null: entered the journey")
    to: str
    count: int = Field(description="Moves the period's contacts made from -> to")
    backward: bool = Field(description="`to` comes before `from` in the journey: a cycle, "
                                       "drawn apart from the forward Sankey")


class FlowsOut(BaseModel):
    journey: str
    period: PeriodOut
    nodes: list[NodeOut]
    links: list[LinkOut]


class SeriesOut(BaseModel):
    stage: str
    labels: Labels
    points: list[tuple[datetime, int]] = Field(
        description="[end of each interval, contacts in the stage then]")


class PopulationOut(BaseModel):
    journey: str
    period: PeriodOut
    interval: str
    series: list[SeriesOut]


class TouchOut(BaseModel):
    channel: str
    at: datetime


class ContactOut(BaseModel):
    contact: str
    stage: str
    entered_at: datetime | None = Field(description="When it entered its current stage")
    first_touch: TouchOut | None
    traits: dict[str, Any]


class ContactsOut(BaseModel):
    contacts: list[ContactOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: "
                                                "this was the last")


# --- parameters ---


def _invalid(field: str, problem: str) -> HTTPException:
    return HTTPException(422, f"{field}: {problem}")


def _time(field: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _invalid(field, "not an ISO 8601 time, e.g. 2026-11-23T08:00:00Z") from None
    if moment.tzinfo is None:
        raise _invalid(field, "needs a time zone, e.g. 2026-11-23T08:00:00Z")
    return moment.astimezone(UTC)


def _period(start: str | None, end: str | None) -> Period:
    to = _time("to", end) or datetime.now(UTC)
    since = _time("from", start) or to - DEFAULT_PERIOD
    if since >= to:
        raise _invalid("to", "must be after from")
    return Period(since, to)


def _choice(field: str, value: str, allowed: Any) -> str:
    if value not in allowed:
        raise _invalid(field, f"must be one of {', '.join(allowed)}")
    return value


def _journey(api: ReadApi, journey_id: str) -> Journey:
    journey = api.journeys.get(journey_id)
    if journey is None:
        raise HTTPException(404, f"journey_id: no journey {journey_id!r} is loaded")
    return journey


def _labels(journey: Journey, stage: str) -> Labels:
    found = journey.stage(stage)
    return Labels(**found.labels.as_json()) if found else Labels()


def _period_out(period: Period) -> PeriodOut:
    return PeriodOut.model_validate({"from": period.start, "to": period.end})


From = Annotated[str | None, Query(alias="from", description="ISO 8601 with a time zone; "
                                   "default: 30 days before `to`")]
To = Annotated[str | None, Query(alias="to", description="ISO 8601 with a time zone, exclusive; "
                                 "default: now")]

# --- routes ---


@router.get("/journeys/{journey_id}/funnel", response_model=FunnelOut,
            summary="Funnel of the contacts that entered the journey in the period: reached, "
                    "conversion, drop-off and time in each stage, optionally split",
            responses={404: {"description": "journey_id: no such journey is loaded"},
                       422: {"description": "A parameter is invalid; the detail names it"}})
async def get_funnel(journey_id: str, api: Api, start: From = None, end: To = None,
                     mode: Annotated[str, Query(description="in_order | any_order")] = IN_ORDER,
                     split: Annotated[str, Query(description="none | cohort_week | channel")]
                     = analytics.NONE) -> FunnelOut:
    journey = _journey(api, journey_id)
    period = _period(start, end)
    _choice("mode", mode, MODES)
    _choice("split", split, SPLITS)
    result = await analytics.funnel(api.engine, journey, period, mode, split)
    return FunnelOut(
        journey=journey.id, period=_period_out(period), mode=mode, split=split,
        stages=_stages_out(journey, result.stages),
        splits=[SplitOut(key=key, stages=_stages_out(journey, figures))
                for key, figures in result.splits],
    )


def _stages_out(journey: Journey, figures: list[StageFigures]) -> list[StageOut]:
    return [
        StageOut(stage=f.stage, labels=_labels(journey, f.stage), reached=f.reached,
                 conversion_to_next=f.conversion_to_next,
                 conversion_from_first=f.conversion_from_first, dropped=f.dropped,
                 time_in_stage=TimeInStageOut(
                     median_s=f.time_in_stage.median_s, p90_s=f.time_in_stage.p90_s,
                     visits=f.time_in_stage.visits, sample=f.time_in_stage.sample))
        for f in figures
    ]


@router.get("/journeys/{journey_id}/flows", response_model=FlowsOut,
            summary="Moves between stages of the contacts that entered the journey in the "
                    "period, and where they are now: a Sankey diagram's nodes and links",
            responses={404: {"description": "journey_id: no such journey is loaded"},
                       422: {"description": "A parameter is invalid; the detail names it"}})
async def get_flows(journey_id: str, api: Api, start: From = None, end: To = None
                    ) -> FlowsOut:
    journey = _journey(api, journey_id)
    period = _period(start, end)
    result = await analytics.flows(api.engine, journey, period)
    order = {stage: i for i, stage in enumerate(journey.stage_ids)}
    seen = {stage for link in result.links for stage in link[:2] if stage is not None}
    others = sorted((seen | result.still_in.keys()) - order.keys())
    return FlowsOut(
        journey=journey.id, period=_period_out(period),
        nodes=[NodeOut(stage=stage, labels=_labels(journey, stage),
                       still_in=result.still_in.get(stage, 0))
               for stage in (*journey.stage_ids, *others)],
        links=[LinkOut.model_validate({
                   "from": source, "to": target, "count": n,
                   "backward": (source in order and target in order
                                and order[target] < order[source])})
               for source, target, n in result.links],
    )


@router.get("/journeys/{journey_id}/population", response_model=PopulationOut,
            summary="Contacts in each stage at the end of each day or week of the period",
            responses={404: {"description": "journey_id: no such journey is loaded"},
                       422: {"description": "A parameter is invalid; the detail names it"}})
async def get_population(journey_id: str, api: Api, start: From = None, end: To = None,
                         interval: Annotated[str, Query(description="day | week")] = "day"
                         ) -> PopulationOut:
    journey = _journey(api, journey_id)
    period = _period(start, end)
    step = INTERVALS.get(_choice("interval", interval, INTERVALS))
    assert step is not None
    if (period.end - period.start) / step > analytics.MAX_POINTS:
        raise _invalid("interval", f"the period has more than {analytics.MAX_POINTS} of them; "
                                   "choose a shorter period or a longer interval")
    series = await analytics.population(api.engine, journey, period, step)
    return PopulationOut(
        journey=journey.id, period=_period_out(period), interval=interval,
        series=[SeriesOut(stage=stage, labels=_labels(journey, stage), points=values)
                for stage, values in series.items()],
    )


@router.get("/journeys/{journey_id}/contacts", response_model=ContactsOut,
            summary="The journey's contacts by id, filtered by stage, entry time and traits, "
                    "a page at a time",
            responses={404: {"description": "journey_id: no such journey is loaded"},
                       422: {"description": "A parameter is invalid; the detail names it"}})
async def get_contacts(
    journey_id: str, api: Api,
    stage: Annotated[str | None, Query(description="Only contacts in this stage")] = None,
    entered_since: Annotated[str | None, Query(
        description="Only contacts that entered their current stage at or after this time")]
    = None,
    trait: Annotated[list[str] | None, Query(
        description="name:value, repeatable (all must match); values compare as text")] = None,
    limit: Annotated[str, Query(description=f"1 to {MAX_CONTACTS_PAGE}")] = "100",
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> ContactsOut:
    journey = _journey(api, journey_id)
    if stage is not None and journey.stage(stage) is None:
        raise _invalid("stage", f"journey {journey.id!r} has no stage {stage!r}")
    since = _time("entered_since", entered_since)
    traits = [_trait(text) for text in trait or ()]
    try:
        size = int(limit)
    except ValueError:
        raise _invalid("limit", "not a whole number") from None
    if not 1 <= size <= MAX_CONTACTS_PAGE:
        raise _invalid("limit", f"must be 1 to {MAX_CONTACTS_PAGE}")
    page, last = await analytics.contacts(api.engine, journey, stage=stage,
                                          entered_since=since, traits=traits,
                                          after=_after(cursor), limit=size)
    return ContactsOut(
        contacts=[ContactOut(contact=row.contact, stage=row.stage, entered_at=row.entered_at,
                             first_touch=(TouchOut(channel=row.first_touch.channel,
                                                   at=row.first_touch.at)
                                          if row.first_touch else None),
                             traits=dict(row.traits))
                  for row in page],
        next_cursor=_cursor(last) if last is not None else None,
    )


def _trait(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise _invalid("trait", "must be name:value, e.g. plan:pro")
    return name.strip(), value


def _cursor(contact: str) -> str:
    return base64.urlsafe_b64encode(contact.encode()).decode().rstrip("=")


def _after(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_",
                                validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _invalid("cursor", "not a cursor this API gave") from None


@router.get("/journeys/{journey_id}/transitions",
            summary="Every transition of the journey made in the period, as NDJSON or CSV "
                    "(streamed; columns: transition_id, contact, from, to, at, cause, rule, "
                    "reason)",
            response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}},
                       404: {"description": "journey_id: no such journey is loaded"},
                       422: {"description": "A parameter is invalid; the detail names it"}})
async def get_transitions(
    journey_id: str, api: Api, start: From = None, end: To = None,
    format: Annotated[str, Query(description="ndjson | csv")] = "ndjson",
) -> StreamingResponse:
    journey = _journey(api, journey_id)
    period = _period(start, end)
    _choice("format", format, FORMATS)
    pages = analytics.transition_pages(api.engine, journey.id, period)
    body = _csv(pages) if format == "csv" else _ndjson(pages)
    filename = f"{journey.id}-transitions.{format}"
    return StreamingResponse(body, media_type=FORMATS[format], headers={
        "content-disposition": f'attachment; filename="{filename}"'})


async def _ndjson(pages: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[bytes]:
    async for page in pages:
        yield "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in page).encode()


# A cell a spreadsheet would take for a formula (OWASP's list): ids and reasons come from
# senders, and `=HYPERLINK(...)` in a contact id must not run on a marketer's machine.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """`value` for a CSV cell: text that a spreadsheet would read as a formula gets a leading
    apostrophe (shown as text, not evaluated); everything else is kept as it is."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


async def _csv(pages: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=analytics.EXPORT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    async for page in pages:
        writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in page)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()
