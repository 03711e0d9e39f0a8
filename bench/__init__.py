"""Benchmarks (`make bench`), each printing its figure beside a baseline or peer run in the
same session."""
