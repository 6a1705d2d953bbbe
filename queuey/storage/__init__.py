"""Storage backends, chosen by the scheme of the storage URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from queuey.storage.base import Storage, StorageUnavailable


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
) -> Storage:
    """A backend for ``url`` (not yet started)."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from queuey.storage.sqlite import SQLiteStorage

        return SQLiteStorage(sqlite_path(url), purge_interval=purge_interval)
    if scheme == "cassandra":
        try:
            from queuey.storage.cassandra import CassandraStorage
        except ImportError as exc:  # the driver is an extra
            raise StorageURLError(
                f"the Cassandra backend needs its driver: pip install 'queuey[cassandra]' ({exc})"
            ) from exc
        store: Storage = CassandraStorage.from_url(
            url, settle=settle or {}, create_schema=create_schema
        )
        return store
    raise StorageURLError(f"unknown storage scheme {scheme!r}: use sqlite:// or cassandra://")


__all__ = ["Storage", "StorageURLError", "StorageUnavailable", "open_storage", "sqlite_path"]
