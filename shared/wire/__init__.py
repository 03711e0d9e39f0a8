"""Everything that crosses a process boundary, defined once: each message, its version, its
encoding and decoding, and where it goes (topic names, the partition of a key).

- touchpoint (touchpoint.py): written by ingest, read by the stager and `polku simulate`.
- transition record, also the webhook body (transition.py): written by the stager through its
  outbox, read by the actions worker.
- contact-merged record (merged.py): written by the stager beside the transitions a merge caused,
  read by the actions worker (the `contact_merged` webhook trigger).
- what the transitions topic carries (transitions_topic.py): either record, told apart by `type`;
  the actions worker reads both through decode_record.
- dead letter and its headers (dead_letter.py): written by the stager and the actions worker,
  read by operators (and whatever replays them).
- topic names and the partition of a key (topics.py): Topics comes from KafkaSettings.topics;
  ingest, the Kafka writer and the embedded log all partition with partition_for_key.

Every reader checks the version first and refuses a message it does not know, whole: the stager
and the actions worker dead-letter it instead of half-reading it.

The import runs one way: shared.wire builds on the engine's values (Touchpoint, Transition,
ContactState from shared.journey) and turns them into bytes and back; the engine imports nothing
from here. So the engine stays pure, a state machine over values that never sees bytes, field
names, versions or topics, and a change of the wire format cannot reach its behaviour.
"""

from shared.wire.dead_letter import DeadLetter
from shared.wire.merged import (
    MERGED_TYPE,
    MERGED_VERSION,
    ContactMerged,
    MalformedMerge,
    decode_merged,
    encode_merged,
)
from shared.wire.topics import Topics, key_hash, partition_for_key
from shared.wire.touchpoint import (
    EARLIEST_EVENT_TIME,
    MAX_EVENT_TIME_AHEAD,
    TOUCHPOINT_VERSION,
    decode_touchpoint,
    encode_touchpoint,
)
from shared.wire.transition import (
    TRANSITION_TYPE,
    TRANSITION_VERSION,
    MalformedTransition,
    TransitionRecord,
    decode_transition,
    encode_transition,
)
from shared.wire.transitions_topic import MergedRecord, TopicRecord, decode_record

__all__ = [
    "EARLIEST_EVENT_TIME",
    "MAX_EVENT_TIME_AHEAD",
    "MERGED_TYPE",
    "MERGED_VERSION",
    "TOUCHPOINT_VERSION",
    "TRANSITION_TYPE",
    "TRANSITION_VERSION",
    "ContactMerged",
    "DeadLetter",
    "MalformedMerge",
    "MalformedTransition",
    "MergedRecord",
    "TopicRecord",
    "Topics",
    "TransitionRecord",
    "decode_merged",
    "decode_record",
    "decode_touchpoint",
    "decode_transition",
    "encode_merged",
    "encode_touchpoint",
    "encode_transition",
    "key_hash",
    "partition_for_key",
]
