"""GET /openapi.json: a valid OpenAPI 3.1 document that matches the routes and the answers.

The conformance test drives the running app through every documented path and
method and checks each answer against the schema documented for its path,
method and status; an answer with an undocumented status fails. The consumer
group calls chain on earlier answers (receipts), and a second test follows
every documented link, as a stateful API tester would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
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
ERRORS = {400, 401, 403, 404, 405, 409, 413}
BAD_KEY = {"Authorization": "Application nope"}
JSON_TYPE = {"Content-Type": "application/json"}


def documented() -> set[tuple[str, str]]:
    return {(p, m) for p, item in DOCUMENT["paths"].items() for m in item if m in METHODS}


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1.")


def test_every_route_is_documented_and_every_documented_route_exists(tmp_path: Path) -> None:
    app = create_app(Settings(storage_url=f"sqlite:///{tmp_path}/q.db", application_keys=KEYS))
    served = {(route.path, method.lower()) for route in app.routes for method in route.methods}
    assert served == documented()


def pattern_of(template: str) -> str:
    return re.sub(r"\{([^}]+)\}", r"(?P<\1>[^/]+)", template)


def template_of(path: str) -> str:
    """The documented template of a path; the one with most literal segments wins, as routing."""
    found = [t for t in DOCUMENT["paths"] if re.fullmatch(pattern_of(t), path)]
    assert found, f"{path} matches no documented path"
    best: str = max(found, key=lambda t: sum(not s.startswith("{") for s in t.split("/")))
    return best


def check(response: httpx.Response) -> tuple[str, str, int]:
    """Fail unless the answer's status is documented and its body fits; return what was hit."""
    method, status = response.request.method.lower(), response.status_code
    template = template_of(response.request.url.path)
    item = DOCUMENT["paths"][template]
    # A method the path does not list is answered 405, as documented on the path's operations.
    where = method if method in item else next(m for m in item if m in METHODS)
    assert method in item or status == 405, f"{method} {template}: {status}"
    answer = item[where]["responses"].get(str(status))
    assert answer is not None, f"{method} {template}: undocumented status {status}"
    if method == "head":
        assert response.content == b"", "HEAD answers have no body"
        return template, method, status
    content = answer.get("content", {})
    if content and "application/json" not in content:  # the metrics, the console's files
        assert response.headers["content-type"].split(";")[0] in content
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
        (200, "GET", "/__metrics__", {}),
        (200, "HEAD", "/__metrics__", {}),
        (405, "POST", "/__metrics__", {}),
        (200, "GET", "/console", {}),
        (200, "HEAD", "/console", {}),
        (200, "GET", "/console/app.js", {}),
        (200, "HEAD", "/console/style.css", {}),
        (404, "GET", "/console/nope.js", {}),
        (405, "POST", "/console", {}),
        (201, "POST", f"{q}/tokens", {"json": {"ttl": 60, "scope": "consume", "partitions": [1]}}),
        (201, "POST", f"{q}/tokens", {"data": {"scope": "read,consume", "partitions": "1,2"}}),
        (201, "POST", f"{q}/tokens", {}),
        (400, "POST", f"{q}/tokens", {"json": {"ttl": 0, "scope": "write", "partitions": [9]}}),
        (401, "POST", f"{q}/tokens", {"headers": {"Authorization": "Bearer nope"}}),
        (403, "POST", f"{q}/tokens", {"headers": APP2}),
        (404, "POST", "/v1/app1/nope/tokens", {}),
        (405, "GET", f"{q}/tokens", {}),
        (413, "POST", f"{q}/tokens", {"content": b"x" * 70_000}),
        # The event stream: its 200 is a stream (tests/test_streams.py); HEAD answers at once.
        (200, "HEAD", f"{q}/stream", {"params": {"partitions": "1,2"}}),
        (400, "GET", f"{q}/stream", {"params": {"since": "yesterday"}}),
        (400, "GET", f"{q}/stream", {"headers": {**APP1, "Last-Event-ID": "x"}}),
        (401, "GET", f"{q}/stream", {"headers": BAD_KEY}),
        (403, "GET", f"{q}/stream", {"headers": {}}),
        (404, "GET", "/v1/app1/nope/stream", {}),
        (405, "POST", f"{q}/stream", {}),
        (401, "GET", q, {"params": {"access_token": "nope"}}),
        (401, "GET", f"{q}/{key}", {"headers": {"Authorization": "Bearer nope"}}),
        (200, "DELETE", q, {}),
        (404, "DELETE", q, {}),
    ]


