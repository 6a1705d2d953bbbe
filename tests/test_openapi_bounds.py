"""The numbers and patterns /openapi.json states are the ones the code enforces.

The document is written by hand; these checks keep its bounds, defaults,
choice lists and patterns tied to the constants and regular expressions of
core, so changing one without the other fails here.
"""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from typing import Any

import pytest

from queuey.core import messages, queues, validation
from queuey.core.errors import InvalidMessageID
from queuey.core.ids import format_id, parse_id
from queuey.storage.keys import UNIX_EPOCH_TICKS, MessageKey, new_tail

DOC: dict[str, Any] = json.loads(
    resources.files("queuey.api").joinpath("openapi.json").read_text("utf-8")
)
SCHEMAS = DOC["components"]["schemas"]
PARAMS = DOC["components"]["parameters"]


def parameter(path: str, name: str) -> dict[str, Any]:
    for item in DOC["paths"][path]["get"]["parameters"]:
        if item.get("name") == name:
            schema: dict[str, Any] = item["schema"]
            return schema
    raise AssertionError(f"{path} has no parameter {name}")


def test_numeric_bounds_and_defaults() -> None:
    listing = parameter("/v1/{app}", "limit")
    assert (listing["minimum"], listing["maximum"]) == (1, queues.MAX_LIST)
    assert SCHEMAS["QueueList"]["allOf"][1]["properties"]["queues"]["maxItems"] == queues.MAX_LIST
    read = parameter("/v1/{app}/{queue}", "limit")
    assert (read["minimum"], read["maximum"]) == (1, messages.MAX_READ_LIMIT)
    assert read["default"] == messages.MAX_READ_LIMIT
    assert (SCHEMAS["Partition"]["minimum"], SCHEMAS["Partition"]["maximum"]) == (
        1,
        queues.MAX_PARTITIONS,
    )
    assert PARAMS["X-Partition"]["schema"]["maximum"] == queues.MAX_PARTITIONS
    ttl = PARAMS["X-TTL"]["schema"]
    assert (ttl["minimum"], ttl["maximum"], ttl["default"]) == (
        1,
        messages.MAX_TTL,
        messages.DEFAULT_TTL,
    )
    item = SCHEMAS["Batch"]["properties"]["messages"]
    assert item["maxItems"] == messages.MAX_POST_MESSAGES
    assert item["items"]["properties"]["ttl"]["anyOf"][0]["maximum"] == messages.MAX_TTL
    posted = SCHEMAS["Posted"]["allOf"][1]["properties"]["messages"]
    assert posted["maxItems"] == messages.MAX_POST_MESSAGES


def test_choice_lists_in_the_order_messages_name_them() -> None:
    assert parameter("/v1/{app}/{queue}", "order")["enum"] == list(messages.ORDERS)
    assert SCHEMAS["QueueType"]["enum"] == list(queues.TYPES)
    assert SCHEMAS["Consistency"]["enum"] == list(queues.CONSISTENCIES)


def test_name_patterns_are_the_code_s() -> None:
    assert SCHEMAS["QueueName"]["pattern"] == f"^{validation.QUEUE_NAME.pattern}$"
    assert PARAMS["app"]["schema"]["pattern"] == f"^{validation.APP_NAME.pattern}$"
    key = f"^{validation.IDEMPOTENCY_KEY.pattern}$"
    assert PARAMS["X-Idempotency-Key"]["schema"]["pattern"] == key
    item = SCHEMAS["Batch"]["properties"]["messages"]["items"]["properties"]
    assert item["idempotency_key"]["pattern"] == key


@pytest.mark.parametrize("seed", range(20))
def test_id_patterns_accept_exactly_the_ids_the_code_accepts(seed: int) -> None:
    rng = int.from_bytes(os.urandom(8), "big") ^ seed
    key = MessageKey(UNIX_EPOCH_TICKS + rng % (1 << 58), new_tail())
    made = format_id(key)
    assert re.fullmatch(SCHEMAS["MessageId"]["pattern"], made)
    assert re.fullmatch(PARAMS["ids"]["schema"]["items"]["pattern"], f"2:{made.upper()}")
    assert parse_id(made) == key
    # Other variant bits: refused by the code and by both patterns.
    for variant in "07cf":
        other = made[:16] + variant + made[17:]
        assert not re.fullmatch(SCHEMAS["MessageId"]["pattern"], other)
        assert not re.fullmatch(PARAMS["ids"]["schema"]["items"]["pattern"], other)
        with pytest.raises(InvalidMessageID):
            parse_id(other)
