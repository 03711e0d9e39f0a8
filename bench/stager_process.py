"""One run of bench.stager's `run_stager` in a process of its own, started by bench.stager.

Run: `python -m bench.stager_process --touchpoints T --transitions T --dead-letters T
--partitions P --database DB --events N --journeys DIR` (the scratch topics and database
bench.stager made; everything else from the environment, as there). It prints the run
(`StagerRun`) as one JSON line. A process of its own, so that what is sampled (RSS) and timed is
the stager alone, not what earlier benchmarks of `make bench` left in the parent process.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

import uvloop

from bench.stager import run_stager
from shared.journey import load_journeys
from shared.settings import DatabaseSettings, KafkaSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--touchpoints", "--transitions", "--dead-letters", "--database"):
        parser.add_argument(name, required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--journeys", type=Path, required=True)
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    kafka = KafkaSettings().model_copy(update={
        "touchpoints_topic": args.touchpoints, "transitions_topic": args.transitions,
        "dead_letter_topic": args.dead_letters, "partitions": args.partitions})
    database = DatabaseSettings().model_copy(update={"db": args.database})
    # On uvloop, as `polku stager` runs under uvicorn (which picks uvloop when installed).
    run = uvloop.run(run_stager(kafka, database, args.events, load_journeys(args.journeys)))
    print(json.dumps(asdict(run)), flush=True)


if __name__ == "__main__":
    main()
