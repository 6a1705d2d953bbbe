"""`queuey bench` against a real `queuey serve` process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import APP1, ROOT, Server, write_config


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "queuey.cli", "bench", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_bench_posts_and_reads_back(tmp_path: Path, serve: type[Server]) -> None:
    config = write_config(tmp_path / "q.toml", f"sqlite:///{tmp_path / 'q.db'}", 1)
    server = serve(config).start()
    common = [server.url, "--app", "app1", "--key", "key1", "--queue", "load"]
    posted = bench(*common, "--create", "--messages", "150", "--size", "64", "--concurrency", "8")
    assert posted.returncode == 0, posted.stderr
    assert "posted 150 messages in 150 requests" in posted.stdout
    assert "errors: 0" in posted.stdout
    batched = bench(*common, "--messages", "50", "--batch", "25")
    assert "posted 50 messages in 2 requests" in batched.stdout
    read = bench(*common, "--read", "--messages", "1000", "--page", "40")
    assert read.returncode == 0, read.stderr
    assert "read 200 messages" in read.stdout
    with httpx.Client(base_url=server.url, headers=APP1) as http:
        stored = http.get("/v1/app1/load", params={"limit": 1000}).json()["messages"]
    assert len(stored) == 200
    assert {len(m["body"]) for m in stored} == {64, 140}


def test_bench_reports_errors_by_status(tmp_path: Path, serve: type[Server]) -> None:
    config = write_config(tmp_path / "q.toml", f"sqlite:///{tmp_path / 'q.db'}", 1)
    server = serve(config).start()
    result = bench(server.url, "--app", "app1", "--key", "key1", "--queue", "missing",
                   "--messages", "5", "--concurrency", "1")  # fmt: skip
    assert result.returncode == 1
    assert "errors: 5 (404: 5)" in result.stdout
