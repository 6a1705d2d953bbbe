"""GET /openapi.json: a valid OpenAPI 3.1 document that matches the routes and the answers.

The conformance test drives the running app through every documented path and
method and checks each answer against the schema documented for its path,
method and status; an answer with an undocumented status fails.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from queuey.api.app import create_app
from queuey.api.ops import openapi_document
from queuey.config import Settings
from tests.conftest import APP1, APP2, KEYS, make_queue

DOCUMENT = openapi_document()
URI = "urn:queuey:openapi"
REGISTRY = Registry().with_resource(
    URI, Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
)
METHODS = ("get", "head", "post", "put", "delete", "patch", "options", "trace")
ERRORS = {400, 401, 403, 404, 405, 413}


def documented() -> set[tuple[str, str]]:
    return {(p, m) for p, item in DOCUMENT["paths"].items() for m in item if m in METHODS}


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1.")


def test_every_route_is_documented_and_every_documented_route_exists(tmp_path: Path) -> None:
    app = create_app(Settings(storage_url=f"sqlite:///{tmp_path}/q.db", application_keys=KEYS))
    served = {(route.path, method.lower()) for route in app.routes for method in route.methods}
    assert served == documented()


def template_of(path: str) -> str:
    templates: list[str] = list(DOCUMENT["paths"])
    for template in templates:
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path):
            return template
    raise AssertionError(f"{path} matches no documented path")


def check(response: httpx.Response) -> tuple[str, str, int]:
    """Fail unless the answer's status is documented and its body fits; return what was hit."""
    method, status = response.request.method.lower(), response.status_code
    template = template_of(response.request.url.path)
    item = DOCUMENT["paths"][template]
    # A method the path does not list is answered 405, as documented on the path's GET.
    where = method if method in item else "get"
    assert method in item or status == 405, f"{method} {template}: {status}"
    answer = item[where]["responses"].get(str(status))
    assert answer is not None, f"{method} {template}: undocumented status {status}"
    if method == "head":
        assert response.content == b"", "HEAD answers have no body"
        return template, method, status
    escaped = template.replace("~", "~0").replace("/", "~1")
    pointer = (
        answer["$ref"][1:] if "$ref" in answer else f"/paths/{escaped}/{where}/responses/{status}"
    )
    validator = Draft202012Validator(
        {"$ref": f"{URI}#{pointer}/content/application~1json/schema"}, registry=REGISTRY
    )
    assert response.headers["content-type"] == "application/json"
    problems = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(response.json())]
    assert not problems, (method, template, status, response.json(), problems)
    return template, method, status


Call = tuple[int, str, str, dict[str, Any]]


