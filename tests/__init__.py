"""Polku's tests: unit (pure, SQLite), integration (real Kafka and PostgreSQL), e2e (the whole
pipeline, both modes), faults (kills, restarts, poison, lag); harnesses beside them."""
