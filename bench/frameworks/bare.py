"""The ceiling: a raw ASGI handler on granian that reads the body and answers a constant.

No routing, no parsing, no storage: what one core can serve through granian's
ASGI interface at all. Every figure of the comparison is also shown as a share
of this one, measured in the same run.
"""

from __future__ import annotations

from queuey.api.http import Receive, Scope, Send

#: Shaped like Queuey's answer to a POST of one message.
ANSWER = (
    b'{"status":"ok","messages":[{"key":"00000000000000000000000000000000",'
    b'"timestamp":"1795740103.4079008","partition":1}]}'
)
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(ANSWER)).encode()),
    ],
}
_BODY = {"type": "http.response.body", "body": ANSWER}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Read any request body, then answer the same small JSON document."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    await send(_START)
    await send(_BODY)
