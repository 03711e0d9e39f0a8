"""The privacy API: erase a person, read an erasure's receipt, take an id off the suppression
list. Served by `polku ingest` and `polku dev` behind the admin token (POLKU_INGEST_ADMIN_TOKEN).

The work is done by shared/privacy (one transaction per person); this module checks the input
and shapes the answers. docs/privacy.md describes what an erase removes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.bearer import ApiToken, require_bearer
from shared.clock import Clock
from shared.deps import AppPart
from shared.privacy import ErasureStores, erase_person, get_receipt, unsuppress

log = logging.getLogger("polku.privacy")

# As the stager's contact columns (and ingest's id limit): longer ids were never stored.
MAX_ID_CHARS = 200
MAX_IDS_PER_REQUEST = 1000


@dataclass(frozen=True, slots=True)
class PrivacyApi:
    """What the privacy API works on, handed over once when the app starts (`provide`)."""

    engine: AsyncEngine
    token: ApiToken  # IngestSettings.admin_api_token
    stores: ErasureStores
    clock: Clock


PRIVACY_API: AppPart[PrivacyApi] = AppPart("privacy_api")
provide = PRIVACY_API.provide
Api = Annotated[PrivacyApi, Depends(PRIVACY_API)]


def _authorised(request: Request, api: Api) -> None:
    require_bearer(request, api.token.value, api.token.setting)


router = APIRouter(prefix="/v1", tags=["privacy"], dependencies=[Depends(_authorised)])

ContactId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS,
                                             pattern=r"^[^\x00]+$")]


class ErasureRequest(BaseModel):
    ids: list[ContactId] = Field(min_length=1, max_length=MAX_IDS_PER_REQUEST,
                                 description="userIds or anonymousIds; each names a person")


def _checked(contact_id: str) -> str:
    if "\x00" in contact_id or len(contact_id) > MAX_ID_CHARS:
        raise HTTPException(422, f"contact_id: must be 1 to {MAX_ID_CHARS} characters, "
                                 "without NUL")
    return contact_id


async def _erase(api: PrivacyApi, contact_id: str) -> dict[str, Any]:
    receipt = await erase_person(api.engine, contact_id, api.stores, api.clock.now())
    # The receipt id and counts only: the id itself is what is being forgotten.
    log.info("erasure %s: %d id(s), %d row(s) removed", receipt.id, len(receipt.id_hashes),
             sum(receipt.removed.values()))
    return receipt.as_json()


@router.delete(
    "/contacts/{contact_id}",
    summary="Erase the person behind an id (and every id linked to it); returns the receipt",
)
async def erase_contact(api: Api, contact_id: Annotated[str, Path(min_length=1)]
                        ) -> dict[str, Any]:
    return await _erase(api, _checked(contact_id))


@router.post(
    "/erasures",
    summary="Erase several people: one transaction and one receipt per id, in order",
)
async def erase_many(api: Api, body: ErasureRequest) -> dict[str, Any]:
    return {"receipts": [await _erase(api, contact_id) for contact_id in body.ids]}


@router.get("/erasures/{receipt_id}", summary="An erasure's receipt",
            responses={404: {"description": "No such receipt"}})
async def read_receipt(api: Api, receipt_id: str) -> dict[str, Any]:
    receipt = await get_receipt(api.engine, receipt_id)
    if receipt is None:
        raise HTTPException(404, f"receipt_id: there is no receipt {receipt_id!r}")
    return receipt.as_json()


@router.delete(
    "/suppressions/{contact_id}",
    summary="Accept an erased id's new events again (nothing erased comes back)",
)
async def unsuppress_contact(api: Api, contact_id: Annotated[str, Path(min_length=1)]
                             ) -> dict[str, Any]:
    removed = await unsuppress(api.engine, [_checked(contact_id)])
    ((hashed, was_listed),) = removed.items()
    return {"id_hash": hashed, "unsuppressed": was_listed}
