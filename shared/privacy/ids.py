"""How an id is stored once its person is erased: HMAC-SHA256 under the installation's salt.

The salt is one random row of `privacy_salt`, made by migration 0006. A plain hash of an
email address is found again by hashing a list of addresses; with the salt, that needs read
access to this installation's database too.
The salt never changes, so each process reads it once per database.
"""

from __future__ import annotations

import hmac
import weakref

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.tables import privacy_salt

# By the engine's sync core: one salt per database, and tests run several databases at once.
_salts: weakref.WeakKeyDictionary[Engine, bytes] = weakref.WeakKeyDictionary()


async def installation_salt(conn: AsyncConnection) -> bytes:
    """The salt of the database `conn` talks to."""
    salt = _salts.get(conn.sync_engine)
    if salt is not None:
        return salt
    select = sa.select(privacy_salt.c.salt).where(privacy_salt.c.id == 1)
    salt = (await conn.execute(select)).scalar_one_or_none()
    if salt is None:
        raise LookupError("the database has no privacy salt: run `polku db upgrade` (0006)")
    _salts[conn.sync_engine] = bytes(salt)
    return bytes(salt)


def id_hash(salt: bytes, contact_id: str) -> str:
    """64 hex characters: the id as the suppression list and the receipts keep it."""
    return hmac.digest(salt, contact_id.encode("utf-8", "surrogatepass"), "sha256").hex()
