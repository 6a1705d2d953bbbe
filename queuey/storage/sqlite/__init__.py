"""The embedded SQLite backend: one file, WAL, one writer thread with group commit.

Writes go to a single writer thread (``writer.py``). It takes everything
waiting, runs it in one transaction and commits once, so one fsync serves
every request in the batch; the transaction is fsynced (``synchronous=FULL``)
when any write in it asks for ``strong`` or ``very_strong`` durability, and
only committed (``synchronous=NORMAL``, WAL) when all are ``weak``.

Message keys are stamped inside that transaction, above the largest key ever
committed to the file (the ``clock`` row, ``clock.py``). SQLite's write lock
serialises transactions, also between processes sharing the file, so keys
increase in commit order and a reader paging with ``since`` never skips or
repeats one: the settle delay is 0.

Reads run on a small pool of threads, each with its own connection, and small
reads on the event loop's own connection (``connections.py``); WAL lets them
read while the writer writes. The rest: ``schema.py`` (tables, numbered
migrations), ``queues.py`` and ``messages.py`` (the SQL), ``purge.py``
(reclaiming expired and deleted messages in batches), ``store.py`` (the
:class:`SQLiteStorage` that glues them).
"""

from queuey.storage.sqlite.store import SQLiteStorage

__all__ = ["SQLiteStorage"]
