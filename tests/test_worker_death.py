"""A SIGKILL of ``queuey serve``'s main process takes granian's workers with it (queuey/worker.py).

Real processes: a server with two workers is SIGKILLed by its main pid only
(not its process group, as the fault tests do), and within a few seconds no
worker is left and the port can be bound again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fault_support import Queuey

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that still runs (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            assert exc.errno == errno.EADDRINUSE, exc
            return False
        return True


def test_sigkill_of_the_main_process_takes_the_workers_along(tmp_path: Path) -> None:
    server = Queuey(tmp_path, workers=2).start()
    try:
        spawned = re.findall(r"Spawning worker-\d+ with PID: (\d+)", server.output())
        workers = [int(p) for p in spawned]
        assert len(workers) == 2 and all(alive(p) for p in workers), server.output()
        assert not port_free(server.port)
        os.kill(server.pid, signal.SIGKILL)  # the main process only
        server.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (
            any(alive(p) for p in workers) or not port_free(server.port)
        ):
            time.sleep(0.05)
        assert [p for p in workers if alive(p)] == []
        assert port_free(server.port)
    finally:
        server.stop()


def test_a_worker_whose_parent_died_before_asking_kills_itself() -> None:
    """The race: the parent died before the request; the kernel will send nothing, so the
    process kills itself (here its "parent" is pid 1, never the one it was given)."""
    code = "from queuey.worker import die_with_parent; die_with_parent(1); print('alive')"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == -signal.SIGKILL, done
    assert done.stdout == ""


def test_a_child_asking_dies_when_its_parent_is_killed(tmp_path: Path) -> None:
    """Without granian: a parent forks a child that asks, the parent is SIGKILLed."""
    pidfile = tmp_path / "child"
    code = (
        "import os, time\n"
        "from queuey.worker import die_with_parent\n"
        "parent = os.getpid()\n"
        "if os.fork() == 0:\n"
        "    assert die_with_parent(parent)\n"
        f"    open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text()):
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.02)
        child = int(pidfile.read_text())
        assert alive(child)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 5
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not alive(child)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
