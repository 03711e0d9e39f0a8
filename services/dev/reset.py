"""`polku dev --reset`: empty a data directory, but only a stopped Polku's.

A reset is the one place `polku dev` deletes data, so it refuses twice before deleting
anything: a directory holding a file Polku does not write there (POLKU_DEV_DATA_DIR pointed at
the wrong place) is left untouched, and a directory whose lock a live `polku dev` holds is left
untouched (its SQLite file holds events it has acknowledged). The files are deleted while the
reset holds the lock itself, so no instance can start on them halfway through.
"""

from __future__ import annotations

from pathlib import Path

from services.dev.app import LOCK_FILE, lock_data_dir

# Everything `polku dev` writes into its data directory: the SQLite file (state and the
# embedded log) with SQLite's WAL and rollback companions, the lock, the dev source's write key
# and the demo webhook secret. Keep in step with services/dev/app.py and settings.py.
POLKU_FILES = frozenset({
    "polku.db", "polku.db-wal", "polku.db-shm", "polku.db-journal",
    LOCK_FILE, "write-key", "webhook-secret",
})


class NotADataDir(Exception):
    """The directory holds files Polku did not write: a reset will not delete it."""


def foreign_entries(data_dir: Path) -> list[str]:
    """Names in `data_dir` that Polku does not write there (sorted, for a stable message)."""
    return sorted(entry.name for entry in data_dir.iterdir()
                  if entry.name not in POLKU_FILES or not entry.is_file())


def reset_data_dir(data_dir: Path) -> list[str]:
    """Delete a stopped Polku's files in `data_dir`; return the names deleted.

    Raises NotADataDir if `data_dir` holds anything else (nothing is deleted), and
    services.dev.app.DataDirInUse if a live process holds its lock (nothing is deleted).
    A missing directory is already empty: nothing to do.
    """
    if not data_dir.exists():
        return []
    if not data_dir.is_dir():
        raise NotADataDir(f"{data_dir} is not a directory")
    foreign = foreign_entries(data_dir)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise NotADataDir(f"{data_dir} does not look like a Polku data directory (it holds "
                          f"{shown}, which Polku does not write); nothing was deleted")
    # Checked before anything is deleted, and held while deleting: a live instance keeps its
    # data, and none can start on a half-deleted directory.
    lock = lock_data_dir(data_dir)
    try:
        deleted = []
        for entry in sorted(data_dir.iterdir()):
            if entry.name != LOCK_FILE:  # the lock is what is held; the file itself is empty
                entry.unlink()
                deleted.append(entry.name)
        return deleted
    finally:
        lock.close()
