"""Privacy: erasing a person everywhere Polku keeps them, and keeping them out afterwards.

- `ids.py`: the installation's salt and the HMAC of an id, the only form in which an erased id
  is ever stored again;
- `suppression.py`: the suppression list (which ids' events are dropped), asked by ingest
  (an in-memory copy), the stager and the actions worker (in their transactions);
- `erasure.py`: the erase itself, one transaction per person, and its receipt.

docs/privacy.md describes what is removed from where, and what cannot be.
"""

from shared.privacy.erasure import (
    ErasureStores,
    Receipt,
    erase_person,
    get_receipt,
    kafka_expiry,
)
from shared.privacy.ids import id_hash, installation_salt
from shared.privacy.suppression import (
    SuppressionList,
    hold_against_erasure,
    suppressed_among,
    unsuppress,
)

__all__ = [
    "ErasureStores",
    "Receipt",
    "SuppressionList",
    "erase_person",
    "get_receipt",
    "hold_against_erasure",
    "id_hash",
    "installation_salt",
    "kafka_expiry",
    "suppressed_among",
    "unsuppress",
]
