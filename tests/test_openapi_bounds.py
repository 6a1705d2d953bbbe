"""The numbers and patterns /openapi.json states are the ones the code enforces.

The document is written by hand; these checks keep its bounds, defaults,
choice lists and patterns tied to the constants and regular expressions of
core, so changing one without the other fails here.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
from importlib import resources
from typing import Any

import pytest

from queuey.core import errors, groups, messages, queues, receipts, validation
from queuey.core.errors import InvalidMessageID
from queuey.core.ids import format_id, parse_id
from queuey.storage.groups import DEFAULT_GUARANTEE, GUARANTEES, GroupSettings
from queuey.storage.keys import UNIX_EPOCH_TICKS, MessageKey, new_tail

DOC: dict[str, Any] = json.loads(
    resources.files("queuey.api").joinpath("openapi.json").read_text("utf-8")
)
SCHEMAS = DOC["components"]["schemas"]
PARAMS = DOC["components"]["parameters"]


NOT_GIVEN = {"$ref": "#/components/schemas/NotGiven"}


def given_value(schema: dict[str, Any]) -> dict[str, Any]:
    """A field's first alternative besides "" (not given), with the field's default."""
    assert NOT_GIVEN in schema["anyOf"], schema
    first: dict[str, Any] = schema["anyOf"][0]
    return {**first, **({"default": schema["default"]} if "default" in schema else {})}


def query(path: str, name: str) -> dict[str, Any]:
    """A query parameter's schema (GET and HEAD take the same)."""
    for item in DOC["paths"][path]["get"]["parameters"]:
        if item.get("name") == name:
            head = [p for p in DOC["paths"][path]["head"]["parameters"] if p["name"] == name]
            assert head == [item], f"HEAD {path} differs from GET in {name}"
            schema: dict[str, Any] = item["schema"]
            return schema
    raise AssertionError(f"{path} has no parameter {name}")


def parameter(path: str, name: str) -> dict[str, Any]:
    """A query parameter's schema of given values."""
    return given_value(query(path, name))


def test_empty_values_are_not_given() -> None:
    """SPEC §1: an empty query or form value is "not given", and the code takes "" in JSON so."""
    assert SCHEMAS["NotGiven"]["const"] == ""
    for name in ("limit", "details", "include_count"):
        parameter("/v1/{app}", name)
    for name in ("since", "limit", "order"):
        parameter("/v1/{app}/{queue}", name)
    assert not validation.given("") and not validation.given(None)


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
    assert NOT_GIVEN in item["items"]["properties"]["ttl"]["anyOf"]
    posted = SCHEMAS["Posted"]["allOf"][1]["properties"]["messages"]
    assert posted["maxItems"] == messages.MAX_POST_MESSAGES


def test_one_message_s_headers_are_the_components_beside_anything_for_a_batch() -> None:
    """POST: X-TTL, X-Partition and X-Idempotency-Key state the components' rules for one
    message and admit anything else, which a JSON batch ignores (SPEC §3)."""
    headers = DOC["paths"]["/v1/{app}/{queue}"]["post"]["parameters"]
    assert [h["name"] for h in headers] == ["X-TTL", "X-Partition", "X-Idempotency-Key"]
    for header in headers:
        one, anything = header["schema"]["anyOf"]
        assert one == {"$ref": f"#/components/parameters/{header['name']}/schema"}
        assert set(anything) == {"description"}
    # PUT by ids: X-TTL always applies.
    put = DOC["paths"]["/v1/{app}/{queue}/{ids}"]["put"]["parameters"]
    assert put == [{"$ref": "#/components/parameters/X-TTL"}]


def test_query_booleans_take_the_code_s_words() -> None:
    """The query's boolean words (any case, spaces around) are ``validation``'s."""
    words = query("/v1/{app}", "details")
    assert query("/v1/{app}", "include_count") == words
    assert words["anyOf"] == [{"type": "boolean"}, words["anyOf"][1], NOT_GIVEN]
    pattern = words["anyOf"][1]["pattern"]
    errors: validation.Errors = {}
    for word in (*validation._TRUE, *validation._FALSE):
        for text in (word, word.upper(), word.title(), f" {word} "):
            assert re.fullmatch(pattern, text), text
            assert validation.boolean(text, "k", errors) is (word in validation._TRUE)
            assert not errors
    for text in ("maybe", "2", "tru", "yes no"):
        assert not re.fullmatch(pattern, text), text
        validation.boolean(text, "k", errors)
        assert errors.pop("k"), text


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


