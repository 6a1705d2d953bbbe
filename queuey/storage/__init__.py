"""Storage backends, chosen by the scheme of the storage URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from queuey.storage.base import Storage, StoreUnavailable


class StorageURLError(ValueError):
    """The storage URL cannot be used (unknown scheme, missing parts)."""


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URL."""
    if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
        raise StorageURLError("a SQLite URL is sqlite:///relative/path or sqlite:////absolute/path")
    return url[len("sqlite:///") :]


def open_storage(
    url: str,
    *,
    settle: dict[str, float] | None = None,
    create_schema: bool = True,
    purge_interval: float = 30.0,
    readers: int | None = None,
    busy_timeout: float | None = None,
    purge_batch: int | None = None,
    idempotency_window: int | None = None,
    reserve_bytes: int | None = None,
) -> Storage:
    """A backend for ``url`` (not yet started).

    ``settle`` and ``create_schema`` apply to Cassandra; ``purge_interval``,
    ``readers``, ``busy_timeout`` and ``purge_batch`` to SQLite (see
    :class:`queuey.storage.sqlite.SQLiteStorage`; None keeps the default);
    ``idempotency_window`` (seconds an idempotency key is remembered) to both;
    ``reserve_bytes`` (the disk-full reserve) to SQLite.
    Raises :class:`StorageURLError` for a URL no backend takes, or when the
    backend's driver is not installed.
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from queuey.storage.sqlite import SQLiteStorage
        from queuey.storage.sqlite.store import (
            BUSY_TIMEOUT,
            IDEMPOTENCY_WINDOW,
            PURGE_BATCH,
            READERS,
            RESERVE_BYTES,
        )

        return SQLiteStorage(
            sqlite_path(url),
            readers=READERS if readers is None else readers,
            busy_timeout=BUSY_TIMEOUT if busy_timeout is None else busy_timeout,
            purge_batch=PURGE_BATCH if purge_batch is None else purge_batch,
            purge_interval=purge_interval,
            idempotency_window=(
                IDEMPOTENCY_WINDOW if idempotency_window is None else idempotency_window
            ),
            reserve_bytes=RESERVE_BYTES if reserve_bytes is None else reserve_bytes,
        )
    if scheme == "cassandra":
        try:
            from queuey.storage.cassandra import CassandraStorage
        except ImportError as exc:  # the driver is an extra
            raise StorageURLError(
                f"the Cassandra backend needs its driver: pip install 'queuey[cassandra]' ({exc})"
            ) from exc
        store: Storage = CassandraStorage.from_url(
            url,
            settle=settle or {},
            create_schema=create_schema,
            idempotency_window=idempotency_window,
        )
        return store
    raise StorageURLError(f"unknown storage scheme {scheme!r}: use sqlite:// or cassandra://")


__all__ = ["Storage", "StorageURLError", "StoreUnavailable", "open_storage", "sqlite_path"]
