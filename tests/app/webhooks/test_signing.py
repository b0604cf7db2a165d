"""Signatures follow Standard Webhooks: the reference library accepts ours and rejects a changed byte."""
from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.webhooks import signing

BODY = '{"type":"payment.succeeded","timestamp":"2025-01-01T00:00:00Z","data":{"user":42,"sequence":1}}'


def test_a_new_secret_is_whsec_and_the_base64_of_32_random_bytes():
    secret = signing.new_secret()

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[len("whsec_"):])) == 32
    assert signing.new_secret() != secret


def test_the_reference_library_verifies_our_signature():
    secret = signing.new_secret()
    headers = signing.headers(secret, "msg_1", int(time.time()), BODY)

    assert Webhook(secret).verify(BODY, headers)["data"]["sequence"] == 1
    assert headers["webhook-signature"].startswith("v1,")


@pytest.mark.parametrize("position", [0, len(BODY) // 2, len(BODY) - 1])
def test_the_reference_library_rejects_a_body_with_one_changed_byte(position):
    secret = signing.new_secret()
    headers = signing.headers(secret, "msg_1", int(time.time()), BODY)
    changed = BODY[:position] + chr(ord(BODY[position]) ^ 1) + BODY[position + 1:]

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(changed, headers)


def test_another_id_timestamp_or_secret_is_rejected():
    secret, now = signing.new_secret(), int(time.time())
    headers = signing.headers(secret, "msg_1", now, BODY)

    for wrong in ({**headers, "webhook-id": "msg_2"}, {**headers, "webhook-timestamp": str(now - 1)}):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(BODY, wrong)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(BODY, headers)
