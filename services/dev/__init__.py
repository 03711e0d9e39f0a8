"""Embedded mode (`polku dev`): ingest, stager and actions in one process on one SQLite file."""
