"""The blocking client: :class:`Client`, its :class:`Queue` and :class:`Group` handles."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from queuey.client import calls
from queuey.client.calls import Call, Receipt, Ref, Since
from queuey.client.core import DEFAULT_RETRY, TIMEOUT, Core, Retry
from queuey.client.errors import (
    AccessDenied,
    ConnectionFailed,
    InvalidQueueName,
    LeaseLost,
    QueueyError,
    StorageUnavailable,
    TooManyRequests,
)
from queuey.client.leases import LeaseKeeper
from queuey.client.models import Delivery, Message, Sent, Tally, Token
from queuey.client.paging import Pager
from queuey.client.sse import EventParser, message_of

T = TypeVar("T")
log = logging.getLogger("queuey.client")

#: Failures a long-running loop (``iter(follow=True)``, ``consume``) waits out.
TRANSIENT = (ConnectionFailed, StorageUnavailable, TooManyRequests)


class Client:
    """A connection pool to one Queuey server, acting as one application.

    ``key`` is an application key, ``token`` a bearer token (both may be given;
    neither reads public queues). ``timeout`` is per request in seconds (or an
    ``httpx.Timeout``); ``retry`` says when to resend (:class:`Retry`, or a number
    of attempts, or None for never). Every post carries a fresh idempotency key
    unless ``idempotent_posts`` is false, so that a resent post is stored once.
    """

    def __init__(
        self,
        url: str,
        app: str,
        key: str | None = None,
        *,
        token: str | None = None,
        timeout: float | httpx.Timeout | None = TIMEOUT,
        retry: Retry | int | None = DEFAULT_RETRY,
        idempotent_posts: bool = True,
        limits: httpx.Limits | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._core = Core(url, app, key, token, timeout, retry, idempotent_posts)
        self._http = httpx.Client(
            base_url=self._core.url,
            headers=self._core.headers,
            timeout=self._core.timeout,
            limits=limits or httpx.Limits(),
            transport=transport,
        )

    @property
    def url(self) -> str:
        return self._core.url

    @property
    def app(self) -> str:
        return self._core.app

    def queue(self, name: str) -> Queue:
        """A handle on a queue of this application (nothing is sent)."""
        return Queue(self, name)

    def queues(
        self, details: bool = False, count: bool = False, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Every queue of the application, in name order, paging with ``next``.

        Items carry ``queue_name``; with ``details`` also the settings, with
        ``count`` also the number of messages.
        """
        offset = None
        while True:
            call = calls.list_queues(self._core.paths, offset, page_size, details, count)
            items, offset = self.call(call)
            yield from items
            if not offset:
                return

    def call(self, call: Call[T]) -> T:
        """Send ``call``, resending it as :class:`Retry` allows; its result, or raise."""
        core = self._core
        attempt = 0
        while True:
            try:
                response = self._http.request(**core.request(call))
            except httpx.RequestError as exc:
                pause = core.retry.after_error(call, attempt, exc)
                if pause is None:
                    raise core.failure(exc) from exc
            else:
                pause = core.retry.after_answer(
                    call, attempt, response.status_code, response.headers
                )
                if pause is None:
                    return core.result(call, response)
            time.sleep(pause)
            attempt += 1

    def patiently(self, call: Call[T], stop: threading.Event | None = None) -> T | None:
        """``call``, waiting out failures that pass (a restarting server) until it answers.

        None only when ``stop`` was set meanwhile.
        """
        while stop is None or not stop.is_set():
            try:
                return self.call(call)
            except TRANSIENT as exc:
                pause = getattr(exc, "retry_after", None) or self._core.retry.max_backoff
                log.warning("%s; trying again in %.1f s", exc, pause)
                if stop is None:
                    time.sleep(pause)
                else:
                    stop.wait(pause)
        return None

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Queue:
    """One queue: its settings, its messages, its consumer groups."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name
        self._paths = client._core.paths

    def __repr__(self) -> str:
        return f"<Queue {self.client.app}/{self.name}>"

    # -- the queue itself ---------------------------------------------------------

    def create(
        self,
        partitions: int | None = None,
        type: str | None = None,
        consistency: str | None = None,
        principles: Sequence[str] | str | None = None,
    ) -> dict[str, Any]:
        """Create the queue; its settings. An existing queue is left as it is (its settings)."""
        fields = {
            "partitions": partitions,
            "type": type,
            "consistency": consistency,
            "principles": principles,
        }
        return self.client.call(calls.create_queue(self._paths, self.name, fields))

    def update(
        self,
        partitions: int | None = None,
        type: str | None = None,
        consistency: str | None = None,
        principles: Sequence[str] | str | None = None,
    ) -> dict[str, Any]:
        """Change the given settings (``principles=""`` clears them); all settings."""
        fields = {
            "partitions": partitions,
            "type": type,
            "consistency": consistency,
            "principles": principles,
        }
        return self.client.call(calls.update_queue(self._paths, self.name, fields))

    def settings(self, count: bool = False) -> dict[str, Any]:
        """The queue's settings from the listing (the owner's right); with ``count``, its size."""
        call = calls.list_queues(self._paths, self.name, 1, True, count)
        items, _ = self.client.call(call)
        if items and items[0].get("queue_name") == self.name:
            return items[0]
        raise _missing(self.name)

    def delete(self) -> None:
        """Delete the queue, its messages and its groups."""
        self.client.call(calls.delete_queue(self._paths, self.name))

    # -- posting ------------------------------------------------------------------

    def post(
        self,
        body: str | bytes,
        ttl: int | None = None,
        partition: int | None = None,
        content_type: str | None = None,
        idempotency_key: str | None = None,
    ) -> Sent:
        """Post one message; where it was stored.

        Without ``idempotency_key`` the client makes one (unless the client was
        made with ``idempotent_posts=False``), so a post resent after a broken
        connection or a 503 is stored once.
        """
        if idempotency_key is None and self.client._core.idempotent_posts:
            idempotency_key = calls.new_idempotency_key()
        call = calls.post(
            self._paths, self.name, body, ttl, partition, content_type, idempotency_key
        )
        return self.client.call(call)

    def post_many(self, messages: Sequence[Mapping[str, Any]]) -> list[Sent]:
        """Post a batch (all or nothing): dicts of ``body``, ``ttl``, ``partition``,
        ``content_type``, ``idempotency_key``; where each was stored, in order."""
        keyed = self.client._core.idempotent_posts
        return self.client.call(calls.post_many(self._paths, self.name, messages, keyed))

    # -- reading ------------------------------------------------------------------

    def read(
        self,
        since: Since | None = None,
        limit: int | None = None,
        order: str | None = None,
        partitions: Iterable[int] | None = None,
        wait: float | None = None,
    ) -> list[Message]:
        """One page of a range read (SPEC §3): ``since`` inclusive, grouped by partition."""
        call = calls.read(self._paths, self.name, since, limit, order, partitions, wait)
        return self.client.call(call)

    def iter(
        self,
        since: Since | None = None,
        partitions: Iterable[int] | None = None,
        follow: bool = False,
        page_size: int = 100,
        wait: float = 20.0,
        poll: float = 0.5,
        stop: threading.Event | None = None,
    ) -> Iterator[Message]:
        """Every message at or after ``since`` once, oldest first in each partition.

        ``partitions``: default every partition of the queue (looked up in the
        listing; a reader who may not list gets partition 1, the API's default).
        With ``follow`` it never ends (unless ``stop`` is set): once caught up it
        waits for new messages (``wait`` seconds per read on a server that holds
        reads, else polling every ``poll`` seconds) and rides out a restarting
        server, resuming where it was.
        """
        chosen = self._partitions(partitions)
        pager = Pager(self._paths, self.name, chosen, since, page_size, wait, poll)
        waited: float | None = None
        while True:
            fresh = 0
            while behind := pager.behind():
                for cursor in behind:
                    page = self._fetch(pager.page(cursor), follow, stop)
                    if page is None:
                        return
                    new = pager.took(cursor, page)
                    fresh += len(new)
                    yield from new
            if not follow or (stop is not None and stop.is_set()):
                return
            pause = pager.pause(fresh, waited)
            if pause and stop is not None and stop.wait(pause):
                return
            if pause and stop is None:
                time.sleep(pause)
            started = time.monotonic()
            if self._fetch(pager.wake_up(), follow, stop) is None:
                return
            waited = time.monotonic() - started
            pager.again()

    def _fetch(self, call: Call[T], follow: bool, stop: threading.Event | None) -> T | None:
        return self.client.patiently(call, stop) if follow else self.client.call(call)

    def _partitions(self, partitions: Iterable[int] | None) -> list[int]:
        if partitions is not None:
            return [int(p) for p in partitions]
        try:
            return list(range(1, int(self.settings()["partitions"]) + 1))
        except (AccessDenied, InvalidQueueName):
            return [1]  # the reads themselves answer for a queue that is not there

    def get(self, refs: Iterable[Ref]) -> list[Message]:
        """Messages by id (``"id"``, ``"N:id"``, or messages), in the order asked; missing ones
        are left out."""
        return self.client.call(calls.get(self._paths, self.name, refs))

    def put(
        self,
        refs: Iterable[Ref],
        body: str | bytes,
        ttl: int | None = None,
        content_type: str | None = None,
    ) -> None:
        """Overwrite (or create) messages by id with this body; their TTL counts from now."""
        self.client.call(calls.put(self._paths, self.name, refs, body, ttl, content_type))

    def delete_messages(self, refs: Iterable[Ref]) -> None:
        """Delete messages by id (absent ones are no error)."""
        self.client.call(calls.delete_messages(self._paths, self.name, refs))

    def stream(
        self,
        since: Since | None = None,
        partitions: Iterable[int] | None = None,
        last_event_id: str | None = None,
        idle_timeout: float = 60.0,
    ) -> Iterator[Message]:
        """Messages as they arrive, over Server-Sent Events (SPEC §7); never ends by itself.

        Starts after ``last_event_id``, else at ``since``, else at the end of the
        queue. A stream that breaks, ends or stays silent for ``idle_timeout``
        seconds (the server sends a heartbeat every 15 s) is opened again after
        the server's ``retry:`` delay with ``Last-Event-ID``: no repeats, no gaps.
        """
        core = self.client._core
        http = self.client._http
        last = last_event_id
        delay = 1.0
        attempt = 0
        connected = False
        timeout = httpx.Timeout(core.timeout.connect, read=idle_timeout)
        while True:
            call = calls.stream(self._paths, self.name, since, partitions, last)
            request = core.request(call)
            request["timeout"] = timeout
            pause: float | None
            try:
                with http.stream(**request) as response:
                    if response.status_code != 200:
                        response.read()
                        pause = core.retry.after_answer(
                            call, attempt, response.status_code, response.headers
                        )
                        if pause is None:
                            core.result(call, response)  # raises the error answered
                            raise QueueyError(f"HTTP {response.status_code}")
                    else:
                        connected, attempt = True, 0
                        parser = EventParser()
                        for chunk in response.iter_bytes():
                            for event in parser.feed(chunk):
                                message = message_of(event)
                                if message is not None:
                                    yield message
                            if parser.last_id is not None:
                                last = parser.last_id
                        delay = parser.retry / 1000 if parser.retry is not None else delay
                        pause = delay
            except httpx.RequestError as exc:
                pause = core.retry.after_error(call, attempt, exc)
                if pause is None and not connected:
                    raise core.failure(exc) from exc
                pause = max(delay, pause or core.retry.pause(attempt))
            time.sleep(pause)
            attempt += 1

    def token(
        self,
        ttl: int | None = None,
        scope: str | Sequence[str] | None = None,
        partitions: Iterable[int] | None = None,
    ) -> Token:
        """Mint a scoped token for this queue (SPEC §8): ``scope`` ``read`` and/or ``consume``."""
        return self.client.call(calls.token(self._paths, self.name, ttl, scope, partitions))

    # -- consumer groups ----------------------------------------------------------

    def group(self, name: str) -> Group:
        """A handle on a consumer group of this queue (nothing is sent)."""
        return Group(self, name)

    def groups(self) -> list[dict[str, Any]]:
        """The settings of every consumer group of the queue."""
        return self.client.call(calls.list_groups(self._paths, self.name))


def _missing(name: str) -> InvalidQueueName:
    message = "Queue of that name was not found."
    return InvalidQueueName(f"InvalidQueueName: {message}", 404, {"InvalidQueueName": message})


class Group:
    """A consumer group of a queue (SPEC §6): claim, then ack or release, under leases."""

    def __init__(self, queue: Queue, name: str) -> None:
        self.queue = queue
        self.name = name
        self._client = queue.client
        self._at = (queue.client._core.paths, queue.name, name)

    def __repr__(self) -> str:
        return f"<Group {self._client.app}/{self.queue.name}/{self.name}>"

    def create(
        self,
        guarantee: str | None = None,
        lease_seconds: int | None = None,
        max_deliveries: int | None = None,
        dead_letter_queue: str | None = None,
        ordered: bool | None = None,
        start: Since | None = None,
    ) -> dict[str, Any]:
        """Create the group (or change the given settings of an existing one); its settings.

        ``start`` (``"earliest"``, ``"latest"``, a timestamp or an id) only on creation.
        """
        fields = {
            "guarantee": guarantee,
            "lease_seconds": lease_seconds,
            "max_deliveries": max_deliveries,
            "dead_letter_queue": dead_letter_queue,
            "ordered": ordered,
            "start": start if start in (None, "earliest", "latest") else calls.since_text(start),
        }
        return self._client.call(calls.put_group(*self._at, fields))

    def update(
        self,
        guarantee: str | None = None,
        lease_seconds: int | None = None,
        max_deliveries: int | None = None,
        dead_letter_queue: str | None = None,
        ordered: bool | None = None,
    ) -> dict[str, Any]:
        """Change the given settings; all settings."""
        return self.create(guarantee, lease_seconds, max_deliveries, dead_letter_queue, ordered)

    def state(self) -> dict[str, Any]:
        """Settings, counters and each partition's cursor, leases and backlog."""
        return self._client.call(calls.get_group(*self._at))

    def delete(self) -> None:
        self._client.call(calls.delete_group(*self._at))

    def claim(
        self,
        limit: int | None = None,
        wait: float | None = None,
        partitions: Iterable[int] | None = None,
        consumer: str | None = None,
    ) -> list[Delivery]:
        """Lease up to ``limit`` messages, waiting up to ``wait`` seconds for the first."""
        return self._client.call(calls.claim(*self._at, limit, wait, partitions, consumer))

    def ack(self, leases: Iterable[Receipt]) -> list[str]:
        """Acknowledge deliveries (or receipts); the receipts accepted.

        Raises :class:`LeaseLost` if any was lost (``.lost``); the others
        (``.acknowledged``) count all the same.
        """
        return self._client.call(calls.ack(*self._at, leases))

    def ack_and_publish(
        self, leases: Iterable[Receipt], messages: Sequence[Mapping[str, Any]]
    ) -> list[Sent]:
        """Acknowledge and post ``messages`` (batch items plus ``queue``) in one step."""
        return self._client.call(calls.ack_and_publish(*self._at, leases, messages))

    def release(self, leases: Iterable[Receipt], delay: int | None = None) -> list[str]:
        """End leases now; the messages come back after ``delay`` seconds."""
        return self._client.call(calls.release(*self._at, leases, delay))

    def extend(self, leases: Iterable[Receipt], seconds: int | None = None) -> list[str]:
        """Make leases end ``seconds`` from now (default: the group's lease_seconds)."""
        return self._client.call(calls.extend(*self._at, leases, seconds))

    def seek(self, to: Since, partitions: Iterable[int] | None = None) -> dict[str, Any]:
        """Move the group to ``"earliest"``, ``"latest"``, a timestamp or an id; its state."""
        return self._client.call(calls.seek(*self._at, to, partitions))

    def consume(
        self,
        handler: Callable[[Delivery], object],
        limit: int = 10,
        wait: float = 20.0,
        stop: threading.Event | None = None,
        delay: int | None = None,
        partitions: Iterable[int] | None = None,
        consumer: str | None = None,
    ) -> Tally:
        """Claim and hand each message to ``handler`` until ``stop`` is set or Ctrl-C.

        A handler that returns acknowledges its message; one that raises
        releases it (available again after ``delay`` seconds) and the loop goes
        on. Leases are extended in a background thread while the handler runs.
        ``stop`` is looked at between messages and between claims (a claim
        waits up to ``wait`` seconds). On stop or ``KeyboardInterrupt`` the
        messages claimed but not handled are released, and it returns what it did.
        """
        tally = Tally()
        stopped = stop or threading.Event()
        keeper = LeaseKeeper(self.extend)
        try:
            while not stopped.is_set():
                call = calls.claim(*self._at, limit, wait, partitions, consumer)
                batch = self._client.patiently(call, stopped) or []
                keeper.hold(batch)
                for delivery in batch:
                    if stopped.is_set():
                        break
                    self._handle(handler, delivery, keeper, tally, delay)
                self._release(keeper, tally)
        except KeyboardInterrupt:
            self._release(keeper, tally)
        finally:
            keeper.close()
        return tally

    def _handle(
        self,
        handler: Callable[[Delivery], object],
        delivery: Delivery,
        keeper: LeaseKeeper,
        tally: Tally,
        delay: int | None,
    ) -> None:
        if keeper.is_lost(delivery):
            keeper.drop(delivery)
            tally.lost += 1
            return
        try:
            handler(delivery)
        except Exception:
            keeper.drop(delivery)
            tally.failed += 1
            log.exception("handler failed on %s; releasing it", delivery.ref)
            tally.released += self._settle(lambda: self.release([delivery], delay), tally, 1)
            return
        keeper.drop(delivery)
        tally.handled += 1
        tally.acknowledged += self._settle(lambda: self.ack([delivery]), tally, 1)

    def _release(self, keeper: LeaseKeeper, tally: Tally) -> None:
        """Give back what was claimed and not handled (on stop)."""
        held = keeper.held()
        for delivery in held:
            keeper.drop(delivery)
        if held:
            tally.released += self._settle(lambda: self.release(held), tally, len(held))

    @staticmethod
    def _settle(action: Callable[[], object], tally: Tally, count: int) -> int:
        """Run an ack or release of ``count`` messages; how many counted (the rest: lost)."""
        try:
            action()
        except LeaseLost as exc:
            tally.lost += len(exc.lost)
            return count - len(exc.lost)
        except TRANSIENT as exc:
            log.warning("could not settle %d message(s): %s", count, exc)
            tally.lost += count
            return 0
        return count
