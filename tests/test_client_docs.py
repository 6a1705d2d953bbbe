"""docs/client.md runs: each ``python`` and ``sh`` block, in order, against a live ``queuey serve``.

A ```` ```text ```` block right after a block is its exact standard output. A
block preceded by ``<!-- not run: REASON -->`` is only checked for syntax; the
reasons allowed are the server lacking a feature (SPEC §7, §8) and commands
that never end.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from queuey.client import AsyncClient, AsyncGroup, AsyncQueue, Client, Group, Queue
from tests.conftest import ROOT, Server

DOC = ROOT / "docs" / "client.md"
#: What the examples call the server; the test's server is elsewhere.
DOC_URL = "http://127.0.0.1:5000"
NOT_RUN = re.compile(r"<!-- not run: (.+) -->")
ALLOWED_REASONS = re.compile(r"needs a server with .+ \(SPEC §\d\)|never ends \(.+\)")


@dataclass
class Block:
    language: str
    code: str
    line: int
    output: str | None = None
    not_run: str | None = None


def blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, each with its output block and not-run reason."""
    found: list[Block] = []
    lines = text.splitlines()
    reason = None
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```") and line != "```":
            language, start = line[3:].strip(), index
            index += 1
            body = []
            while lines[index] != "```":
                body.append(lines[index])
                index += 1
            code = "\n".join(body) + "\n"
            if language == "text" and found and found[-1].output is None:
                found[-1].output = code
            else:
                found.append(Block(language, code, start + 1, not_run=reason))
            reason = None
        elif line.strip():
            marked = NOT_RUN.fullmatch(line.strip())
            reason = marked.group(1) if marked else None
        index += 1
    return found


@pytest.fixture
def server(tmp_path: Path, serve: type[Server]) -> tuple[Server, str]:
    """A server whose application ``queuey`` has a fresh key, configured in var/queuey.toml
    (where the shell examples read the key, as after ``make serve``)."""
    key = secrets.token_hex(16)
    config = tmp_path / "var" / "queuey.toml"
    config.parent.mkdir()
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = 1\n\n'
        f'[storage]\nurl = "sqlite:///{tmp_path / "var" / "queuey.db"}"\n\n'
        f'[application_keys]\nqueuey = ["{key}"]\n\n'
        f'[auth]\ntoken_secret = "{secrets.token_urlsafe(32)}"\n',
        encoding="utf-8",
    )
    return serve(config).start(), key


def test_every_example_runs(
    server: tuple[Server, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live, key = server
    monkeypatch.setenv("QUEUEY_KEY", key)
    shell_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("QUEUEY_")},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "QUEUEY_URL": live.url,
        "QUEUEY_APP": "queuey",
        "QUEUEY_KEY": key,
    }
    namespace: dict[str, object] = {"__name__": "docs_client"}
    ran = 0
    for block in blocks(DOC.read_text(encoding="utf-8")):
        if block.language not in ("python", "sh"):
            continue
        where = f"{DOC.relative_to(ROOT)}:{block.line}"
        code = block.code.replace(DOC_URL, live.url)
        if block.not_run is not None:
            assert ALLOWED_REASONS.fullmatch(block.not_run), f"{where}: {block.not_run}"
            assert block.output is None, where
            if block.language == "python":
                compile(code, where, "exec")
            else:
                subprocess.run(["bash", "-n", "-c", code], check=True)
            continue
        if block.language == "python":
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(compile(code, where, "exec"), namespace)
            output = printed.getvalue()
        else:
            result = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", code],
                cwd=tmp_path,
                env=shell_env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, f"{where}: {result.stderr}"
            output = result.stdout
        if block.output is not None:
            assert output == block.output, where
        ran += 1
    assert ran >= 15


@pytest.mark.parametrize("cls", [Client, Queue, Group, AsyncClient, AsyncQueue, AsyncGroup])
def test_every_public_method_is_documented(cls: type) -> None:
    text = DOC.read_text(encoding="utf-8")
    for name, _ in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_") or name in ("call", "patiently", "aclose"):
            continue  # the plumbing below the methods, and AsyncClient's close
        assert f"{name}(" in text or f"`{name}`" in text, f"{cls.__name__}.{name}"


def test_the_markers_are_read() -> None:
    sample = (
        "```python\nx = 1\n```\n\n```text\nout\n```\n\n"
        "<!-- not run: never ends (Ctrl-C) -->\n```sh\nyes\n```\n"
    )
    first, second = blocks(sample)
    assert (first.code, first.output, first.not_run) == ("x = 1\n", "out\n", None)
    assert (second.language, second.not_run) == ("sh", "never ends (Ctrl-C)")
