"""The Quix Streams peer of bench.stager: Polku's own engine and journeys inside Quix Streams.

It answers "what would the same work cost in a general-purpose stream processor?". The work is
the stager's core, with the same code: each touchpoint is decoded with
`shared.wire.decode_touchpoint`, advanced through every journey with `shared.journey.advance`,
and each transition is encoded with `shared.wire.encode_transition` and published, keyed by
contact. What differs is everything around the engine, which Quix provides: a
StreamingDataFrame over the touchpoints topic, the contact's ContactState per journey kept in
Quix's RocksDB state (as `to_stored`/`from_stored` JSON, under the journey id, in the store of
the message's key: the contact), backed by a changelog topic, and exactly-once processing
(Kafka transactions: state changelog, transitions and consumed offsets commit together).

Not done here, and done by the stager (so the peer does less): the dedupe journal, identity
links and merges, timer sweeps, the read model's rows (transitions with their analytics
columns, stage gauges), dead-lettering (an invalid touchpoint is only counted).

It needs quixstreams, whose 3.28 releases refuse the pydantic that requirements.lock pins, so it
runs in an environment of its own (`make bench-peer`: `.venv-peer`, see bench/requirements.txt)
as `.venv-peer/bin/python -m bench.quix_peer ...` from the repository root; bench.stager starts
it and times it from outside (by its group's committed offsets). It imports nothing of Polku
beyond shared.journey and shared.wire. When it has applied --events touchpoints it stops
(Quix then commits its last checkpoint) and prints one JSON line: what it applied and
published, and its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from quixstreams import Application, State
from quixstreams.models import TopicConfig

from shared.journey import ContactState, InvalidTouchpoint, Journey, advance, load_journeys
from shared.wire import decode_touchpoint, encode_transition

# What a Quix user after throughput would set; everything else is Quix's default. docs/
# performance.md lists them beside the stager's own.
COMMIT_INTERVAL_S = 5.0  # Quix's default; a checkpoint (one transaction) every 5 s
CONSUMER_CONFIG = {
    # Up to 4 MiB per partition per fetch (the stager fetches 1 MiB, to bound its memory: the
    # larger fetch can only favour the peer), and the broker holds a fetch until 64 KiB are
    # there or 50 ms have passed, as it does the stager's.
    "max.partition.fetch.bytes": 4 * 1024 * 1024,
    "fetch.min.bytes": 64 * 1024,
    "fetch.wait.max.ms": 50,
}


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Peer:
    """The stateful step and its counts; stops the application after `events` touchpoints."""

    def __init__(self, journeys: list[Journey], events: int) -> None:
        self.journeys = journeys
        self.events = events
        self.applied = 0
        self.invalid = 0
        self.transitions = 0
        self.app: Application | None = None

    def step(self, message: Any, state: State) -> list[dict[str, Any]]:
        """One touchpoint through every journey; the transition records to publish."""
        records: list[dict[str, Any]] = []
        try:
            touchpoint = decode_touchpoint(message)
        except InvalidTouchpoint:
            self.invalid += 1
        else:
            for journey in self.journeys:
                stored = state.get(journey.id)
                before = ContactState.from_stored(stored) if stored is not None else None
                step = advance(before, touchpoint, journey)
                if step.state is not None:
                    state.set(journey.id, step.state.to_stored())
                for transition in step.transitions:
                    event = touchpoint.event if transition.cause == touchpoint.message_id else None
                    records.append(encode_transition(transition, journey, step.state, event))
            self.transitions += len(records)
        self.applied += 1
        if self.applied >= self.events and self.app is not None:
            self.app.stop()  # leaves the loop after this message; Quix commits the checkpoint
        return records


def run(bootstrap: str, source: str, sink: str, group: str, partitions: int, events: int,
        journeys_dir: Path) -> dict[str, Any]:
    peer = Peer(load_journeys(journeys_dir), events)
    with tempfile.TemporaryDirectory(prefix="polku-bench-quix-") as state_dir:
        app = Application(
            broker_address=bootstrap,
            consumer_group=group,
            auto_offset_reset="earliest",  # the topic was filled before the peer started
            processing_guarantee="exactly-once",
            commit_interval=COMMIT_INTERVAL_S,
            consumer_extra_config=CONSUMER_CONFIG,
            state_dir=state_dir,
            loglevel="WARNING",
        )
        peer.app = app
        touchpoints = app.topic(source, value_deserializer="json", key_deserializer="bytes")
        transitions = app.topic(sink, value_serializer="json", key_serializer="bytes",
                                config=TopicConfig(num_partitions=partitions,
                                                   replication_factor=1))
        sdf = app.dataframe(touchpoints)
        sdf = sdf.apply(peer.step, stateful=True, expand=True)
        sdf.to_topic(transitions)
        started = time.monotonic()
        app.run()
        took = time.monotonic() - started
    return {"applied": peer.applied, "invalid": peer.invalid, "transitions": peer.transitions,
            "run_s": round(took, 3), "peak_rss_mb": round(peak_rss_mb(), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True, help="the touchpoints topic")
    parser.add_argument("--sink", required=True, help="the topic the transitions go to")
    parser.add_argument("--group", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--journeys", type=Path, required=True)
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    result = run(args.bootstrap, args.source, args.sink, args.group, args.partitions,
                 args.events, args.journeys)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
