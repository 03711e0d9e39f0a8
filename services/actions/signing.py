"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` per secret.

Secrets are `whsec_<base64>` strings read from the variable or file a journey names, at every
attempt, so rotating one needs no restart. Where variables are looked up is chosen where the
worker is assembled (`SigningSecrets`): the process environment, and in `polku dev` also the
demo secret, which is handed over as a value rather than written into the environment.
Several secrets separated by spaces or commas (new first, old still accepted by receivers) make
several signatures: that is how a rotation runs without a moment where the receiver rejects
deliveries.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SECRET_PREFIX = "whsec_"
_SEPARATORS = re.compile(r"[\s,]+")


class SecretUnavailable(Exception):
    """The signing secret of an endpoint is missing or malformed: nothing is sent unsigned."""


def parse_secret(text: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret, decoded as the standardwebhooks library does."""
    if not text.startswith(SECRET_PREFIX):
        raise SecretUnavailable("a signing secret must look like whsec_<base64>")
    encoded = text.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SecretUnavailable("the part after whsec_ is not base64") from exc
    if len(key) < 16:
        raise SecretUnavailable("a signing secret needs at least 16 bytes of key")
    return key


def parse_secrets(text: str) -> list[bytes]:
    return list(_parsed(text))


@functools.lru_cache(maxsize=64)
def _parsed(text: str) -> tuple[bytes, ...]:
    """The keys of a secrets value. The value is still read at every attempt; only decoding the
    same text again is saved (a malformed one raises each time: exceptions are not cached)."""
    secrets = tuple(parse_secret(part) for part in _SEPARATORS.split(text.strip()) if part)
    if not secrets:
        raise SecretUnavailable("the signing secret is empty")
    return secrets


@dataclass(frozen=True, slots=True)
class SigningSecrets:
    """Where endpoints' signing secrets are found: the variable a journey's `secret_env` names,
    looked up in `given` and then in `variables` (a live mapping such as `os.environ`, read at
    every attempt), or the file its `secret_file` names."""

    variables: Mapping[str, str]
    # Secrets handed over as values when the worker is assembled, under the variable name the
    # journeys use (`polku dev`'s demo secret).
    given: Mapping[str, str] = field(default_factory=dict)

    def resolve(self, secret_env: str | None, secret_file: str | None) -> list[bytes]:
        """Read an endpoint's current secret(s); SecretUnavailable names what is wrong, never
        the secret."""
        if secret_env:
            value = self.given.get(secret_env, self.variables.get(secret_env))
            if value is None:
                raise SecretUnavailable(f"environment variable {secret_env} is not set")
            try:
                return parse_secrets(value)
            except SecretUnavailable as exc:
                raise SecretUnavailable(f"{secret_env}: {exc}") from None
        if secret_file:
            try:
                value = Path(secret_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SecretUnavailable(f"secret file {secret_file} cannot be read: "
                                        f"{type(exc).__name__}") from None
            try:
                return parse_secrets(value)
            except SecretUnavailable as exc:
                raise SecretUnavailable(f"{secret_file}: {exc}") from None
        raise SecretUnavailable("the endpoint names no signing secret")


def signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = b"%s.%d.%s" % (webhook_id.encode(), timestamp, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign_headers(keys: Sequence[bytes], webhook_id: str, timestamp: int, body: bytes
                 ) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(k, webhook_id, timestamp, body) for k in keys),
    }
