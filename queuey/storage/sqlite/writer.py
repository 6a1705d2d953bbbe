"""The single writer thread of one SQLite file, with group commit.

Every write of a process goes through one :class:`Writer`: callers
:meth:`~Writer.submit` a job (a function of the write connection and the
transaction) and await the future they get back. The thread takes everything
waiting (up to ``max_batch`` jobs), runs it in one transaction and commits once,
so one fsync serves every request in the batch, then wakes all their futures
with one call per event loop.

Durability: the transaction is fsynced (``synchronous=FULL``) when any job in
it was submitted ``durable``, and only committed (``synchronous=NORMAL``, WAL:
safe from a crash of the process, not of the machine) when none was.

Failures: a job may refuse by raising one of the writer's ``refusals`` before
it writes anything; the refusal goes to its caller and the transaction goes
on. Any other exception rolls the whole transaction back; the jobs then run
again one per transaction, so only the faulty one fails (with
:class:`StoreUnavailable`, the cause chained), unless the file is locked,
which fails them all.

A full disk (SQLITE_FULL) fails the whole transaction and puts the writer in
the disk-full state of ``reserve.py``: the reserve is given up, jobs
submitted with ``frees=True`` (deletions, the purge) are tried once more and
keep running, the others are refused at once until space returns.
:attr:`Writer.failure` names what keeps writes failing (for the heartbeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from queuey.storage.base import StoreUnavailable
from queuey.storage.keys import IdClock
from queuey.storage.sqlite.clock import TxnClock
from queuey.storage.sqlite.marks import mark_all
from queuey.storage.sqlite.reserve import Space

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Most jobs one transaction takes: bounds the latency of the first waiter.
MAX_BATCH = 1024
#: SQLite's primary result codes that mean the file cannot take writes (not one job's fault).
TROUBLE = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PERM,
    }
)


def now_ms() -> int:
    """The wall clock in milliseconds, as message expiries are stored."""
    return int(time.time() * 1000)


class Txn:
    """What a job sees of the transaction it runs in: its time and the file's key clock."""

    __slots__ = ("_conn", "_finishers", "_keys", "_touched", "now_ms")

    def __init__(self, conn: sqlite3.Connection, clock: IdClock) -> None:
        self._conn = conn
        self._keys = TxnClock(conn, clock)
        self._touched: set[int] = set()
        self._finishers: list[Callable[[], None]] = []
        #: The transaction's time (ms): expiries of its writes count from here.
        self.now_ms = now_ms()

    def before_commit(self, write: Callable[[], None]) -> None:
        """Call ``write`` once, before COMMIT, after every job: for writes gathered in memory.

        A write that several jobs of the transaction change (a group's window)
        is then written once, not once per job. If it raises, the transaction
        fails as if a job had.
        """
        self._finishers.append(write)

    def take(self, count: int) -> int:
        """Reserve ``count`` consecutive key timestamps above everything committed to the file."""
        return self._keys.take(count)

    def touch(self, qid: int) -> None:
        """Note that messages of queue ``qid`` were written (its change mark moves at COMMIT)."""
        self._touched.add(qid)

    def _finish(self) -> None:
        """Run the gathered writes, record the keys taken and the queues touched (before COMMIT).

        A touched queue's mark becomes the largest key taken here (one more
        tick is taken when none was: an overwrite by id takes no key), so
        marks, like keys, increase in commit order across processes.
        """
        for write in self._finishers:
            write()
        if self._touched:
            last = self._keys.last
            mark_all(self._conn, self._touched, last if last is not None else self._keys.take(1))
        self._keys.flush()


#: A unit of work for the writer: runs inside the transaction, returns the caller's result.
Job: TypeAlias = Callable[[sqlite3.Connection, Txn], T]


@dataclass(slots=True)
class _Pending:
    job: Job[Any]
    durable: bool
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    frees: bool = False


_Outcome: TypeAlias = tuple[_Pending, Any, BaseException | None]


