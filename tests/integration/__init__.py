"""Tests against the real Kafka broker and PostgreSQL server that `make infra` starts."""
