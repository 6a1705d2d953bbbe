"""`queuey serve` and `queuey init` as real processes, over real sockets."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from queuey.config import load
from tests.conftest import APP1, ROOT, Server, free_port, write_config


def queuey(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "queuey.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def test_init_writes_a_fresh_key_and_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "conf" / "queuey.toml"
    first = queuey("init", str(target))
    assert first.returncode == 0, first.stderr
    key = first.stdout.split()[-1]
    assert len(key) == 32 and int(key, 16) >= 0
    assert f'queuey = ["{key}"]' in target.read_text()
    assert f"sqlite:///{tmp_path / 'conf' / 'queuey.db'}" in target.read_text()
    again = queuey("init", str(target))
    assert again.returncode != 0
    assert f'queuey = ["{key}"]' in target.read_text()
    other = queuey("init", str(tmp_path / "other.toml"))
    assert other.stdout.split()[-1] != key
    # A random token_secret too (SPEC §8), 256 bits, URL-safe: a different one each time.
    secrets = [
        re.findall(r'^token_secret = "([A-Za-z0-9_-]{43})"$', path.read_text(), re.MULTILINE)
        for path in (target, tmp_path / "other.toml")
    ]
    assert len(secrets[0]) == len(secrets[1]) == 1 and secrets[0] != secrets[1]
    assert load(str(target), environ={}).token_secret == tuple(secrets[0])


def test_the_readme_shows_what_init_writes(tmp_path: Path) -> None:
    target = tmp_path / "var" / "queuey.toml"
    key = queuey("init", str(target)).stdout.split()[-1]
    written = target.read_text()
    shown = written.replace(key, "f25bfb8fe200475c8a0532a9cbe7651e")
    (secret,) = re.findall(r'token_secret = "([^"]+)"', written)
    shown = shown.replace(secret, "Yq3BzR0u6l8Xc1mKp2sVn5dWf7hTj9aE4gLr0oNi2Uw")
    shown = shown.replace(str(tmp_path), "/home/you/queuey")
    assert f"```toml\n{shown}```\n" in (ROOT / "README.md").read_text()


def test_serve_without_configuration_suggests_init(tmp_path: Path) -> None:
    result = queuey("serve", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "queuey.toml" in result.stderr and "queuey init" in result.stderr


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ('[server]\nport = "high"\n', "server.port: must be int"),
        ("[server]\nspeed = 3\n", "server.speed: unknown setting"),
        ('[application_keys]\na = ["k"]\nb = ["k"]\n', "application_keys.b:"),
        ("[application_keys]\na = []\n", "application_keys.a:"),
        ('[storage]\nurl = "mysql://x"\n[application_keys]\na = ["k"]\n', "storage.url:"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_bad_configuration_stops_with_one_line(tmp_path: Path, config: str, problem: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(config)
    result = queuey("serve", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"{path}: ")
    assert problem in result.stderr


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (("--port", "99999"), "--port: 99999 is not a port (1..65535)"),
        (("--port", "0"), "--port: 0 is not a port (1..65535)"),
        (("--port", "abc"), '--port: "abc" is not a number'),
        (("--port", "9" * 5000), "--port: 999999999999999999999… is not a port (1..65535)"),
        (("--workers", "0"), "--workers: 0 is not a number of workers (at least 1)"),
        (("--workers", "-2"), "--workers: -2 is not a number of workers (at least 1)"),
        (("--workers", "2.5"), '--workers: "2.5" is not a number'),
        (("--port",), "--port: expected one argument"),
        (("--speed", "3"), "queuey: unrecognized arguments: --speed 3"),
    ],
)
def test_bad_flags_stop_with_one_line(tmp_path: Path, flags: tuple[str, ...], line: str) -> None:
    config = write_config(tmp_path / "q.toml", f"sqlite:///{tmp_path / 'q.db'}", free_port())
    result = queuey("serve", "--config", str(config), *flags)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", line + "\n")


def test_a_second_server_on_the_same_port_stops_with_one_line(
    tmp_path: Path, serve: type[Server]
) -> None:
    """Two servers never share a port (granian alone would, through SO_REUSEPORT)."""
    config = write_config(tmp_path / "q.toml", f"sqlite:///{tmp_path / 'q.db'}", 1)
    first = serve(config).start()
    other = tmp_path / "other.toml"
    write_config(other, f"sqlite:///{tmp_path / 'other.db'}", first.port)
    second = queuey("serve", "--config", str(other))
    assert second.returncode == 2
    assert second.stderr == f"{other}: server.port: 127.0.0.1:{first.port} is already in use\n"
    assert second.stdout == ""
    # Every request still reaches the first server and its database.
    with httpx.Client(base_url=first.url, headers=APP1) as http:
        assert http.post("/v1/app1", data={"queue_name": "mine"}).status_code == 201
        for _ in range(20):
            assert http.get("/v1/app1/mine").status_code == 200


def test_a_port_held_by_any_socket_stops_the_start(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = write_config(tmp_path / "q.toml", f"sqlite:///{tmp_path / 'q.db'}", port)
        result = queuey("serve", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr == f"{config}: server.port: 127.0.0.1:{port} is already in use\n"
    assert result.stdout == ""


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT here")
def test_workers_share_one_socket_that_nothing_else_can_join(
    tmp_path: Path, serve: type[Server]
) -> None:
    config = write_config(tmp_path / "q.toml", f"sqlite:///{tmp_path / 'q.db'}", 1)
    server = serve(config, "--workers", "2").start()
    with socket.socket() as intruder:
        intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with pytest.raises(OSError):
            intruder.bind(("127.0.0.1", server.port))
    with httpx.Client(base_url=server.url) as http:
        assert all(http.get("/__lbheartbeat__").status_code == 200 for _ in range(20))


def test_environment_overrides_the_file(
    tmp_path: Path, serve: type[Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "q.toml", f"sqlite:///{tmp_path / 'from-file.db'}", 1)
    db = tmp_path / "from-env.db"
    monkeypatch.setenv("QUEUEY_STORAGE_URL", f"sqlite:///{db}")
    serve(config).start()
    assert db.exists()
    assert not (tmp_path / "from-file.db").exists()


def test_round_trip_over_a_socket(tmp_path: Path, serve: type[Server]) -> None:
    config = write_config(tmp_path / "q.toml", f"sqlite:///{tmp_path / 'q.db'}", 1)
    server = serve(config).start()
    with httpx.Client(base_url=server.url, headers=APP1) as http:
        assert http.post("/v1/app1", data={"queue_name": "socket"}).status_code == 201
        posted = http.post("/v1/app1/socket", content="über", headers={"X-TTL": "60"})
        assert posted.status_code == 201
        key = posted.json()["messages"][0]["key"]
        read = http.get("/v1/app1/socket").json()["messages"]
        assert [(m["message_id"], m["body"]) for m in read] == [(key, "über")]
        assert http.head("/__heartbeat__").content == b""
        assert http.get("/__version__").json()["name"] == "queuey"


def test_two_servers_on_one_file_a_since_reader_sees_each_message_once(
    tmp_path: Path, serve: type[Server]
) -> None:
    """Writers on two processes; a reader paging with ``since`` never skips or repeats."""
    config = write_config(tmp_path / "q.toml", f"sqlite:///{tmp_path / 'shared.db'}", 1)
    servers = [serve(config).start(), serve(config).start()]
    with httpx.Client(base_url=servers[0].url, headers=APP1) as http:
        assert http.post("/v1/app1", json={"queue_name": "shared"}).status_code == 201

    acknowledged: list[str] = []
    lock = threading.Lock()
    writers_done = threading.Event()
    errors: list[str] = []

    def write(url: str, count: int) -> None:
        with httpx.Client(base_url=url, headers=APP1, timeout=30) as http:
            for i in range(count):
                r = http.post("/v1/app1/shared", content=f"{url} {i}")
                if r.status_code != 201:
                    errors.append(r.text)
                    continue
                with lock:
                    acknowledged.append(r.json()["messages"][0]["key"])

    seen: list[str] = []

    def read() -> None:
        since = ""
        with httpx.Client(base_url=servers[1].url, headers=APP1, timeout=30) as http:
            while True:
                finished = writers_done.is_set()
                page = http.get("/v1/app1/shared", params={"since": since, "limit": 50})
                ids = [m["message_id"] for m in page.json()["messages"]]
                if since and ids and ids[0] == since:
                    ids = ids[1:]  # since is inclusive
                seen.extend(ids)
                if ids:
                    since = ids[-1]
                elif finished:
                    return
                else:
                    time.sleep(0.005)

    writers = [threading.Thread(target=write, args=(s.url, 150)) for s in servers for _ in range(2)]
    reader = threading.Thread(target=read)
    reader.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    writers_done.set()
    reader.join(60)
    assert not errors
    assert len(acknowledged) == 600
    assert sorted(seen) == sorted(acknowledged)  # each exactly once
    assert len(seen) == len(set(seen))
    timestamps = [(int(i[13:16] + i[8:12] + i[:8], 16)) for i in seen]
    assert timestamps == sorted(timestamps)