class Writer:
    """The one thread that writes to a file, committing what is waiting in one transaction."""

    def __init__(
        self,
        *,
        refusals: tuple[type[Exception], ...] = (),
        max_batch: int = MAX_BATCH,
        space: Space | None = None,
    ) -> None:
        """``refusals``: exceptions a job raises, before writing, to turn its caller away.

        They reach the caller unchanged and leave the rest of the transaction
        alone. ``max_batch``: most jobs per transaction. ``space``: the
        disk-full state and reserve (default: none, writes are always tried).
        """
        self._refusals = refusals
        self._max_batch = max_batch
        self._clock = IdClock()
        self._jobs: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._accepting = False
        self._accept_lock = threading.Lock()
        #: Transactions committed, and how many of them were fsynced (for tests and stats).
        self.commits = 0
        self.synced_commits = 0
        #: Stats hook: called on the writer thread after each transaction with the jobs it
        #: ran, whether it was fsynced, and the seconds its COMMIT took (the fsync, if any).
        self.on_commit: Callable[[int, bool, float], None] | None = None
        self._commit_seconds = 0.0
        self._space = space or Space(None)
        self._failure: str | None = None

    @property
    def failure(self) -> str | None:
        """Why writes fail now, or None: the disk is full, or the last transaction's trouble.

        Set when a transaction fails for the file's sake (a full disk, an I/O
        error, a read-only file), cleared when one commits again.
        """
        if self._space.full:
            return "the disk is full: only deletions are taken until space returns"
        return self._failure

    @property
    def disk_full(self) -> bool:
        """True from a write that found the disk full until space returns."""
        return self._space.full

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, conn: sqlite3.Connection) -> None:
        """Start the thread; it owns ``conn`` from now on and closes it when it stops."""
        self._space.start(conn)
        self._jobs = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._loop, args=(conn,), name="queuey-sqlite-write", daemon=True
        )
        self._accepting = True
        self._thread.start()

    async def stop(self) -> None:
        """Run the jobs already submitted, then stop; later submits are refused. Idempotent."""
        with self._accept_lock:
            if self._accepting:
                self._accepting = False
                self._jobs.put(None)
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    def submit(self, job: Job[T], durable: bool, frees: bool = False) -> asyncio.Future[T]:
        """Queue ``job`` for the next transaction; its future resolves once that transaction ends.

        Call from a running event loop; the future belongs to that loop.
        ``job(conn, txn)`` runs on the writer thread inside a transaction shared
        with other jobs: it must not BEGIN, COMMIT or ROLLBACK, must not block on
        anything but SQLite, and must check whatever can refuse it (raising one
        of ``refusals``) before it writes, because a refusal does not undo what
        the job wrote. It may call ``txn.take(n)`` for message keys in commit
        order. ``durable`` asks for an fsync before the future resolves.
        ``frees``: the job only deletes, so it runs on a full disk too.

        The future's result is what ``job`` returned, once the transaction has
        committed (and been fsynced if ``durable``). Its exception is a refusal
        as raised, or :class:`StoreUnavailable` when the write failed or the
        writer stopped: then nothing of this job was stored. Raises
        :class:`StoreUnavailable` at once if the writer is not running.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._accept_lock:
            if not self._accepting:
                raise StoreUnavailable("the store is closed")
            self._jobs.put(_Pending(job, durable, future, loop, frees))
        return future

    # -- the thread ----------------------------------------------------------

    def _loop(self, conn: sqlite3.Connection) -> None:
        synchronous = "NORMAL"
        try:
            while True:
                first = self._jobs.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < self._max_batch:
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                batch = self._admit(batch)
                if not batch:
                    if stop:
                        return
                    continue
                wanted = "FULL" if any(p.durable for p in batch) else "NORMAL"
                if wanted != synchronous:
                    try:
                        conn.execute(f"PRAGMA synchronous = {wanted}")
                        synchronous = wanted
                    except sqlite3.Error:
                        log.exception("cannot set synchronous=%s", wanted)
                outcomes = self._run(conn, batch)
                self.commits += 1
                self.synced_commits += synchronous == "FULL"
                _resolve(outcomes)
                if self.on_commit is not None:
                    self._report(len(batch), synchronous == "FULL")
                if stop:
                    return
        finally:
            conn.close()
            with self._accept_lock:
                self._accepting = False
            # Anything still queued will never run: fail it rather than hang its caller.
            leftovers: list[_Outcome] = []
            while True:
                try:
                    pending = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if pending is not None:
                    leftovers.append((pending, None, StoreUnavailable("the store is closed")))
            _resolve(leftovers)

    def _admit(self, batch: list[_Pending]) -> list[_Pending]:
        """The jobs that may run now; the others are refused (the disk is full)."""
        admitted = [p for p in batch if self._space.admits(p.frees)]
        if len(admitted) < len(batch):
            error = StoreUnavailable("the disk is full; writes are refused until space returns")
            kept = {id(p) for p in admitted}
            _resolve([(p, None, error) for p in batch if id(p) not in kept])
        return admitted

    def _report(self, jobs: int, synced: bool) -> None:
        """Call the stats hook; its failure must not stop the writer."""
        assert self.on_commit is not None
        try:
            self.on_commit(jobs, synced, self._commit_seconds)
        except Exception:
            log.exception("the writer's stats hook failed")

    def _run(self, conn: sqlite3.Connection, batch: list[_Pending]) -> list[_Outcome]:
        """Run every job in one transaction and commit once (see the module's "Failures")."""
        outcomes: list[_Outcome] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            txn = Txn(conn, self._clock)
            for pending in batch:
                try:
                    value = pending.job(conn, txn)
                except self._refusals as exc:
                    outcomes.append((pending, None, exc))
                else:
                    outcomes.append((pending, value, None))
            txn._finish()
            began = time.perf_counter()
            conn.execute("COMMIT")
            self._commit_seconds = time.perf_counter() - began
        except Exception as exc:  # handed to the waiting requests as StoreUnavailable
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            code = getattr(exc, "sqlite_errorcode", -1) & 0xFF
            if code in TROUBLE:
                self._failure = f"{type(exc).__name__}: {exc}"
            if code == sqlite3.SQLITE_FULL:
                return self._when_full(conn, batch, exc)
            locked = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
            if len(batch) > 1 and not locked:
                return [o for pending in batch for o in self._run(conn, [pending])]
            if isinstance(exc, sqlite3.Error):
                log.warning("SQLite transaction failed: %s", exc)
            else:  # not SQLite's own trouble: a value it cannot store, or a bug
                log.warning("SQLite write job failed", exc_info=exc)
            return [(pending, None, _unavailable(exc)) for pending in batch]
        self._failure = None
        try:
            self._space.after_commit(conn)
        except sqlite3.Error:
            log.exception("cannot tell the free space of the file")
        return outcomes

    def _when_full(
        self, conn: sqlite3.Connection, batch: list[_Pending], exc: Exception
    ) -> list[_Outcome]:
        """No room for the transaction: only deletions get one more try, on the reserve."""
        log.warning("SQLite transaction failed: %s", exc)
        again = [p for p in batch if p.frees] if self._space.on_full(conn) else []
        error = _unavailable(exc)
        failed: list[_Outcome] = [(p, None, error) for p in batch if not p.frees or not again]
        return failed + (self._run(conn, again) if again else [])


def _unavailable(exc: Exception) -> StoreUnavailable:
    error = StoreUnavailable(f"SQLite write failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _resolve(outcomes: list[_Outcome]) -> None:
    """Hand outcomes to their event loops: one wake-up per loop, not one per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(_settle, items)


def _settle(outcomes: list[_Outcome]) -> None:
    for pending, value, error in outcomes:
        if pending.future.done():  # the request went away
            continue
        if error is not None:
            pending.future.set_exception(error)
        else:
            pending.future.set_result(value)
