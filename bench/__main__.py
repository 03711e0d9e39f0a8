"""`make bench`: every benchmark in turn, each printing its baseline beside its figure."""

from __future__ import annotations

import runpy
import sys

BENCHMARKS = ("bench.ingest", "bench.stager", "bench.actions", "bench.pipeline", "bench.embedded",
              "bench.funnel")

if __name__ == "__main__":
    for name in BENCHMARKS:
        print(f"\n== {name}", flush=True)
        sys.argv = [name]
        runpy.run_module(name, run_name="__main__")
