"""The loads that drive the peers: wrk for HTTP APIs, natsload for NATS.

Both are :class:`bench.wrk.Load` commands whose output ends with one
``WRK-JSON {...}`` line, so the harness runs them, meters their CPU and
reads their figures the same way: wrk with bench/peers/lua/request.lua
(one request, one header, a JSON body around a 140-byte message), and
bench/peers/natsload (a Go program, since JetStream is not HTTP) that
prints wrk's fields itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import wrk
from bench.harness import SIZE, Harness

REQUEST_LUA = Path(__file__).resolve().parent / "lua" / "request.lua"
MESSAGE = "%MESSAGE%"
"""Stands for the message in a body given to :func:`http_load`."""


def http_load(
    bench: Harness,
    url: str,
    body: str,
    content_type: str = "application/json",
    header: str | None = None,
) -> wrk.Load:
    """wrk POSTing ``body`` (``MESSAGE`` replaced by SIZE bytes) with one more header."""
    args = ["method=POST", f"type={content_type}", f"body={body}", f"size={SIZE}"]
    if header is not None:
        args.append(f"header={header}")
    return wrk.Load(
        script=str(REQUEST_LUA),  # absolute: bench/wrk.py joins it to bench/lua/ unchanged
        url=url,
        args=tuple(args),
        connections=bench.settings.connections,
        cores=bench.loadgen_cores,
    )


def try_once(url: str, body: str, headers: dict[str, str]) -> Any:
    """Send once what :func:`http_load` will send, and return the decoded JSON answer.

    wrk counts only non-2xx answers as errors; an API that answers 200 with an
    error inside (Centrifugo's) or fewer messages than asked is caught here.
    """
    answer = httpx.post(url, content=body.replace(MESSAGE, "x" * SIZE), headers=headers, timeout=30)
    if answer.status_code != 200:
        raise RuntimeError(f"{url} answered {answer.status_code}: {answer.text[:500]}")
    return answer.json()


@dataclass(frozen=True)
class GoLoad(wrk.Load):
    """A load generator other than wrk that takes natsload's flags and prints wrk's line.

    ``script`` is the program, ``url`` the server, ``args`` its flags.
    """

    def command(self, seconds: float) -> list[str]:
        pin = ["taskset", "-c", self.cores] if self.cores else []
        return [
            *pin, self.script, "-server", self.url, "-connections", str(self.connections),
            "-duration", f"{seconds:g}s", "-timeout", self.timeout, *self.args,
        ]  # fmt: skip


def nats_load(bench: Harness, program: Path, url: str, *flags: str) -> GoLoad:
    """natsload against ``url`` with the bench's connections, on wrk's core."""
    return GoLoad(
        script=str(program),
        url=url,
        args=(*flags, "-size", str(SIZE)),
        connections=bench.settings.connections,
        cores=bench.loadgen_cores,
    )
