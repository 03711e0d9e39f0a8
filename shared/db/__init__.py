"""Database plumbing: the async engine, the table definitions and the Alembic migrations."""
