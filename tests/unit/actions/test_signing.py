"""Signatures receivers can verify with the official standardwebhooks library."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.actions.signing import (
    SecretUnavailable,
    SigningSecrets,
    parse_secret,
    sign_headers,
)

NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()
OLD = "whsec_" + base64.b64encode(b"o" * 24).decode()
BODY = '{"type":"contact.stage_changed","contact":"Äijä-1"}'.encode()
# What the distributed actions worker signs with: the process environment, read at every attempt.
resolve_secrets = SigningSecrets(os.environ).resolve


def test_a_signed_delivery_verifies_with_standardwebhooks() -> None:
    headers = sign_headers([parse_secret(NEW)], "msg_1", int(time.time()), BODY)
    assert Webhook(NEW).verify(BODY, headers) == {"type": "contact.stage_changed",
                                                   "contact": "Äijä-1"}


def test_a_tampered_body_or_a_wrong_secret_does_not_verify() -> None:
    headers = sign_headers([parse_secret(NEW)], "msg_1", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(NEW).verify(BODY.replace(b"1", b"2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(OLD).verify(BODY, headers)


def test_during_rotation_both_the_new_and_the_old_secret_verify() -> None:
    keys = [parse_secret(NEW), parse_secret(OLD)]
    headers = sign_headers(keys, "msg_2", int(time.time()), BODY)
    assert headers["webhook-signature"].count("v1,") == 2
    Webhook(NEW).verify(BODY, headers)
    Webhook(OLD).verify(BODY, headers)


def test_secrets_come_from_the_named_environment_variable_or_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("POLKU_TEST_HOOK_SECRET", f"{NEW} {OLD}")
    assert resolve_secrets("POLKU_TEST_HOOK_SECRET", None) == [b"n" * 32, b"o" * 24]
    secret_file = tmp_path / "crm.secret"
    secret_file.write_text(f"{NEW},\n{OLD}\n")
    assert resolve_secrets(None, str(secret_file)) == [b"n" * 32, b"o" * 24]


@pytest.mark.parametrize(("value", "problem"), [
    ("not-a-secret", "whsec_"),
    ("whsec_!!!", "base64"),
    ("whsec_" + base64.b64encode(b"short").decode(), "16 bytes"),
    ("   ", "empty"),
])
def test_unusable_secrets_are_named_without_revealing_them(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("POLKU_TEST_HOOK_SECRET", value)
    with pytest.raises(SecretUnavailable, match=problem) as info:
        resolve_secrets("POLKU_TEST_HOOK_SECRET", None)
    assert "POLKU_TEST_HOOK_SECRET" in str(info.value)
    assert value.strip() == "" or value not in str(info.value)


def test_a_missing_variable_or_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SecretUnavailable, match="POLKU_TEST_UNSET_SECRET is not set"):
        resolve_secrets("POLKU_TEST_UNSET_SECRET", None)
    with pytest.raises(SecretUnavailable, match="cannot be read"):
        resolve_secrets(None, str(tmp_path / "missing"))


def test_a_secret_handed_over_as_a_value_is_found_without_touching_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """How `polku dev` passes its demo secret: beside the environment, not written into it."""
    monkeypatch.delenv("POLKU_TEST_DEMO_SECRET", raising=False)
    secrets = SigningSecrets(os.environ, given={"POLKU_TEST_DEMO_SECRET": NEW})
    assert secrets.resolve("POLKU_TEST_DEMO_SECRET", None) == [b"n" * 32]
    assert "POLKU_TEST_DEMO_SECRET" not in os.environ
    # The other variables are still read from the environment at every attempt: a rotation
    # needs no restart.
    monkeypatch.setenv("POLKU_TEST_HOOK_SECRET", NEW)
    assert secrets.resolve("POLKU_TEST_HOOK_SECRET", None) == [b"n" * 32]
    monkeypatch.setenv("POLKU_TEST_HOOK_SECRET", OLD)
    assert secrets.resolve("POLKU_TEST_HOOK_SECRET", None) == [b"o" * 24]
