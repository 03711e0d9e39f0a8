"""Everything that crosses a process boundary, defined once: topic names, the partition of a key.

(Issue 11 moves the messages themselves here: touchpoint, transition, dead letter.)
"""

from shared.wire.topics import Topics, key_hash, partition_for_key

__all__ = ["Topics", "key_hash", "partition_for_key"]
