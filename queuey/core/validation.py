"""Parsing request values into typed ones, with the messages old clients match on.

Each parser takes the raw value (a string from a query, form or header, or a
JSON value), the field's key, and an ``errors`` dict that collects every
invalid field so that a request reports them all together. A value of None
or "" means "not given" and yields the default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

QUEUE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,50}")
APP_NAME = re.compile(r"[A-Za-z0-9_]+")
_INTEGER = re.compile(r"[+-]?\d+")
_EMAIL = re.compile(r"[^@\s,;]+@[^@\s,;]+")
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")

Errors = dict[str, str]


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def given(value: Any) -> bool:
    return value is not None and value != ""


def integer(
    value: Any, key: str, errors: Errors, default: int, low: int, high: int | None = None
) -> int:
    """An integer in ``low..high``; JSON numbers and numeric strings alike."""
    if not given(value):
        return default
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and _INTEGER.fullmatch(value.strip())
    ):
        number = int(value)
    if number is None:
        errors[key] = f'"{_shown(value)}" is not a number'
        return default
    if number < low:
        errors[key] = f"{number} is less than minimum value {low}"
    elif high is not None and number > high:
        errors[key] = f"{number} is greater than maximum value {high}"
    return number


def choice(value: Any, key: str, errors: Errors, default: str, choices: Sequence[str]) -> str:
    if not given(value):
        return default
    if not isinstance(value, str) or value not in choices:
        errors[key] = f'"{_shown(value)}" is not one of {", ".join(choices)}'
        return default
    return value


def boolean(value: Any, key: str, errors: Errors, default: bool = False) -> bool:
    if not given(value):
        return default
    if isinstance(value, bool):
        return value
    text = _shown(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    errors[key] = f'"{_shown(value)}" is not one of true, false'
    return default


def principles(value: Any, key: str, errors: Errors) -> tuple[str, ...]:
    """``app:NAME`` and ``bid:EMAIL`` principals, trimmed and without duplicates.

    Accepts a comma-separated string or (from JSON) a list of strings.
    """
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = list(value)
    else:
        errors[key] = "must be a comma-separated string or a list of strings"
        return ()
    found: dict[str, None] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        scheme, _, name = item.partition(":")
        ok = (scheme == "app" and APP_NAME.fullmatch(name)) or (
            scheme == "bid" and _EMAIL.fullmatch(name)
        )
        if not ok:
            errors[key] = f'"{item}" is not a principal (app:NAME or bid:EMAIL)'
            return ()
        found.setdefault(item, None)
    return tuple(found)


def queue_name(value: Any, key: str, errors: Errors) -> str | None:
    """A queue name (1-50 of ``[A-Za-z0-9_.-]``), or None when not given."""
    if not given(value):
        return None
    if not isinstance(value, str) or QUEUE_NAME.fullmatch(value) is None:
        errors[key] = f'"{_shown(value)}" is not a queue name (1 to 50 of A-Z a-z 0-9 _ . -)'
        return None
    return value
