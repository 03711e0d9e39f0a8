"""The dead letter: a record set aside, unchanged, with headers saying where it came from and why.

The stager (a touchpoint it cannot read or apply) and the actions worker (a transition it cannot
read or turn into deliveries) both write them, to the dead-letters topic and keyed as the original
record. Key and value are copied byte for byte and the error text names the field, never the
payload, so a dead letter can be replayed once the cause is fixed and logs leak nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SOURCE_TOPIC = "polku.source.topic"
SOURCE_PARTITION = "polku.source.partition"
SOURCE_OFFSET = "polku.source.offset"
ERROR_REASON = "polku.error.reason"
ERROR = "polku.error"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str  # a short, label-safe code: invalid_json, invalid_field, database_rejected, ...
    error: str  # which field and what is wrong with it; never the payload itself

    def headers(self) -> dict[str, str]:
        return {
            SOURCE_TOPIC: self.source_topic,
            SOURCE_PARTITION: str(self.source_partition),
            SOURCE_OFFSET: str(self.source_offset),
            ERROR_REASON: self.reason,
            ERROR: self.error,
        }

    @classmethod
    def from_record(
        cls,
        key: bytes | None,
        value: bytes | None,
        headers: Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]],
    ) -> DeadLetter:
        """Read a dead letter back, with headers as the embedded log (a mapping) or Kafka
        (pairs of name and bytes) gives them; raises ValueError naming a missing header."""
        found = dict(headers.items() if isinstance(headers, Mapping) else headers)

        def header(name: str) -> str:
            text = found.get(name)
            if text is None:
                raise ValueError(f"not a dead letter: no {name} header")
            return text.decode() if isinstance(text, bytes) else text

        return cls(key, value, header(SOURCE_TOPIC), int(header(SOURCE_PARTITION)),
                   int(header(SOURCE_OFFSET)), header(ERROR_REASON), header(ERROR))