def test_principal_patterns_are_the_code_s() -> None:
    one = f"^({validation.PRINCIPAL.pattern})$"
    assert SCHEMAS["Principal"]["pattern"] == one
    space, principal = validation.SPACE, validation.PRINCIPAL.pattern
    listed = f"^{space}*({principal})?{space}*(,{space}*({principal})?{space}*)*$"
    assert SCHEMAS["QueueForm"]["properties"]["principles"]["pattern"] == listed
    assert SCHEMAS["QueueFields"]["properties"]["principles"]["anyOf"][0]["pattern"] == listed


#: Characters some reader of a pattern or some string method calls whitespace: Python's
#: ``\s``/``str.isspace``, ECMA-262's ``\s`` (U+FEFF beside Unicode's White_Space).
SPACE_LIKE = sorted({chr(c) for c in range(0x110000) if chr(c).isspace()} | {"\ufeff"})


def test_principals_whitespace_is_the_same_for_the_code_and_the_document() -> None:
    """Unicode's White_Space, in the code (trimming, e-mail addresses) and the patterns."""
    one = re.compile(SCHEMAS["Principal"]["pattern"])
    listed = re.compile(SCHEMAS["QueueForm"]["properties"]["principles"]["pattern"])
    white_space = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000")
    white_space |= {chr(c) for c in range(0x2000, 0x200B)}
    assert set(validation.WHITESPACE) == white_space
    for c in SPACE_LIKE:
        inside = f"bid:a{c}b@c.example"
        errors: validation.Errors = {}
        validation.principles(inside, "principles", errors)
        assert bool(errors) is (c in white_space), repr(c)
        assert (one.search(inside) is None) is (c in white_space), repr(c)
        assert (listed.search(inside) is None) is (c in white_space), repr(c)
        around = f"{c}app:a{c},{c}bid:x@y{c}"
        errors = {}
        found = validation.principles(around, "principles", errors)
        assert (found == ("app:a", "bid:x@y")) is (c in white_space), repr(c)
        assert (listed.search(around) is not None) is (c in white_space), repr(c)


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


# -- consumer groups ------------------------------------------------------------


def number(field: dict[str, Any]) -> dict[str, Any]:
    """The integer alternative of a JSON body field (integer, numeric string or null)."""
    found: dict[str, Any] = next(a for a in field["anyOf"] if a.get("type") == "integer")
    return found


def bounds(field: dict[str, Any]) -> tuple[int, int]:
    return field["minimum"], field["maximum"]


def test_group_bounds_and_defaults() -> None:
    stored = GroupSettings()
    settings = SCHEMAS["GroupSettings"]["properties"]
    fields = SCHEMAS["GroupFields"]["properties"]
    form = SCHEMAS["GroupForm"]["properties"]
    for name, low, high, default in [
        ("lease_seconds", 1, groups.MAX_LEASE, stored.lease_seconds),
        ("max_deliveries", 0, groups.MAX_DELIVERIES, stored.max_deliveries),
    ]:
        assert bounds(settings[name]) == (low, high), name
        assert bounds(number(fields[name])) == (low, high), name
        assert fields[name]["default"] == default, name
        assert form[name]["default"] == str(default), name
        assert form[name]["description"].endswith(f"{low}..{high}."), name
    assert fields["ordered"]["default"] is stored.ordered
    claim = SCHEMAS["ClaimFields"]["properties"]
    assert bounds(number(claim["limit"])) == (1, groups.MAX_CLAIM)
    assert bounds(number(claim["wait"])) == (0, groups.MAX_WAIT)
    assert claim["consumer"]["maxLength"] == groups.MAX_CONSUMER
    assert SCHEMAS["ClaimForm"]["properties"]["consumer"]["maxLength"] == groups.MAX_CONSUMER
    partition = SCHEMAS["GroupPartition"]["properties"]
    assert partition["consumers"]["items"]["maxLength"] == groups.MAX_CONSUMER
    claimed = SCHEMAS["Claimed"]["allOf"][1]["properties"]
    assert claimed["messages"]["maxItems"] == groups.MAX_CLAIM
    assert bounds(claimed["lease_seconds"]) == (1, groups.MAX_LEASE)
    release = SCHEMAS["ReleaseFields"]["properties"]["delay"]
    assert (*bounds(number(release)), release["default"]) == (0, groups.MAX_LEASE, 0)
    assert bounds(number(SCHEMAS["ExtendFields"]["properties"]["seconds"])) == (
        1,
        groups.MAX_LEASE,
    )
    extended = SCHEMAS["Extended"]["allOf"][1]["properties"]["lease_seconds"]
    assert bounds(extended) == (1, groups.MAX_LEASE)
    assert (SCHEMAS["Receipts"]["minItems"], SCHEMAS["Receipts"]["maxItems"]) == (
        1,
        receipts.MAX_RECEIPTS,
    )
    for name, word in [("Acknowledged", "acknowledged"), ("Released", "released")]:
        answer = SCHEMAS[name]["allOf"][1]["properties"][word]
        assert answer["maxItems"] == receipts.MAX_RECEIPTS, name
    lost = SCHEMAS["LeaseLost"]["allOf"][1]["properties"]["lost"]
    assert lost["maxItems"] == receipts.MAX_RECEIPTS
    publish = SCHEMAS["AckFields"]["properties"]["publish"]
    assert publish["maxItems"] == messages.MAX_POST_MESSAGES


