"""Ingest: the Segment-compatible tracking API that turns calls into touchpoints on the log, and
the read API over the contacts' stages.

- `app.py` is the distributed mode (Kafka + PostgreSQL); `attach` there assembles the API for
  both modes (`services/dev/app.py` calls it with the embedded log and SQLite).
- `routes.py` reads requests, `intake.py` decides (auth, rate limit, validation, publish),
  `errors.py` says why not; `touchpoint.py` builds the messages, `publish.py` sends them;
  `sources.py` keeps write keys (`sources_cli.py` manages them); `read_api.py` is the read API.
"""