class Walk:
    """Calls through the running server, each answer checked against the document and recorded."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.hit: set[tuple[str, str, int]] = set()

    async def __call__(
        self, expected: int, method: str, path: str, **options: Any
    ) -> httpx.Response:
        response = await self.client.request(method, path, **{"headers": APP1, **options})
        assert response.status_code == expected, (method, path, response.text)
        self.hit.add(check(response))
        return response

    async def json(self, expected: int, method: str, path: str, **options: Any) -> Any:
        return (await self(expected, method, path, **options)).json()


async def group_calls(go: Walk) -> None:
    """Every group path and method, each documented status, chained on the answers' receipts."""
    client = go.client
    queue = await make_queue(client, partitions=2)
    dead, out = await make_queue(client), await make_queue(client)
    for i in range(3):
        headers = {**APP1, "X-Partition": "1"}
        await go(201, "POST", f"/v1/app1/{queue}", content=f"m{i}".encode(), headers=headers)
    g = f"/v1/app1/{queue}/groups"
    w, nope = f"{g}/w", f"{g}/nope"
    big = {"data": {"x": "y" * 70_000}}  # over max_request_bytes
    # List, create, update, read.
    assert (await go.json(200, "GET", g))["groups"] == []
    await go(200, "HEAD", g)
    await go(401, "GET", g, headers=BAD_KEY)
    await go(403, "GET", g, headers=APP2)
    await go(404, "GET", "/v1/app1/nope/groups")
    await go(405, "POST", g)
    fields = {"guarantee": "exactly_once", "lease_seconds": 60, "max_deliveries": "2"}
    fields |= {"dead_letter_queue": dead, "ordered": False, "start": "earliest"}
    await go(201, "PUT", w, json=fields)
    await go(200, "PUT", w, data={"ordered": "no", "dead_letter_queue": ""})
    await go(400, "PUT", w, json={"start": "latest"})  # InvalidUpdate: use seek
    await go(400, "PUT", f"{g}/a!b", json={})  # keyed group
    wrong = {"guarantee": "x", "lease_seconds": 0, "max_deliveries": 1001, "ordered": "maybe"}
    wrong |= {"dead_letter_queue": queue, "start": "fred"}
    await go(400, "PUT", f"{g}/x", json=wrong)
    await go(400, "PUT", f"{g}/x", data={"lease_seconds": "43201"})
    await go(400, "PUT", f"{g}/x", json={"start": "0123456789abcdef0123456789abcdef"})
    await go(400, "PUT", f"{g}/x", content=b"{", headers={**APP1, **JSON_TYPE})
    await go(413, "PUT", f"{g}/x", **big)
    await go(401, "PUT", f"{g}/x", json={}, headers=BAD_KEY)
    await go(403, "PUT", f"{g}/x", json={}, headers=APP2)
    await go(404, "PUT", "/v1/app1/nope/groups/x", json={})
    await go(405, "POST", w)
    assert (await go.json(200, "GET", w))["partitions"][0]["pending"] == 3
    await go(200, "HEAD", w)
    await go(404, "GET", nope)
    await go(404, "GET", f"{g}/a!b")
    await go(401, "GET", w, headers=BAD_KEY)
    await go(403, "GET", w, headers=APP2)
    assert [x["group"] for x in (await go.json(200, "GET", g))["groups"]] == ["w"]
    # Claim: JSON and form bodies.
    claim: dict[str, Any] = {"limit": 2, "wait": 1, "partitions": [1, 2], "consumer": "c1"}
    first, second = (await go.json(200, "POST", f"{w}/claim", json=claim))["messages"]
    form = {"limit": "5", "partitions": "1,2", "consumer": "c2"}
    (third,) = (await go.json(200, "POST", f"{w}/claim", data=form))["messages"]
    assert (await go.json(200, "POST", f"{w}/claim", json={}))["messages"] == []
    claim = {"limit": 0, "wait": 61, "partitions": "x", "consumer": "c" * 101}
    await go(400, "POST", f"{w}/claim", json=claim)
    await go(400, "POST", f"{w}/claim", data={"limit": "1001"})
    await go(401, "POST", f"{w}/claim", json={}, headers=BAD_KEY)
    await go(403, "POST", f"{w}/claim", json={}, headers=APP2)
    await go(404, "POST", f"{nope}/claim", json={})
    await go(405, "GET", f"{w}/claim")
    await go(413, "POST", f"{w}/claim", **big)
    one, two, three = first["receipt"], second["receipt"], third["receipt"]
    # Extend, release, acknowledge; a receipt released and claimed again is lost (409).
    await go(200, "POST", f"{w}/extend", json={"receipts": [one], "seconds": 120})
    await go(200, "POST", f"{w}/extend", json={"receipts": [one]})
    await go(400, "POST", f"{w}/extend", json={"receipts": [one], "seconds": 0})
    # A form field holds the receipts comma-separated.
    form_body = await go.json(200, "POST", f"{w}/extend", data={"receipts": one})
    assert form_body["extended"] == [one]
    await go(400, "POST", f"{w}/extend", data={"seconds": "60"})  # no receipts: Required
    await go(200, "POST", f"{w}/release", json={"receipts": [two], "delay": 0})
    (again,) = (await go.json(200, "POST", f"{w}/claim", json={}))["messages"]
    assert (again["message_id"], again["deliveries"]) == (second["message_id"], 2)
    lost = await go.json(409, "POST", f"{w}/ack", json={"receipts": [one, two]})
    assert (lost["acknowledged"], lost["lost"]) == ([one], [two])
    await go(200, "POST", f"{w}/ack", json={"receipts": [one]})  # a retry is accepted again
    lost = await go.json(409, "POST", f"{w}/release", json={"receipts": [two]})
    assert (lost["released"], lost["lost"]) == ([], [two])
    lost = await go.json(409, "POST", f"{w}/extend", json={"receipts": [two, three]})
    assert (lost["extended"], lost["lost"]) == ([three], [two])
    await go(400, "POST", f"{w}/release", json={"receipts": [three], "delay": 43201})
    await go(400, "POST", f"{w}/ack", json={"receipts": ["fred"]})
    await go(400, "POST", f"{w}/ack", json={})
    items: list[dict[str, Any]] = [{"queue": "nope", "body": "x"}, {"queue": out, "body": ""}]
    await go(400, "POST", f"{w}/ack", json={"receipts": [three], "publish": items})
    items = [{"queue": out, "body": "x" * 2000}]  # over max_message_bytes
    await go(413, "POST", f"{w}/ack", json={"receipts": [three], "publish": items})
    items = [{"queue": out, "body": "done", "partition": 1, "idempotency_key": "k-1"}]
    lost = await go.json(409, "POST", f"{w}/ack", json={"receipts": [two, three], "publish": items})
    assert (lost["acknowledged"], lost["lost"]) == ([], [two])
    both = [again["receipt"], three]
    done = await go.json(200, "POST", f"{w}/ack", json={"receipts": both, "publish": items})
    assert [p["partition"] for p in done["published"]] == [1]
    await go(401, "POST", f"{w}/ack", json={"receipts": [one]}, headers=BAD_KEY)
    await go(403, "POST", f"{w}/release", json={"receipts": [one]}, headers=APP2)
    await go(404, "POST", f"{nope}/extend", json={"receipts": [one]})
    await go(405, "GET", f"{w}/ack")
    await go(413, "POST", f"{w}/release", **big)
    # Seek: to the start of partition 1, to the end, to a timestamp, to an id.
    state = await go.json(200, "POST", f"{w}/seek", json={"to": "earliest", "partitions": [1]})
    assert state["partitions"][0]["cursor"] is None
    await go(200, "POST", f"{w}/seek", data={"to": "latest"})
    await go(200, "POST", f"{w}/seek", json={"to": first["timestamp"], "partitions": "1"})
    await go(200, "POST", f"{w}/seek", json={"to": first["message_id"]})
    await go(400, "POST", f"{w}/seek", json={})
    await go(400, "POST", f"{w}/seek", json={"to": "fred", "partitions": "x"})
    await go(403, "POST", f"{w}/seek", json={"to": "earliest"}, headers=APP2)
    await go(404, "POST", f"{nope}/seek", json={"to": "earliest"})
    await go(413, "POST", f"{w}/seek", **big)
    # Delete; a deleted group's receipts name no group.
    await go(401, "DELETE", w, headers=BAD_KEY)
    await go(403, "DELETE", w, headers=APP2)
    await go(200, "DELETE", w)
    await go(404, "DELETE", w)
    await go(404, "POST", f"{w}/ack", json={"receipts": [one]})


