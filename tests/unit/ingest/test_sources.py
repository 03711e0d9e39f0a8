"""Write keys are long and random, and only their hash is stored.

How keys are looked up and cached is tested against PostgreSQL in
tests/integration/test_ingest_key_lookup.py.
"""

from __future__ import annotations

from typing import Any

from services.ingest.sources import hash_key, new_write_key


def test_keys_are_long_random_and_only_their_hash_is_kept() -> None:
    keys = {new_write_key() for _ in range(100)}
    assert len(keys) == 100
    key: Any = keys.pop()
    assert key.startswith("wk_") and len(key) >= 32
    assert len(hash_key(key)) == 64 and key not in hash_key(key)
