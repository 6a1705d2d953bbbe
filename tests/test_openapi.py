"""/openapi.json: a valid OpenAPI 3.1 document that the running server conforms to."""

from __future__ import annotations

import re
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.routing import Route

from queuey.api.app import create_app
from queuey.api.ops import openapi_document
from queuey.config import Settings
from tests.conftest import APP1, APP2, make_queue

DOC_URI = "urn:queuey:openapi"


def test_document_is_valid_openapi_3_1() -> None:
    validate(openapi_document())
    assert openapi_document()["openapi"].startswith("3.1")


def test_every_route_is_documented_and_every_documented_route_exists(settings: Settings) -> None:
    app = create_app(settings)
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
    }
    paths = openapi_document()["paths"]
    documented = {
        (path, method)
        for path, item in paths.items()
        for method in item
        if method in ("get", "head", "post", "put", "delete")
    }
    assert served == documented


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _response_schema(path: str, method: str, status: int) -> str | None:
    """A JSON pointer to the documented schema of one answer; None if the status is undocumented."""
    document = openapi_document()
    answer = document["paths"][path][method]["responses"].get(str(status))
    if answer is None:
        return None
    where = f"/paths/{_escape(path)}/{method}/responses/{status}"
    if "$ref" in answer:
        where = answer["$ref"].removeprefix("#")
    return f"{where}/content/application~1json/schema"


def _template(path: str) -> str:
    """The documented path template a concrete path matches."""
    template: str
    for template in openapi_document()["paths"]:
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", template)
        if re.fullmatch(pattern, path):
            return template
    raise AssertionError(f"{path} matches no documented path")


def check(response: httpx.Response) -> None:
    """Fail unless the response's status is documented and its body fits the schema."""
    method = response.request.method.lower()
    template = _template(response.request.url.path)
    pointer = _response_schema(template, method, response.status_code)
    assert pointer is not None, f"{method} {template} answered undocumented {response.status_code}"
    registry = Registry().with_resource(
        DOC_URI, Resource.from_contents(openapi_document(), default_specification=DRAFT202012)
    )
    validator = Draft202012Validator({"$ref": f"{DOC_URI}#{pointer}"}, registry=registry)
    errors = [e.message for e in validator.iter_errors(response.json())]
    assert not errors, (method, template, response.status_code, errors)


Call = tuple[str, str, dict[str, Any]]


def calls(queue: str, key: str) -> list[Call]:
    """Requests covering every path, method and error status the document lists."""
    q = f"/v1/app1/{queue}"
    batch = {"messages": [{"body": "b1", "ttl": 60}, {"body": "b2", "content_type": "x/y"}]}
    return [
        ("GET", "/v1/app1", {"params": {"details": "1", "include_count": "yes"}}),
        ("GET", "/v1/app1", {"params": {"limit": "0"}}),
        ("GET", "/v1/app1", {"headers": {"Authorization": "Application nope"}}),
        ("GET", "/v1/app1", {"headers": APP2}),
        ("GET", "/v1/nope", {}),
        ("POST", "/v1/app1", {"json": {"queue_name": "made", "partitions": 2}}),
        ("POST", "/v1/app1", {"data": {"queue_name": "made"}}),
        ("POST", "/v1/app1", {"json": {"partitions": 999}}),
        ("POST", "/v1/app1", {"content": b"x" * 70_000}),
        ("POST", q, {"content": b"one", "headers": {**APP1, "X-TTL": "60"}}),
        ("POST", q, {"json": batch}),
        ("POST", q, {"json": {"messages": []}}),
        ("POST", q, {"content": b"x" * 2000}),
        ("POST", "/v1/app1/nope", {"content": b"x"}),
        ("GET", q, {"params": {"limit": "5", "order": "descending"}}),
        ("GET", q, {"params": {"since": "yesterday"}}),
        ("GET", q, {"headers": {}}),
        ("GET", f"{q}/1:{key},2:{key}", {}),
        ("GET", f"{q}/zzz", {}),
        ("PUT", f"{q}/1:{key}", {"content": b"new"}),
        ("PUT", f"{q}/9:{key}", {"content": b"new"}),
        ("PUT", f"{q}/{key}", {"content": b"x" * 2000}),
        ("DELETE", f"{q}/{key}", {}),
        ("PUT", q, {"json": {"partitions": 3}}),
        ("PUT", q, {"json": {"partitions": 1}}),
        ("PATCH", q, {}),
        ("GET", "/__heartbeat__", {}),
        ("GET", "/__lbheartbeat__", {}),
        ("GET", "/__version__", {}),
        ("GET", "/openapi.json", {}),
        ("DELETE", q, {}),
        ("DELETE", q, {}),
    ]


async def test_the_running_server_conforms(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=2)
    posted = await client.post(f"/v1/app1/{queue}", content=b"first", headers=APP1)
    key = posted.json()["messages"][0]["key"]
    statuses = set()
    for method, path, options in calls(queue, key):
        options.setdefault("headers", APP1)
        response = await client.request(method, path, **options)
        statuses.add(response.status_code)
        if method == "PATCH":
            assert response.status_code == 405
            assert response.json()["error_msg"] == {
                "MethodNotAllowed": "This method is not allowed on this resource."
            }
            continue
        check(response)
    assert statuses >= {200, 201, 400, 401, 403, 404, 405, 413}


async def test_a_failing_store_answers_the_documented_503(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    queue = await make_queue(client)
    await client._transport.app.state.service.storage.close()  # type: ignore[attr-defined]
    for method, path in [("GET", "/__heartbeat__"), ("GET", f"/v1/app1/{queue}")]:
        response = await client.request(method, path, headers=APP1)
        assert response.status_code == 503
        check(response)
