"""Tests of shared/: what is an outage, the poll loop, settings."""
