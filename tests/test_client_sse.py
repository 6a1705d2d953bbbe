"""``stream`` and ``token`` on recorded text: the parser reads recorded streams, and
``stream``/``token`` talk to a stand-in that replays recorded answers
(tests/test_client_support.py). ``token`` against a real server: tests/test_tokens.py;
``stream``: tests/test_live_processes.py."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest

from queuey.client import AccessDenied, AsyncClient, Client, Message, QueueyError, Token
from queuey.client.sse import Event, EventParser, message_of
from tests.test_client_support import KEY, Standin, error_body

IDS = [f"{n:08x}ea9011f1977b252b15d35633" for n in (0x55A1E01E, 0x55A1E01F, 0x55A1E020)]


def message_json(n: int, body: str = "hello") -> str:
    item = {
        "message_id": IDS[n],
        "timestamp": f"1795804105.805827{n}",
        "body": body,
        "partition": 1 + n % 2,
        "content_type": "text/plain",
    }
    return msgspec.json.encode(item).decode()


SEPARATED = "line\u2028separator"
#: A stream as SPEC §7 describes one: retry first, heartbeats, one event per message.
RECORDED = (
    "retry: 1000\n\n"
    ": heartbeat\n\n"
    f"id: {IDS[0]}\nevent: message\ndata: {message_json(0)}\n\n"
    ": heartbeat\n\n"
    f"id: {IDS[1]}\nevent: message\ndata: {message_json(1, SEPARATED)}\n\n"
)


def parse(chunks: list[bytes]) -> tuple[list[Event], EventParser]:
    parser = EventParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return events, parser


def test_a_recorded_stream() -> None:
    events, parser = parse([RECORDED.encode()])
    assert [(e.event, e.id) for e in events] == [("message", IDS[0]), ("message", IDS[1])]
    messages = [message_of(e) for e in events]
    assert messages[0] == Message(IDS[0], "1795804105.8058270", "hello", 1, "text/plain")
    # U+2028 is no line end in an event stream (str.splitlines would split there).
    assert messages[1] is not None and messages[1].body == "line\u2028separator"
    assert (parser.retry, parser.last_id) == (1000, IDS[1])


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_split_anywhere_with_any_line_end(ending: str) -> None:
    data = RECORDED.replace("\n", ending).encode()
    whole, _ = parse([data])
    assert len(whole) == 2
    for cut in range(len(data) + 1):
        assert parse([data[:cut], data[cut:]])[0] == whole, cut
    # And one byte at a time (UTF-8 sequences split too).
    assert parse([data[i : i + 1] for i in range(len(data))])[0] == whole


def test_the_rules_of_the_format() -> None:
    text = (
        "\ufeffdata: first\ndata:second\ndata\n\n"  # BOM dropped; no space; a bare field
        "event: other\ndata: x\nid: 7\n\n"  # another kind of event
        "id: 8\n\n"  # no data: nothing dispatched, the id still counts
        "id: bad\0id\nretry: soon\nunknown: y\ndata: z\n\n"  # NUL id and odd retry ignored
        "data: never finished\n"  # no blank line: never dispatched
    )
    events, parser = parse([text.encode()])
    assert events == [
        Event("message", "first\nsecond\n", None),
        Event("other", "x", "7"),
        Event("message", "z", "8"),
    ]
    assert (parser.retry, parser.last_id) == (None, "8")
    assert message_of(events[1]) is None
    with pytest.raises(QueueyError):
        message_of(events[0])


def stream_of(*numbers: int, retry: int = 20) -> list[bytes]:
    """A recorded stream of these messages, in small chunks, as a server sends it."""
    text = f"retry: {retry}\n\n" + "".join(
        f"id: {IDS[n]}\nevent: message\ndata: {message_json(n)}\n\n: heartbeat\n\n" for n in numbers
    )
    data = text.encode()
    return [data[i : i + 50] for i in range(0, len(data), 50)]


@pytest.fixture
def standin() -> Iterator[Standin]:
    with Standin() as s:
        yield s


def test_stream_reconnects_with_last_event_id(standin: Standin) -> None:
    standin.plan = [
        ("stream", stream_of(0, 1)),  # then the connection ends
        ("answer", 503, {}, error_body("StorageUnavailable", "Try later.")),
        ("stream", stream_of(2)),
    ]
    with Client(standin.url, app="app1", key=KEY) as client:
        got = list(itertools.islice(client.queue("q").stream(since="10", partitions=[1, 2]), 3))
    assert [m.message_id for m in got] == IDS
    first, unavailable, again = standin.seen
    assert urlsplit(first.path).path == "/v1/app1/q/stream"
    assert parse_qs(urlsplit(first.path).query) == {"since": ["10"], "partitions": ["1,2"]}
    assert first.headers["accept"] == "text/event-stream"
    assert first.headers["authorization"] == f"Application {KEY}"
    assert "last-event-id" not in first.headers
    assert unavailable.headers["last-event-id"] == again.headers["last-event-id"] == IDS[1]


def test_stream_errors_before_any_event_are_raised(standin: Standin) -> None:
    standin.plan = [("answer", 403, {}, error_body("AccessDenied", "Access was denied."))]
    with Client(standin.url, app="app1", key=KEY) as client, pytest.raises(AccessDenied):
        next(client.queue("q").stream())


async def test_async_stream_reconnects_with_last_event_id(standin: Standin) -> None:
    standin.plan = [("stream", stream_of(0)), ("stream", stream_of(1, 2))]
    async with AsyncClient(standin.url, app="app1", key=KEY) as client:
        got = []
        async for message in client.queue("q").stream(last_event_id="0" * 32):
            got.append(message.message_id)
            if len(got) == 3:
                break
    assert got == IDS
    assert [s.headers["last-event-id"] for s in standin.seen] == ["0" * 32, IDS[0]]


def test_token_minting(standin: Standin) -> None:
    minted = {"status": "ok", "token": "t0k3n", "expires_in": 600, "scope": ["read"]}
    standin.plan = [("answer", 201, {}, minted)]
    with Client(standin.url, app="app1", key=KEY) as client:
        token = client.queue("orders").token(ttl=600, scope="read", partitions=[1])
    assert token == Token("t0k3n", 600, ("read",))
    [request] = standin.seen
    assert (request.method, request.path) == ("POST", "/v1/app1/orders/tokens")
    assert request.json() == {"ttl": 600, "scope": ["read"], "partitions": [1]}
    # The token then works as a bearer credential.
    standin.plan = [("answer", 200, {}, {"status": "ok", "messages": []})]
    with Client(standin.url, app="app1", token=token.token) as reader:
        assert reader.queue("orders").read() == []
    assert standin.seen[-1].headers["authorization"] == "Bearer t0k3n"


async def test_async_token_minting(standin: Standin) -> None:
    minted = {"status": "ok", "token": "t", "expires_in": 60, "scope": ["read", "consume"]}
    standin.plan = [("answer", 201, {}, minted)]
    async with AsyncClient(standin.url, app="app1", key=KEY) as client:
        token = await client.queue("orders").token(scope=["consume"])
    assert token.scope == ("read", "consume")
    assert standin.seen[0].json() == {"scope": ["consume"]}
