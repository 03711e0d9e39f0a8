"""Read API over the stager's state: a person's stage per journey, and the loaded journeys.

What the stager stored is read through the contact read model (shared/db/read_model.py); this
module only shapes it for HTTP. A contact is asked for by any of its ids: an anonymous id merged
into a known contact answers for that contact, with every id, link and refused link of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.bearer import ApiToken, require_bearer
from shared.db.read_model import Conflict, Link, PersonJourney, read_person
from shared.deps import AppPart
from shared.journey import Journey, Transition, merged_id, timer_rule


@dataclass(frozen=True, slots=True)
class ReadApi:
    """What the read API serves from, handed over once when the app starts (`provide`)."""

    engine: AsyncEngine
    journeys: Mapping[str, Journey]  # by id
    token: ApiToken  # the read token (IngestSettings.read_api_token)


READ_API: AppPart[ReadApi] = AppPart("read_api")
provide = READ_API.provide
read_api_of = READ_API.of
Api = Annotated[ReadApi, Depends(READ_API)]


def _authorised(request: Request, api: Api) -> None:
    require_bearer(request, api.token.value, api.token.setting)


router = APIRouter(prefix="/v1", tags=["read"], dependencies=[Depends(_authorised)])


def _labels(journey: Journey | None, stage_id: str | None) -> dict[str, str]:
    stage = journey.stage(stage_id) if journey is not None and stage_id else None
    return stage.labels.as_json() if stage else {}


def _touch(touch: Any) -> dict[str, str] | None:
    return {"channel": touch.channel, "at": touch.at.isoformat()} if touch else None


@router.get("/journeys", summary="Journeys loaded from the journeys directory")
async def list_journeys(api: Api) -> dict[str, Any]:
    return {
        "journeys": [
            {
                "id": j.id,
                "version": j.version,
                "labels": j.labels.as_json(),
                "stages": [{"id": s.id, "labels": s.labels.as_json()} for s in j.stages],
            }
            for j in api.journeys.values()
        ]
    }


@router.get(
    "/contacts/{contact_id}",
    summary="A contact, by any of its ids: stage, touches and history in every journey, with its "
            "linked ids and the links refused",
    responses={404: {"description": "No state, transition or link of this id or of any id "
                                    "linked to it"}},
)
async def get_contact(contact_id: str, api: Api) -> dict[str, Any]:
    person = await read_person(api.engine, contact_id)
    if person is None:
        raise HTTPException(404, detail=f"contact_id: no journey has seen contact {contact_id!r} "
                                        "or any id linked to it")
    return {
        "contact": person.contact,
        "ids": list(person.ids),
        "links": [_link(link) for link in person.links],
        "conflicts": [_conflict(conflict) for conflict in person.conflicts],
        "journeys": [_journey(view, api.journeys.get(view.journey_id)) for view in person.journeys],
    }


def _journey(view: PersonJourney, journey: Journey | None) -> dict[str, Any]:
    state = view.state
    return {
        "journey": view.journey_id,
        "contact": state.contact if state else None,  # whose state this is
        "version": state.journey_version if state else view.history[-1].journey_version,
        "stage": (
            {"id": state.stage, "labels": _labels(journey, state.stage)}
            if state and state.stage else None
        ),
        "entered_at": _time(state.stage_entered_at) if state else None,
        "first_touch": _touch(state.first_touch) if state else None,
        "last_touch": _touch(state.last_touch) if state else None,
        "last_event_at": _time(state.last_event_at) if state else None,
        "traits": dict(state.traits) if state else {},
        "history": [_transition(t) for t in view.history],
    }


def _transition(t: Transition) -> dict[str, Any]:
    return {
        "transition_id": t.transition_id,
        "contact": t.contact,
        "from": t.from_stage,
        "to": t.to_stage,
        "at": t.at.isoformat(),
        "cause": t.cause,  # the engine's form: a messageId, timer:<rule> or merge:<id>
        "caused_by": _cause(t.cause),
        "rule": t.rule_id,
        "reason": t.reason,
    }


def _cause(cause: str) -> dict[str, str]:
    """The cause spelled out, as the webhook body does (without the event name)."""
    rule = timer_rule(cause)
    if rule is not None:
        return {"kind": "timer", "rule": rule}
    merged = merged_id(cause)
    if merged is not None:
        return {"kind": "merge", "merged": merged}
    return {"kind": "event", "message_id": cause}


def _link(link: Link) -> dict[str, str]:
    return {"alias": link.alias, "kind": link.kind, "cause": link.cause,
            "linked_at": link.linked_at.isoformat(), "merged_at": link.merged_at.isoformat()}


def _conflict(conflict: Conflict) -> dict[str, str]:
    return {"reason": conflict.reason, "contact": conflict.contact, "other": conflict.other,
            "cause": conflict.cause, "at": conflict.at.isoformat()}


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