async def test_the_running_server_conforms(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=2)
    posted = await client.post(f"/v1/app1/{queue}", content=b"first", headers=APP1)
    key = posted.json()["messages"][0]["key"]
    go = Walk(client)
    for expected, method, path, options in calls(f"/v1/app1/{queue}", key):
        await go(expected, method, path, **options)
    await group_calls(go)
    assert {(t, m) for t, m, _ in go.hit} >= documented()
    assert {s for _, _, s in go.hit} >= ERRORS
    assert (await client.get("/openapi.json")).json() == DOCUMENT


# -- links --------------------------------------------------------------------


def operations() -> dict[str, tuple[str, str]]:
    """Each operationId's path template and method."""
    return {
        operation["operationId"]: (path, method)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def every_link() -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(operationId, status, link name, link) of every link of every response."""
    for item in DOCUMENT["paths"].values():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            for status, answer in operation["responses"].items():
                for name, link in answer.get("links", {}).items():
                    yield operation["operationId"], status, name, link


def parameter_names(path: str, method: str) -> set[str]:
    item = DOCUMENT["paths"][path]
    names = set()
    for parameter in [*item.get("parameters", []), *item[method].get("parameters", [])]:
        if "$ref" in parameter:
            parameter = DOCUMENT["components"]["parameters"][parameter["$ref"].split("/")[-1]]
        names.add(parameter["name"])
    return names


def test_links_name_operations_parameters_and_bodies_that_exist() -> None:
    found = operations()
    assert sum(1 for _ in every_link()) >= 10
    for source, status, name, link in every_link():
        where = (source, status, name)
        path, method = found[link["operationId"]]
        assert set(link["parameters"]) == set(re.findall(r"\{([^}]+)\}", path)), where
        assert set(link["parameters"]) <= parameter_names(path, method), where
        assert ("requestBody" in link) <= ("requestBody" in DOCUMENT["paths"][path][method]), where


def resolve(value: Any, request: dict[str, str], body: Any) -> Any:
    """A link's value, its runtime expressions ($request.path.X, $response.body#/...) resolved."""
    if isinstance(value, dict):
        return {k: resolve(v, request, body) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, request, body) for v in value]
    if isinstance(value, str) and value.startswith("$request.path."):
        return request[value.removeprefix("$request.path.")]
    if isinstance(value, str) and value.startswith("$response.body#"):
        for step in value.removeprefix("$response.body#/").split("/"):
            body = body[int(step)] if isinstance(body, list) else body[step]
        return body
    return value


