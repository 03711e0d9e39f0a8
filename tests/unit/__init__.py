"""Pure, fast tests: the engine, the wire messages, decisions as functions, the stager store
on SQLite."""
