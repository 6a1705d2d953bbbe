"""What both clients share: where and how to send a call, when to retry, what an answer means."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import msgspec

from queuey.client import errors
from queuey.client.calls import Call, Paths, decode

T = TypeVar("T")

#: The default timeout of one request, in seconds (long polls get their ``wait`` on top).
TIMEOUT = 10.0

#: Failures after which the request surely never reached the server.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
#: Failures after which it may have: resent only when the call allows it.
MAYBE_SENT = (
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.CloseError,
)


@dataclass(frozen=True, slots=True)
class Retry:
    """When and how often to send a request again.

    A request is retried after a connection error, a 503 ``StorageUnavailable``
    or a 429 ``TooManyRequests`` (after its ``Retry-After``), up to ``attempts``
    more times, waiting ``backoff`` seconds doubled each time (with jitter) up
    to ``max_backoff``. Once a request may have reached the server (the
    connection broke mid-way, or a 503) it is resent only where a repeat is
    harmless: reads, deletes, acknowledgements, and posts that carry an
    idempotency key — which the client gives every post by default.
    """

    attempts: int = 5
    backoff: float = 0.2
    max_backoff: float = 5.0
    #: A 429 asking to wait longer than this is raised at once.
    max_retry_after: float = 60.0

    def pause(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        ceiling = min(self.max_backoff, self.backoff * float(2 ** min(attempt, 30)))
        jitter: float = 0.5 + random.random() / 2  # not secrets
        return ceiling * jitter  # jitter, not secrets

    def after_error(self, call: Call[Any], attempt: int, error: Exception) -> float | None:
        """Seconds to wait before resending after a transport error; None: give up."""
        if attempt >= self.attempts:
            return None
        if isinstance(error, NOT_SENT) or (isinstance(error, MAYBE_SENT) and call.resend):
            return self.pause(attempt)
        return None

    def after_answer(
        self, call: Call[Any], attempt: int, status: int, headers: Mapping[str, str]
    ) -> float | None:
        """Seconds to wait before resending after an answer; None: take the answer."""
        if attempt >= self.attempts:
            return None
        if status == 429:
            # A refused request did nothing (SPEC §9): any request may go again.
            wanted = errors.retry_after(headers.get("retry-after"))
            if wanted is not None and wanted > self.max_retry_after:
                return None
            return max(wanted or 0.0, self.pause(attempt))
        if status == 503 and call.resend:
            return self.pause(attempt)
        return None


DEFAULT_RETRY = Retry()
NO_RETRY = Retry(attempts=0)


def authorization(key: str | None, token: str | None) -> dict[str, str]:
    """The ``Authorization`` header for an application key and/or a bearer token."""
    credentials = []
    if key:
        credentials.append(f"Application {key}")
    if token:
        credentials.append(f"Bearer {token}")
    return {"Authorization": "; ".join(credentials)} if credentials else {}


def as_timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    return timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)


class Core:
    """The settings of one client and the protocol steps around a request."""

    def __init__(
        self,
        url: str,
        app: str,
        key: str | None,
        token: str | None,
        timeout: float | httpx.Timeout | None,
        retry: Retry | int | None,
        idempotent_posts: bool,
    ) -> None:
        self.url = url.rstrip("/")
        self.app = app
        self.paths = Paths(app)
        self.headers = {"User-Agent": "queuey-client", **authorization(key, token)}
        self.timeout = as_timeout(timeout)
        if retry is None:
            retry = NO_RETRY
        self.retry = retry if isinstance(retry, Retry) else Retry(attempts=retry)
        self.idempotent_posts = idempotent_posts

    def timeout_for(self, call: Call[Any]) -> httpx.Timeout:
        read = self.timeout.read
        if not call.wait or read is None:
            return self.timeout
        return httpx.Timeout(
            connect=self.timeout.connect,
            read=read + call.wait,
            write=self.timeout.write,
            pool=self.timeout.pool,
        )

    def request(self, call: Call[Any]) -> dict[str, Any]:
        """Keyword arguments of ``httpx.Client.request`` for this call."""
        return {
            "method": call.method,
            "url": call.path,
            "params": call.params or None,
            "headers": call.headers or None,
            "content": call.content,
            "timeout": self.timeout_for(call),
        }

    def failure(self, error: Exception) -> errors.ConnectionFailed:
        """The exception for a request that got no answer."""
        kind = errors.TimedOut if isinstance(error, httpx.TimeoutException) else None
        detail = str(error) or type(error).__name__
        message = f"cannot reach {self.url}: {detail}"
        return (kind or errors.ConnectionFailed)(message, cause=error)

    @staticmethod
    def body(response: httpx.Response) -> Any:
        try:
            return decode(response.content) if response.content else {}
        except msgspec.DecodeError:
            return None

    def result(self, call: Call[T], response: httpx.Response) -> T:
        """The call's result for a 2xx answer; else raise the error the answer names."""
        body = self.body(response)
        if response.is_success and isinstance(body, dict):
            return call.parse(body)
        if response.is_success:
            raise errors.QueueyError(
                f"HTTP {response.status_code} with a body that is not a JSON object",
                response.status_code,
            )
        raise errors.from_answer(response.status_code, body, response.headers)
