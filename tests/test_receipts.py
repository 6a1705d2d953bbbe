"""Receipts (core/receipts.py): signed with keyed BLAKE2b; those signed by earlier builds
(HMAC-SHA256) still accepted, so leases survive an upgrade; anything else refused."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from queuey.core import receipts
from queuey.storage.base import Queue, QueueSettings
from queuey.storage.groups import Group, GroupSettings
from queuey.storage.keys import MessageKey
from queuey.storage.window import Receipt

SECRET = bytes(range(32))
QUEUE = Queue("app", "q", QueueSettings(), 0.0, "7")
GROUP = Group(QUEUE, "g", GroupSettings(), 0.0, "3")
RECEIPT = Receipt(2, MessageKey(138_000_000_000_000_000, b"\x80" * 8), 1, 42)


def split(text: str) -> tuple[bytes, bytes]:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return raw[:-16], raw[-16:]


def join(payload: bytes, signature: bytes) -> str:
    return base64.urlsafe_b64encode(payload + signature).rstrip(b"=").decode()


def test_a_receipt_names_its_lease_and_is_signed_with_keyed_blake2b() -> None:
    text = receipts.encode(SECRET, GROUP, RECEIPT)
    payload, signature = split(text)
    assert signature == hashlib.blake2b(payload, key=SECRET, digest_size=16).digest()
    assert receipts.decode(SECRET, GROUP, text) == RECEIPT


def test_receipts_signed_by_earlier_builds_are_still_accepted() -> None:
    payload, _ = split(receipts.encode(SECRET, GROUP, RECEIPT))
    earlier = join(payload, hmac.new(SECRET, payload, hashlib.sha256).digest()[:16])
    assert receipts.decode(SECRET, GROUP, earlier) == RECEIPT


@pytest.mark.parametrize(
    "forge",
    [
        lambda p, s: join(p, bytes(16)),  # made up
        lambda p, s: join(p[:-1] + bytes([p[-1] ^ 1]), s),  # another lease token
        lambda p, s: join(p, hashlib.blake2b(p, key=bytes(32), digest_size=16).digest()),
        lambda p, s: join(p, hmac.new(bytes(32), p, hashlib.sha256).digest()[:16]),
    ],
    ids=["zeros", "tampered", "other-store-blake2b", "other-store-hmac"],
)
def test_receipts_this_store_did_not_sign_are_foreign(forge: object) -> None:
    payload, signature = split(receipts.encode(SECRET, GROUP, RECEIPT))
    forged = forge(payload, signature)  # type: ignore[operator]
    with pytest.raises(receipts.Foreign):
        receipts.decode(SECRET, GROUP, forged)