def test_guarantees_in_the_order_messages_name_them() -> None:
    assert SCHEMAS["Guarantee"]["enum"] == list(GUARANTEES)
    assert SCHEMAS["GroupForm"]["properties"]["guarantee"] == {
        "anyOf": [{"$ref": "#/components/schemas/Guarantee"}, NOT_GIVEN]
    }
    described = SCHEMAS["GroupFields"]["properties"]["guarantee"]["description"]
    defaults = ", ".join(f"{c}: {g}" for c, g in DEFAULT_GUARANTEE.items())
    assert defaults in described


def test_group_name_pattern_is_the_code_s() -> None:
    assert SCHEMAS["GroupName"]["pattern"] == f"^{validation.QUEUE_NAME.pattern}$"
    assert PARAMS["group"]["schema"] == {"$ref": "#/components/schemas/GroupName"}


def _key(node: ast.expr) -> str | None:
    """An error key written in code: a string, or an f-string with its holes filled in."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name):
                parts.append("publish.0." if value.value.id == "prefix" else "0")
        return "".join(parts)
    return None


def error_keys_in(source: str) -> set[str]:
    """Keys a module's validation can report: ``errors[KEY]``, ``ValidationError({KEY: ...})``,
    the key argument of the ``validation`` helpers, and 400 error classes it raises."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "errors":
            found.add(_key(node.slice) or "")
        elif isinstance(node, ast.Call):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else node.func
            name = called if isinstance(called, str) else getattr(called, "id", "")
            if name in {"integer", "choice", "boolean", "idempotency_key", "_position",
                        "_partition"} and len(node.args) > 1:  # fmt: skip
                found.add(_key(node.args[1]) or "")
            elif name == "ValidationError" and isinstance(node.args[0], ast.Dict):
                found.update(_key(k) or "" for k in node.args[0].keys if k is not None)
            elif (
                isinstance(error := getattr(errors, name, None), type)
                and issubclass(error, errors.QueueyError)
                and error.status == 400
                and error is not errors.ValidationError
            ):
                found.add(name)
    found.discard("")
    return found


def test_the_group_400_pattern_admits_every_key_the_code_reports() -> None:
    keys = error_keys_in(inspect.getsource(groups)) | error_keys_in(inspect.getsource(receipts))
    items = {k for k in error_keys_in(inspect.getsource(messages.parse_item)) if "." in k}
    assert {"group", "lease_seconds", "receipts", "to", "publish.0.queue"} <= keys
    assert {"publish.0.body", "publish.0.ttl", "publish.0.idempotency_key"} <= items
    # Also raised on the way: a body that is not JSON, an id that is not one.
    keys |= items | {"InvalidJSON", "InvalidMessageID"}
    response = DOC["components"]["responses"]["GroupBadRequest"]
    error_msg = response["content"]["application/json"]["schema"]["allOf"][1]["properties"]
    pattern = error_msg["error_msg"]["propertyNames"]["pattern"]
    assert sorted(k for k in keys if not re.fullmatch(pattern, k)) == []
    for key in sorted(keys):
        named = "publish.N.field" if key.startswith("publish.0.") else key
        assert f"`{named}`" in response["description"], key
