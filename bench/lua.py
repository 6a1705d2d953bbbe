"""wrk Lua scripts for each scenario, written into a work folder."""

from __future__ import annotations

import json
from pathlib import Path

BODY = "x" * 140


def _write(work: Path, name: str, text: str) -> Path:
    path = work / f"{name}.lua"
    path.write_text(text)
    return path


def _headers(key: str, content_type: str | None = None) -> str:
    lines = [f'wrk.headers["Authorization"] = "Application {key}"']
    if content_type:
        lines.append(f'wrk.headers["Content-Type"] = "{content_type}"')
    return "\n".join(lines) + "\n"


def post(work: Path, key: str) -> Path:
    """POST one 140-byte text message per request."""
    return _write(
        work, "post", f'wrk.method = "POST"\nwrk.body = "{BODY}"\n' + _headers(key, "text/plain")
    )


def get(work: Path, key: str) -> Path:
    return _write(work, "get", _headers(key))


def batch(work: Path, key: str, size: int) -> Path:
    """POST a JSON batch of ``size`` 140-byte messages per request."""
    body = json.dumps({"messages": [{"body": BODY} for _ in range(size)]})
    return _write(
        work,
        "batch",
        f'wrk.method = "POST"\nwrk.body = [[{body}]]\n' + _headers(key, "application/json"),
    )


def mixed(work: Path, key: str, rate: float, connections: int) -> Path:
    """Alternate POST and GET limit 10, each connection paced so all offer ``rate`` req/s."""
    interval = connections * 1000.0 / max(rate, 1.0)
    return _write(
        work,
        "mixed",
        f"""
local n = 0
local auth = "Application {key}"
function delay() return {interval:.3f} end
function request()
  n = n + 1
  if n % 2 == 0 then
    return wrk.format("POST", nil, {{["Authorization"] = auth, ["Content-Type"] = "text/plain"}},
                      "{BODY}")
  end
  return wrk.format("GET", wrk.path .. "?limit=10", {{["Authorization"] = auth}})
end
""",
    )


def _random(work: Path, name: str, key: str, count: int, method: str, suffix: str) -> Path:
    body = f'"{BODY}"' if method == "POST" else "nil"
    return _write(
        work,
        f"{name}-{count}",
        f"""
local auth = "Application {key}"
math.randomseed(os.time())
function request()
  local path = "/v1/app/q" .. math.random(1, {count}) .. "{suffix}"
  return wrk.format("{method}", path,
                    {{["Authorization"] = auth, ["Content-Type"] = "text/plain"}}, {body})
end
""",
    )


def post_random(work: Path, key: str, count: int) -> Path:
    """POST one message to a random queue among ``q1`` .. ``q<count>``."""
    return _random(work, "post-random", key, count, "POST", "")


def get_random(work: Path, key: str, count: int) -> Path:
    """GET limit 10 from a random queue among ``q1`` .. ``q<count>``."""
    return _random(work, "get-random", key, count, "GET", "?limit=10")
