"""Everything that crosses a process boundary, defined once: topic names, the partition of a key.

(Issue 11 moves the messages themselves here: touchpoint, transition, dead letter.)
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.partitioner import murmur2


@dataclass(frozen=True, slots=True)
class Topics:
    """The three topics of one Polku deployment (Kafka topics, or the embedded log's)."""

    touchpoints: str = "polku.touchpoints"
    transitions: str = "polku.transitions"
    dead_letters: str = "polku.dead-letters"


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition a keyed record lands on: murmur2 of the key, as every Kafka client's
    default partitioner computes it, so ingest, the stager's publisher and the embedded log
    agree with `producer.send` and with producers in other languages."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
