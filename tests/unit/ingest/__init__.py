"""Pure tests of ingest: touchpoint building, write-key sources, rate limits."""
