"""The topics of a deployment and the partition a keyed record lands on.

Every record Polku writes is keyed (a touchpoint and a transition by contact, a dead letter by the
key of the record it sets aside), and each key must land on the same partition whoever writes it:
ingest choosing partitions itself, the stager's `KafkaWriter`, the embedded log, and producers in
other languages. All of them use `partition_for_key`.
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


def key_hash(key: bytes) -> int:
    """The non-negative murmur2 hash of a key, as every Kafka client's default partitioner
    computes it. Separate from `partition_for_key` so a hot path can cache it per key (the
    hash is pure Python and keys recur) while the partition count may still change."""
    return int(murmur2(key) & 0x7FFFFFFF)


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition a keyed record lands on: `key_hash(key) % partitions`, which agrees with
    aiokafka's `producer.send` and with Kafka producers in other languages."""
    return key_hash(key) % partitions
