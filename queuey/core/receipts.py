"""Receipts of consumer groups: opaque to clients, unforgeable, naming their group.

A receipt is the URL-safe base64 (no padding) of a msgpack list — queue
incarnation, group name, group incarnation, partition, message key, seek
epoch, lease token — followed by its 128-bit keyed BLAKE2b under the store's
secret (``GroupStorage.receipt_secret``; BLAKE2b is a MAC when keyed, a third
of HMAC-SHA256's cost here, which a claim of 100 and its ack pay 200 times).
Receipts of earlier builds, signed with the first 128 bits of HMAC-SHA256,
are still accepted, so leases survive an upgrade. So a receipt naming
another queue or group, or not signed by this store, is recognised without a
lookup (400), and one of an earlier incarnation of this group is known to be
lost (409). Receipts are signed, not encrypted: their holder can read them.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

import msgspec

from queuey.core import validation as v
from queuey.core.errors import ValidationError
from queuey.storage.groups import Group
from queuey.storage.keys import MessageKey
from queuey.storage.window import Receipt

MAX_RECEIPTS = 1000
_SIGNATURE = 16
_encode_payload = msgspec.msgpack.Encoder().encode
_decode_payload = msgspec.msgpack.Decoder(list[Any]).decode


class Foreign(Exception):
    """Not a receipt this store issued for this group."""


@functools.lru_cache(maxsize=8)
def _keyed(secret: bytes) -> hashlib.blake2b:
    """BLAKE2b keyed with ``secret``: copied for each receipt instead of keyed again."""
    return hashlib.blake2b(key=secret, digest_size=_SIGNATURE)


def _signed(secret: bytes, payload: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is this store's, now or as earlier builds signed (HMAC-SHA256)."""
    mac = _keyed(secret).copy()
    mac.update(payload)
    if hmac.compare_digest(signature, mac.digest()):
        return True
    earlier = hmac.new(secret, payload, hashlib.sha256).digest()[:_SIGNATURE]
    return hmac.compare_digest(signature, earlier)


# URL-safe base64 without padding, by binascii and a translation (the base64 module's
# wrappers cost as much as the signature, and a claim of 100 and its ack pay 200 times).
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def encode_all(secret: bytes, group: Group, found: Iterable[Receipt]) -> list[str]:
    """The receipt texts of ``found`` (leases of ``group``), in order."""
    keyed = _keyed(secret)
    head = [group.queue.handle, group.name, group.handle]
    texts = []
    for receipt in found:
        key = receipt.key
        payload = _encode_payload(
            [*head, receipt.partition, key.ts, key.tail, receipt.epoch, receipt.token]
        )
        mac = keyed.copy()
        mac.update(payload)
        raw = binascii.b2a_base64(payload + mac.digest(), newline=False)
        texts.append(raw.translate(_URLSAFE).rstrip(b"=").decode("ascii"))
    return texts


def encode(secret: bytes, group: Group, receipt: Receipt) -> str:
    return encode_all(secret, group, [receipt])[0]


def decode(secret: bytes, group: Group, text: str) -> Receipt | None:
    """The receipt; None if it belongs to an earlier incarnation of this group.

    Raises :class:`Foreign` for anything else.
    """
    try:
        padded = text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)
        raw = binascii.a2b_base64(padded)
    except (binascii.Error, ValueError):  # ValueError: not ASCII
        raise Foreign(text) from None
    payload, signature = raw[:-_SIGNATURE], raw[-_SIGNATURE:]
    if len(raw) <= _SIGNATURE or not _signed(secret, payload, signature):
        raise Foreign(text)
    try:
        qhandle, name, ghandle, partition, ts, tail, epoch, token = _decode_payload(payload)
    except (msgspec.DecodeError, ValueError):
        raise Foreign(text) from None
    if qhandle != group.queue.handle or name != group.name:
        raise Foreign(text)
    if ghandle != group.handle:
        return None
    return Receipt(partition, MessageKey(ts, tail), epoch, token)


def parse(secret: bytes, group: Group, value: Any) -> tuple[list[str], list[Receipt | None]]:
    """The ``receipts`` of a request (a list, or one comma-separated form field).

    Returns the texts and, for each, its receipt (None: of an earlier
    incarnation, so lost). Anything that is not a receipt of this group: 400.
    """
    if isinstance(value, str):  # a form field (receipts hold no comma)
        value = [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, list) or not value:
        raise ValidationError({"receipts": "Required"})
    if len(value) > MAX_RECEIPTS:
        raise ValidationError(
            {"receipts": f"{len(value)} is greater than maximum value {MAX_RECEIPTS}"}
        )
    parsed: list[Receipt | None] = []
    for item in value:
        try:
            if not isinstance(item, str):
                raise Foreign(str(item))
            parsed.append(decode(secret, group, item))
        except Foreign:
            raise ValidationError(
                {"receipts": f'"{v.clipped(str(item))}" is not a receipt of this group'}
            ) from None
    return list(value), parsed
