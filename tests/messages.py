"""Builds touchpoint messages in the wire format ingest produces (see docs/ingest.md)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def touchpoint(
    contact: str,
    at: datetime,
    *,
    type: str = "track",
    event: str | None = None,
    name: str | None = None,
    properties: dict[str, Any] | None = None,
    traits: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    return {
        "v": 1,
        "type": type,
        "messageId": message_id or str(uuid.uuid4()),
        "contact": contact,
        "userId": contact,
        "anonymousId": None,
        "previousId": None,
        "groupId": None,
        "event": event,
        "name": name,
        "properties": properties or {},
        "traits": traits or {},
        "context": context or {},
        "timestamp": iso(at),
        "originalTimestamp": iso(at),
        "sentAt": None,
        "receivedAt": iso(at),
        "sourceId": "test",
    }


async def produce(producer: AIOKafkaProducer, topic: str, messages: list[dict[str, Any]]) -> None:
    """Send messages keyed by contact, as ingest does, and wait for every acknowledgement."""
    futures = [
        await producer.send(topic, json.dumps(m).encode(), key=m["contact"].encode())
        for m in messages
    ]
    for future in futures:
        await future
