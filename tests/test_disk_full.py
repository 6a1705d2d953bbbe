"""Disk full (SPEC §9): a real ``queuey serve`` whose SQLite file lives on a 4 MiB tmpfs.

Posts fill the disk until they are answered 503; then the heartbeat is 503,
reads still work and other writes are refused. Space comes back two ways,
both without a restart: an operator deletes a file (the reserve is held
again, writes resume), or clients delete messages and a queue (answered 200:
the reserve beside the file was given up for them) and the purge frees a
reserve's worth of the file. A restart on the full disk works too. Mounting
needs root: a machine that cannot mount skips this test, CI fails it.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from queuey.storage.base import StoreUnavailable
from queuey.storage.sqlite import SQLiteStorage
from tests.conftest import in_ci
from tests.fault_support import Queuey, troubles

DISK = "4m"
RESERVE = 512 * 1024
BODY = "x" * 2000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted at the end."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None:
        reason = "cannot mount a tmpfs: no mount command"
    else:
        command = ["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(mount)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        reason = f"cannot mount a tmpfs: {result.stderr.strip() or result.returncode}"
        if result.returncode == 0:
            try:
                yield mount
            finally:
                subprocess.run(["umount", str(mount)], check=False)
            return
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


def post_batch(http: httpx.Client, queue: str, count: int) -> httpx.Response:
    return http.post(f"/v1/app1/{queue}", json={"messages": [{"body": BODY}] * count})


def fill(http: httpx.Client, queue: str) -> list[str]:
    """Post until the disk is full (a 503); the ids stored."""
    stored: list[str] = []
    for _ in range(200):  # 4 MiB holds fewer than 2,000 of these messages
        answer = post_batch(http, queue, 20)
        if answer.status_code != 201:
            break
        stored += [m["key"] for m in answer.json()["messages"]]
    assert answer.status_code == 503, answer.text
    assert list(answer.json()["error_msg"]) == ["StorageUnavailable"]
    return stored


def until_stored(http: httpx.Client, queue: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while (answer := post_batch(http, queue, 5)).status_code != 201:
        assert answer.status_code == 503, answer.text
        assert time.monotonic() < deadline, "writes did not resume"
        time.sleep(0.2)


def test_a_full_disk_refuses_writes_takes_deletions_and_recovers(
    small_disk: Path, tmp_path: Path
) -> None:
    db = small_disk / "queuey.db"
    ballast = small_disk / "ballast"  # what an operator will delete to make room
    ballast.write_bytes(b"b" * 1536 * 1024)
    server = Queuey(
        tmp_path / "run", db, storage={"reserve_bytes": RESERVE, "purge_interval": 1.0}
    ).start()
    try:
        reserve = Path(f"{db}.reserve")
        assert reserve.stat().st_size == RESERVE
        with server.client() as http:
            for name in ("fill", "later"):
                assert http.post("/v1/app1", data={"queue_name": name}).status_code == 201
            stored = fill(http, "fill")
            assert len(stored) > 300
            assert not reserve.exists()  # given up for the deletions
            assert http.get("/__heartbeat__").status_code == 503

            # An operator makes room: the reserve is held again and writes resume.
            ballast.unlink()
            until_stored(http, "later")
            assert http.get("/__heartbeat__").status_code == 200
            assert reserve.stat().st_size == RESERVE

            stored += fill(http, "fill")
            assert not reserve.exists()

            # While writes fail: heartbeat 503, reads work, other writes are refused.
            heartbeat = http.get("/__heartbeat__")
            assert heartbeat.status_code == 503
            assert list(heartbeat.json()["error_msg"]) == ["StorageUnavailable"]
            assert http.get("/__lbheartbeat__").status_code == 200
            page = http.get("/v1/app1/fill", params={"limit": 5})
            assert page.status_code == 200 and len(page.json()["messages"]) == 5
            assert http.get(f"/v1/app1/fill/{stored[-1]}").json()["messages"][0]["body"] == BODY
            assert post_batch(http, "later", 1).status_code == 503
            assert http.post("/v1/app1", data={"queue_name": "new"}).status_code == 503

            # Deletions commit on the full disk.
            assert http.delete(f"/v1/app1/fill/{','.join(stored[:100])}").status_code == 200
            assert http.get(f"/v1/app1/fill/{stored[0]}").json()["messages"] == []
            assert http.delete("/v1/app1/fill").status_code == 200

            # The purge frees the deleted queue's pages; then writes resume, no restart.
            until_stored(http, "later")
            assert http.get("/__heartbeat__").status_code == 200
            for _ in range(20):
                assert post_batch(http, "later", 5).status_code == 201
            assert http.post("/v1/app1", data={"queue_name": "new"}).status_code == 201
        server.stop()
        # The disk is still nearly full (SQLite keeps freed pages in the file): a restart works.
        with server.start().client() as http:
            assert http.get("/__heartbeat__").status_code == 200
            later = http.get("/v1/app1/later", params={"limit": 1000}).json()["messages"]
            assert len(later) == 110
    finally:
        server.stop()
    log = server.output()
    assert log.count("the disk is full: gave up the reserve") == 2
    assert "space returned on the disk: the reserve is held again" in log
    assert "space returned (" in log
    assert not [line for line in troubles(log) if "Traceback" in line], log


async def test_the_heartbeat_reports_failing_writes_until_one_succeeds(tmp_path: Path) -> None:
    """Any trouble of the file (here an I/O error) makes ping() fail until a write commits."""
    store = SQLiteStorage(tmp_path / "q.db", reserve_bytes=0)
    await store.start()
    try:
        await store.ping()

        def broken(conn: sqlite3.Connection, txn: object) -> None:
            error = sqlite3.OperationalError("disk I/O error")
            error.sqlite_errorcode = sqlite3.SQLITE_IOERR_WRITE
            raise error

        with pytest.raises(StoreUnavailable):
            await store._writer.submit(broken, durable=True)
        with pytest.raises(StoreUnavailable, match="disk I/O error"):
            await store.ping()
        await store._writer.submit(lambda conn, txn: None, durable=True)
        await store.ping()
    finally:
        await store.close()
