"""Faults: SIGKILL, broker and database restarts, poison records, lag, two instances."""
