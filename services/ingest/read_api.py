"""Read API over the stager's state: a contact's stage per journey, and the loaded journeys.

What the stager stored is read through the contact read model (shared/db/read_model.py); this
module only shapes it for HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.bearer import ApiToken, require_bearer
from shared.db.read_model import read_contact
from shared.deps import AppPart
from shared.journey import Journey


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
    summary="A contact's current stage, touches and transition history in every journey",
    responses={404: {"description": "No journey has seen this contact"}},
)
async def get_contact(contact_id: str, api: Api) -> dict[str, Any]:
    journeys = api.journeys
    seen_in = await read_contact(api.engine, contact_id)
    if not seen_in:
        raise HTTPException(404, detail=f"contact_id: no journey has seen contact {contact_id!r}")
    result = []
    for view in seen_in:
        state = view.state
        journey = journeys.get(state.journey_id)
        result.append(
            {
                "journey": state.journey_id,
                "version": state.journey_version,
                "stage": (
                    {"id": state.stage, "labels": _labels(journey, state.stage)}
                    if state.stage else None
                ),
                "entered_at": state.stage_entered_at.isoformat()
                if state.stage_entered_at else None,
                "first_touch": _touch(state.first_touch),
                "last_touch": _touch(state.last_touch),
                "last_event_at": state.last_event_at.isoformat() if state.last_event_at else None,
                "traits": dict(state.traits),
                "history": [
                    {
                        "transition_id": t.transition_id,
                        "from": t.from_stage,
                        "to": t.to_stage,
                        "at": t.at.isoformat(),
                        "cause": t.cause,
                        "rule": t.rule_id,
                        "reason": t.reason,
                    }
                    for t in view.history
                ],
            }
        )
    return {"contact": contact_id, "journeys": result}
