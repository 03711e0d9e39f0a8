"""The actions worker against the real broker, database and a local webhook receiver."""