async def follow(client: httpx.AsyncClient, answer: httpx.Response, name: str) -> httpx.Response:
    """Call the operation that link ``name`` of this answer names, as a stateful tester would."""
    template = template_of(answer.request.url.path)
    method = answer.request.method.lower()
    operation = DOCUMENT["paths"][template][method]
    link = operation["responses"][str(answer.status_code)]["links"][name]
    match = re.fullmatch(pattern_of(template), answer.request.url.path)
    assert match is not None
    parameters = resolve(link["parameters"], match.groupdict(), answer.json())
    path, target = operations()[link["operationId"]]
    for key, value in parameters.items():
        path = path.replace(f"{{{key}}}", value)
    options: dict[str, Any] = {"headers": APP1}
    if "requestBody" in link:
        options["json"] = resolve(link["requestBody"], match.groupdict(), answer.json())
    return await client.request(target.upper(), path, **options)


def operation_of(answer: httpx.Response) -> dict[str, Any]:
    item = DOCUMENT["paths"][template_of(answer.request.url.path)]
    operation: dict[str, Any] = item[answer.request.method.lower()]
    return operation


def link_names(answer: httpx.Response) -> list[str]:
    """The links documented for this answer's operation and status."""
    return list(operation_of(answer)["responses"][str(answer.status_code)].get("links", {}))


