"""Consumer groups on Cassandra (SPEC §6): group rows, and windows changed only by LWTs.

A group is a row of ``groups`` (partition: the queue incarnation, so a queue
created again sees none of the old groups); its ``gid`` names the group's
incarnation. Its delivery state is one ``storage.window.Window`` per queue
partition, a row of ``group_windows`` keyed by ``(gid, partition)``, changed
only by compare-and-set. docs/groups-cassandra.md says what each request
writes and costs, and what holds when a node dies midway.

:class:`Groups` is one object assembled from one part per module:

- ``windows.py``: reading a window, and the compare-and-set that is every
  change of one (ATTEMPTS rounds, SERIAL Paxos, a timed-out write settled by
  its ``writer`` id); the web node's clock; a group's window rules;
- ``scans.py``: the settled messages a window sees from its start, and where
  a window begins (earliest, latest, a key);
- ``dead_letters.py``: messages that reached max_deliveries, posted to the
  dead letter queue (once, by idempotency key) before the change that marks
  them dead;
- ``group_rows.py``: create, read, list, update, delete groups; the
  namespace's receipt secret;
- ``claims.py``: claims (read every partition at once, lease where there is
  work) and seeks;
- ``settling.py``: acknowledge, release, extend; acknowledge-and-publish
  (check, guard the leases, publish, acknowledge);
- ``reports.py``: a group's state, each window tidied first.

The parts are mixins of one class, not separate objects: each reaches the
others through ``self`` (a claim's compare-and-set, a release's burial), so
one part's method replaced on a ``Groups`` object is the one every part calls.
"""

from __future__ import annotations

from collections.abc import Callable

from queuey.storage.cassandra.claims import Claims
from queuey.storage.cassandra.dead_letters import Post
from queuey.storage.cassandra.messages import Messages
from queuey.storage.cassandra.queues import Queues
from queuey.storage.cassandra.reports import Reports
from queuey.storage.cassandra.session import Connection
from queuey.storage.cassandra.settling import Settling

__all__ = ["Groups"]


class Groups(Claims, Settling, Reports):
    """The consumer groups of every queue, on one connection.

    ``post``: the store's ``post_messages`` (checks the queue, idempotency
    keys); ``settle``: the settle delay in seconds of a consistency level.
    """

    def __init__(
        self,
        db: Connection,
        queues: Queues,
        messages: Messages,
        *,
        namespace: str,
        post: Post,
        settle: Callable[[str], float],
    ) -> None:
        self._db = db
        self._levels = db.levels
        self._queues = queues
        self._messages = messages
        self._post = post
        self._settle = settle
        self._secret_name = f"receipts/{namespace}"
        self._secret: bytes | None = None
