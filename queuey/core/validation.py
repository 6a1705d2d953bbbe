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

#: Queue and group names: 1-50 of these characters, except "." and "..".
QUEUE_NAME = re.compile(r"(?!\.\.?$)[A-Za-z0-9_.@:+=~-]{1,50}")
APP_NAME = re.compile(r"[A-Za-z0-9_]+")
#: ASCII digits only (``\d`` would take any script's digits: "٣" is not 3 here).
_INTEGER = re.compile(r"\s*([+-]?)0*([0-9]+)\s*")
#: Whitespace in principals (SPEC §2: trimmed, none inside an e-mail address): Unicode's
#: White_Space characters, written out as a regular expression class that Python and
#: JSON Schema (ECMA-262) read alike. Not ``\s`` or ``str.strip()``: Python's also take
#: U+001C-U+001F, and ECMA-262's also U+FEFF, so /openapi.json's patterns would disagree.
SPACE = r"[\t\n\x0b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
#: The characters of ``SPACE``, for trimming.
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if re.fullmatch(SPACE, c))
_EMAIL = re.compile(f"[^@,;{SPACE[1:-1]}]+@[^@,;{SPACE[1:-1]}]+")
#: One principal, as the document's ``Principal`` schema states it.
PRINCIPAL = re.compile(f"app:{APP_NAME.pattern}|bid:{_EMAIL.pattern}")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
#: Numbers with more significant digits than this are kept as +-HUGE: larger
#: than every bound, and never converted from text at full length (Python
#: refuses int() of over 4,300 digits).
MAX_DIGITS = 20
HUGE: int = 10**MAX_DIGITS

Errors = dict[str, str]


def clipped(text: str, most: int = 100) -> str:
    """``text`` as an error message quotes it: long values shortened."""
    return text if len(text) <= most else f"{text[:most]}..."


def _shown(value: Any) -> str:
    if isinstance(value, bool):  # a JSON true/false, shown as it was sent, not as Python's
        return "true" if value else "false"
    return clipped(value if isinstance(value, str) else str(value))


def shown_number(number: int, raw: Any = None) -> str:
    """A number as messages show it: shortened when it has over ``MAX_DIGITS`` digits."""
    if abs(number) < HUGE:
        return str(number)
    match = _INTEGER.fullmatch(raw) if isinstance(raw, str) else None
    digits = match.group(2) if match else str(HUGE)
    return f"{'-' if number < 0 else ''}{digits[:MAX_DIGITS]}..."


def given(value: Any) -> bool:
    return value is not None and value != ""


def parse_integer(value: Any) -> int | None:
    """An integer from a JSON number or ASCII digits (sign and spaces tolerated).

    None when ``value`` is not an integer. A value beyond ``MAX_DIGITS``
    significant digits comes back as +-``HUGE``, whatever its length.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return max(-HUGE, min(HUGE, value))
    if isinstance(value, float):
        return parse_integer(int(value)) if value.is_integer() else None
    if not isinstance(value, str):
        return None
    match = _INTEGER.fullmatch(value)
    if match is None:
        return None
    sign, digits = match.groups()
    number = HUGE if len(digits) > MAX_DIGITS else int(digits)
    return -number if sign == "-" else number


def integer(
    value: Any, key: str, errors: Errors, default: int, low: int, high: int | None = None
) -> int:
    """An integer in ``low..high``; JSON numbers and numeric strings alike."""
    if not given(value):
        return default
    number = parse_integer(value)
    if number is None:
        errors[key] = f'"{_shown(value)}" is not a number'
        return default
    if number < low:
        errors[key] = f"{shown_number(number, value)} is less than minimum value {low}"
    elif high is not None and number > high:
        errors[key] = f"{shown_number(number, value)} is greater than maximum value {high}"
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
        item = item.strip(WHITESPACE)
        if not item:
            continue
        if not PRINCIPAL.fullmatch(item):
            errors[key] = f'"{item}" is not a principal (app:NAME or bid:EMAIL)'
            return ()
        found.setdefault(item, None)
    return tuple(found)


#: Idempotency keys: 1 to 128 visible ASCII characters (0x21-0x7E).
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")


def idempotency_key(value: Any, key: str, errors: Errors) -> str | None:
    """An idempotency key (1-128 visible ASCII characters), or None when ``value`` is None.

    The caller decides what else means "not given" (an empty header does).
    """
    if value is None:
        return None
    if not isinstance(value, str) or IDEMPOTENCY_KEY.fullmatch(value) is None:
        errors[key] = (
            f'"{_shown(value)}" is not an idempotency key'
            " (1 to 128 visible ASCII characters, 0x21-0x7E)"
        )
        return None
    return value


def queue_name(value: Any, key: str, errors: Errors) -> str | None:
    """A queue name (1-50 of ``[A-Za-z0-9_.@:+=~-]``, not "." or ".."), or None when not given."""
    if not given(value):
        return None
    if not isinstance(value, str) or QUEUE_NAME.fullmatch(value) is None:
        errors[key] = (
            f'"{_shown(value)}" is not a queue name'
            ' (1 to 50 of A-Z a-z 0-9 _ . @ : + = ~ -, not "." or "..")'
        )
        return None
    return value