async def test_following_the_links_chains_the_group_operations(client: httpx.AsyncClient) -> None:
    queue = await make_queue(client, partitions=2)
    posted = {"messages": [{"body": f"m{i}", "partition": 1 + i % 2} for i in range(50)]}
    assert (await client.post(f"/v1/app1/{queue}", json=posted, headers=APP1)).status_code == 201
    group = f"/v1/app1/{queue}/groups/g"
    followed = set()

    async def step(answer: httpx.Response, name: str) -> httpx.Response:
        followed.add((operation_of(answer)["operationId"], str(answer.status_code), name))
        found = await follow(client, answer, name)
        assert found.status_code in (200, 201), (name, found.text)
        check(found)
        return found

    async def renew(answer: httpx.Response) -> httpx.Response:
        """The same claim again: each link of a claim spends the receipt it passes on."""
        if operation_of(answer)["operationId"] != "claimMessages":
            return answer
        request = answer.request
        again = await client.request(
            request.method, request.url, content=request.content, headers=request.headers
        )
        assert again.status_code == 200 and again.json()["messages"], again.text
        return again

    async def explore(answer: httpx.Response, depth: int) -> None:
        for name in link_names(answer):
            if name != "delete":
                found = await step(await renew(answer), name)
                if depth > 1:
                    await explore(found, depth - 1)

    created = await client.put(group, json={}, headers=APP1)
    assert created.status_code == 201
    await explore(created, 3)
    updated = await client.put(group, json={}, headers=APP1)
    assert updated.status_code == 200
    await explore(updated, 1)
    await step(updated, "delete")
    assert (await client.put(group, json={}, headers=APP1)).status_code == 201
    await step(created, "delete")
    groups = {(s, status, n) for s, status, n, _ in every_link() if s != "createQueue"}
    assert followed == groups


async def test_following_the_links_of_a_new_queue(client: httpx.AsyncClient) -> None:
    """From a queue's creation (201, and 200 when it existed) to its messages and groups."""
    followed = set()
    for status in (201, 200):  # each round ends by following "delete"
        made = await client.post("/v1/app1", json={"queue_name": "linked"}, headers=APP1)
        if status == 200:
            made = await client.post("/v1/app1", json={"queue_name": "linked"}, headers=APP1)
        assert made.status_code == status, made.text
        names = link_names(made)
        for name in [*(n for n in names if n != "delete"), "delete"]:  # delete last
            found = await follow(client, made, name)
            assert found.status_code in (200, 201), (name, found.text)
            check(found)
            followed.add(("createQueue", str(status), name))
    assert followed == {(s, st, n) for s, st, n, _ in every_link() if s == "createQueue"}


async def test_a_failing_store_answers_the_documented_503(settings: Settings) -> None:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://queuey.test") as client,
    ):
        queue = await make_queue(client)
        g = f"/v1/app1/{queue}/groups"
        assert (await client.put(f"{g}/g", headers=APP1)).status_code == 201
        await app.service.storage.close()
        for method, path in (
            ("GET", "/__heartbeat__"),
            ("GET", "/v1/app1"),
            ("GET", f"/v1/app1/{queue}"),
            ("GET", g),
            ("GET", f"{g}/g"),
            ("PUT", f"{g}/g"),
            ("DELETE", f"{g}/g"),
            ("POST", f"{g}/g/claim"),
            ("POST", f"{g}/g/seek"),
        ):
            body = {"to": "earliest"} if path.endswith("seek") else None
            response = await client.request(method, path, json=body, headers=APP1)
            assert response.status_code == 503, (method, path, response.text)
            check(response)
