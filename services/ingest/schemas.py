"""The tracking API's request and response shapes, for the OpenAPI document at /docs.

Requests are not validated through these models: the hot path (touchpoint.py) checks the parsed
JSON directly, which is several times faster and names the field at fault in Segment's terms.
These models document the same rules for clients and for the fuzz tests.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from pydantic.json_schema import models_json_schema

from services.ingest.touchpoint import MAX_ID_CHARS

Id = Annotated[str, Field(max_length=MAX_ID_CHARS)]
Timestamp = Annotated[
    str,
    Field(description="ISO 8601 with a time zone, e.g. 2026-11-23T08:00:00.000Z",
          examples=["2026-11-23T08:00:00.000Z"]),
]
Properties = Annotated[dict[str, Any], Field(description="Free-form JSON object")]

_EITHER_ID: JsonDict = {"anyOf": [{"required": ["userId"]}, {"required": ["anonymousId"]}]}


class _Call(BaseModel):
    """Fields every call may carry (Segment's common fields)."""

    model_config = ConfigDict(extra="allow")

    userId: Id | None = Field(None, description="Your id for the person; the Kafka key when set")
    anonymousId: Id | None = Field(None, description="A device or cookie id; the key otherwise")
    messageId: Id | None = Field(
        None, description="Unique per event; retries with the same id are deduplicated "
        "downstream. Generated when absent (such retries cannot be deduplicated)."
    )
    timestamp: Timestamp | None = Field(None, description="When the event happened (device "
                                        "clock); corrected for clock skew using sentAt")
    originalTimestamp: Timestamp | None = None
    sentAt: Timestamp | None = Field(None, description="When the device sent it (same clock)")
    context: Properties | None = Field(None, description="page, campaign, userAgent, ip, ...")
    integrations: Properties | None = Field(None, description="Accepted and ignored")
    writeKey: str | None = Field(None, description="The write key, if not sent as HTTP Basic")


class TrackCall(_Call):
    model_config = ConfigDict(json_schema_extra=_EITHER_ID)
    type: Literal["track"] | None = None
    event: str = Field(min_length=1, description="What happened, e.g. 'Demo Requested'")
    properties: Properties | None = None


class IdentifyCall(_Call):
    model_config = ConfigDict(json_schema_extra=_EITHER_ID)
    type: Literal["identify"] | None = None
    traits: Properties | None = Field(None, description="Also read from context.traits")


class PageCall(_Call):
    model_config = ConfigDict(json_schema_extra=_EITHER_ID)
    type: Literal["page"] | None = None
    name: str | None = None
    category: str | None = Field(None, description="Kept as properties.category")
    properties: Properties | None = None


class ScreenCall(_Call):
    model_config = ConfigDict(json_schema_extra=_EITHER_ID)
    type: Literal["screen"] | None = None
    name: str | None = None
    category: str | None = Field(None, description="Kept as properties.category")
    properties: Properties | None = None


class GroupCall(_Call):
    model_config = ConfigDict(json_schema_extra=_EITHER_ID)
    type: Literal["group"] | None = None
    groupId: Id = Field(min_length=1)
    traits: Properties | None = Field(None, description="Traits of the group")


class AliasCall(_Call):
    type: Literal["alias"] | None = None
    userId: Id = Field(min_length=1, description="The new id; the Kafka key")
    previousId: Id = Field(min_length=1, description="The id being merged into userId")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    batch: list[dict[str, Any]] = Field(
        min_length=1,
        description="Calls of any type, each with its `type` and the fields of that call "
        "(see TrackCall, IdentifyCall, ...). Invalid items are rejected one by one.",
    )
    context: Properties | None = Field(None, description="Merged under each item's context")
    sentAt: Timestamp | None = Field(None, description="Applies to items without their own")
    writeKey: str | None = None
    integrations: Properties | None = None


class Rejected(BaseModel):
    index: int = Field(description="Position of the item in `batch`")
    field: str = Field(description="The field at fault, or batch[i] for the whole item")
    reason: str = Field(description="missing_field | invalid_field | too_large")
    error: str


class Accepted(BaseModel):
    success: Literal[True] = True
    accepted: int = Field(description="Events acknowledged by Kafka")
    rejected: list[Rejected] = Field(default_factory=list,
                                     description="Batch items refused, with the reason")


class Problem(BaseModel):
    """Every refusal: `field` names what was wrong, `message` says what."""

    success: Literal[False] = False
    code: str = Field(description="invalid_json | invalid_field | missing_field | too_large | "
                      "unauthorized | rate_limited | unavailable | ...")
    field: str
    message: str
    rejected: list[Rejected] = Field(default_factory=list)


CALLS: dict[str, type[BaseModel]] = {
    "track": TrackCall,
    "identify": IdentifyCall,
    "page": PageCall,
    "screen": ScreenCall,
    "group": GroupCall,
    "alias": AliasCall,
    "batch": BatchRequest,
}

REF = "#/components/schemas/{model}"


def component_schemas() -> dict[str, Any]:
    """JSON schemas of the request bodies, keyed by model name, for components.schemas."""
    _, top = models_json_schema([(m, "validation") for m in CALLS.values()], ref_template=REF)
    defs: dict[str, Any] = top.get("$defs", {})
    return defs


def request_body(endpoint: str) -> dict[str, Any]:
    """The OpenAPI requestBody of an endpoint, referring to components.schemas."""
    ref = {"$ref": REF.format(model=CALLS[endpoint].__name__)}
    return {"required": True, "content": {"application/json": {"schema": ref}}}