def calls(q: str, key: str) -> list[Call]:
    """(expected status, method, path, request options); APP1 credentials unless given."""
    batch = {"messages": [{"body": "b1", "ttl": 60, "partition": 2}, {"body": "b2"}]}
    big = {"content": b"x" * 2000}  # over max_message_bytes=1024, under max_request_bytes
    return [
        (200, "GET", "/v1/app1", {"params": {"details": "1", "include_count": "yes"}}),
        (200, "HEAD", "/v1/app1", {}),
        (400, "GET", "/v1/app1", {"params": {"limit": "0", "details": "maybe"}}),
        (401, "GET", "/v1/app1", {"headers": {"Authorization": "Application nope"}}),
        (403, "GET", "/v1/app1", {"headers": APP2}),
        (404, "GET", "/v1/nope", {}),
        (405, "PUT", "/v1/app1", {}),
        (201, "POST", "/v1/app1", {"json": {"queue_name": "made", "principles": ["app:app2"]}}),
        (200, "POST", "/v1/app1", {"data": {"queue_name": "made", "partitions": "2"}}),
        (400, "POST", "/v1/app1", {"json": {"partitions": 999, "type": "x"}}),
        (403, "POST", "/v1/app1", {"headers": {}}),
        (413, "POST", "/v1/app1", {"content": b"x" * 70_000}),
        (
            201,
            "POST",
            q,
            {"content": b"one", "headers": {**APP1, "X-TTL": "60", "X-Partition": "2"}},
        ),
        (201, "POST", q, {"json": batch}),
        (201, "POST", q, {"content": b"keyed", "headers": {**APP1, "X-Idempotency-Key": "k-1"}}),
        (201, "POST", q, {"json": {"messages": [{"body": "b", "idempotency_key": "k-1"}]}}),
        (400, "POST", q, {"json": {"messages": [{"body": "b", "idempotency_key": "a b"}]}}),
        (400, "POST", q, {"content": b"m", "headers": {**APP1, "X-Idempotency-Key": "a b"}}),
        (201, "POST", q, {"json": {"messages": []}}),
        (400, "POST", q, {"json": {"messages": None}}),
        (
            400,
            "POST",
            q,
            {"content": b"{", "headers": {**APP1, "Content-Type": "application/json"}},
        ),
        (413, "POST", q, big),
        (404, "POST", "/v1/app1/nope", {"content": b"x"}),
        (200, "GET", q, {"params": {"limit": "5", "order": "descending", "partitions": "1,2"}}),
        (200, "HEAD", q, {}),
        (400, "GET", q, {"params": {"since": "yesterday"}}),
        (401, "GET", q, {"headers": {"Authorization": "Application nope"}}),
        (403, "GET", q, {"headers": {}}),
        (200, "GET", f"{q}/1:{key},2:{key}", {}),
        (200, "HEAD", f"{q}/{key}", {}),
        (400, "GET", f"{q}/zzz", {}),
        (200, "PUT", f"{q}/1:{key}", {"content": b"new", "headers": {**APP1, "X-TTL": "60"}}),
        (400, "PUT", f"{q}/9:{key}", {"content": b"new"}),
        (413, "PUT", f"{q}/{key}", big),
        (200, "DELETE", f"{q}/{key}", {}),
        (400, "DELETE", f"{q}/zzz", {}),
        (200, "PUT", q, {"json": {"partitions": 3, "principles": "app:app1, app:app2"}}),
        (200, "PUT", q, {"data": {"consistency": "weak", "principles": ""}}),
        (400, "PUT", q, {"json": {"partitions": 1}}),
        (405, "PATCH", q, {}),
        (200, "GET", "/__heartbeat__", {}),
        (200, "HEAD", "/__heartbeat__", {}),
        (200, "GET", "/__lbheartbeat__", {}),
        (200, "HEAD", "/__lbheartbeat__", {}),
        (200, "GET", "/__version__", {}),
        (200, "HEAD", "/__version__", {}),
        (405, "POST", "/__version__", {}),
        (200, "GET", "/openapi.json", {}),
        (200, "HEAD", "/openapi.json", {}),
        (200, "DELETE", q, {}),
        (404, "DELETE", q, {}),
    ]


async def test_the_running_server_conforms(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=2)
    posted = await client.post(f"/v1/app1/{queue}", content=b"first", headers=APP1)
    key = posted.json()["messages"][0]["key"]
    hit = set()
    for expected, method, path, options in calls(f"/v1/app1/{queue}", key):
        response = await client.request(method, path, **{"headers": APP1, **options})
        assert response.status_code == expected, (method, path, response.text)
        hit.add(check(response))
    assert {(t, m) for t, m, _ in hit} >= documented()
    assert {s for _, _, s in hit} >= ERRORS
    assert (await client.get("/openapi.json")).json() == DOCUMENT


async def test_a_failing_store_answers_the_documented_503(settings: Settings) -> None:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://queuey.test") as client,
    ):
        queue = await make_queue(client)
        await app.service.storage.close()
        for path in ("/__heartbeat__", "/v1/app1", f"/v1/app1/{queue}"):
            response = await client.get(path, headers=APP1)
            assert response.status_code == 503, response.text
            check(response)
