"""The blocking :class:`Queue`: a queue's settings, its messages, its consumer groups."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from queuey.client import calls
from queuey.client.calls import Call, Ref, Since
from queuey.client.errors import AccessDenied, InvalidQueueName
from queuey.client.models import Message, Sent, Token
from queuey.client.paging import Pager
from queuey.client.streaming import Resume
from queuey.client.sync.group import Group

if TYPE_CHECKING:
    from queuey.client.sync.client import Client

T = TypeVar("T")


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
        fields = calls.queue_fields(partitions, type, consistency, principles)
        return self.client.call(calls.create_queue(self._paths, self.name, fields))

    def update(
        self,
        partitions: int | None = None,
        type: str | None = None,
        consistency: str | None = None,
        principles: Sequence[str] | str | None = None,
    ) -> dict[str, Any]:
        """Change the given settings (``principles=""`` clears them); all settings."""
        fields = calls.queue_fields(partitions, type, consistency, principles)
        return self.client.call(calls.update_queue(self._paths, self.name, fields))

    def settings(self, count: bool = False) -> dict[str, Any]:
        """The queue's settings from the listing (the owner's right); with ``count``, its size."""
        return self.client.call(calls.queue_settings(self._paths, self.name, count))

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
        keyed = self.client._core.idempotent_posts
        call = calls.post(
            self._paths, self.name, body, ttl, partition, content_type, idempotency_key, keyed
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
        http = self.client._http
        resume = Resume(
            self.client._core, self.name, since, partitions, last_event_id, idle_timeout
        )
        while True:
            try:
                with http.stream(**resume.request()) as response:
                    if response.status_code != 200:
                        response.read()
                        pause = resume.refused(response)
                    else:
                        resume.opened()
                        for chunk in response.iter_bytes():
                            yield from resume.messages(chunk)
                        pause = resume.ended()
            except httpx.RequestError as exc:
                pause = resume.broken(exc)
            time.sleep(pause)

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
