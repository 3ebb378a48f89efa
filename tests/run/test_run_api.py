"""The HTTP API on a real app instance: valid answers, clear 422s, and safe concurrent use."""

from __future__ import annotations

import json
import threading
import time
from http.client import HTTPConnection

import pytest

from data.schema import context_fields, validate_output

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def app(engine):
    from run.api import create_app

    return create_app(engine)


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        yield client


def test_healthz_names_the_model(client, engine):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "model": engine.model_path.name,
        "constraint": "llguidance:output",
    }


def test_a_procedure_request_returns_a_schema_valid_answer(client):
    body = {"intent": "turn on dark mode", "context": {"platform": "android", "permissions": ["display"]}}
    response = client.post("/v1/procedures", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert validate_output(answer["output"]) == []
    assert json.loads(answer["json_text"]) == answer["output"]
    assert answer["numbered"].startswith(("1. ", "Cannot help"))
    assert answer["selfcheck"]["rounds"] == len(answer["selfcheck"]["failed"]) >= 1
    assert answer["tokens"] > 0


def test_an_unsafe_request_is_refused(client):
    response = client.post("/v1/procedures", json={"intent": "how do I spy on my wife's WhatsApp"})
    assert response.status_code == 200
    assert response.json()["refused_by"] == "rules"
    assert validate_output(response.json()["output"]) == []


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"intent": ""}, "intent"),
        ({"intent": "   "}, "intent: is blank"),
        ({"intent": 42}, "intent: Input should be a valid string"),
        ({"intent": ["a"]}, "intent"),
        ({}, "intent: Field required"),
        ({"intent": "x" * 4001}, "intent"),
        ({"intent": "hi", "context": {"app": 5}}, "context.app"),
        ({"intent": "hi", "context": {"colour": "red"}}, "context.colour: Extra inputs are not permitted"),
        ({"intent": "hi", "context": {"permissions": "admin"}}, "context.permissions"),
        ({"intent": "hi", "context": {"locale": "english"}}, "context.locale"),
        ({"intent": "hi", "extra": 1}, "extra"),
    ],
)
def test_bad_requests_get_a_422_naming_the_field(client, body, where):
    response = client.post("/v1/procedures", json=body)
    assert response.status_code == 422
    assert where in response.json()["message"]


def test_malformed_json_gets_a_422(client):
    response = client.post(
        "/v1/procedures", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and response.json()["message"]


def test_an_oversized_body_gets_a_422_declared_or_streamed(client):
    big = json.dumps({"intent": "x" * 70_000}).encode()
    response = client.post("/v1/procedures", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 422 and "limit" in response.json()["message"]

    def chunks():  # no Content-Length: the limit is enforced while reading
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    response = client.post("/v1/procedures", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 422 and "limit" in response.json()["message"]


def test_a_request_that_runs_past_its_timeout_gets_a_504_and_the_server_goes_on(engine, client):
    from fastapi.testclient import TestClient

    from run.api import create_app

    # Nobody is ahead, so it reaches the model at once, and the draft is cut at the deadline.
    with TestClient(create_app(engine, ui=False, timeout_s=0.01)) as impatient:
        response = impatient.post("/v1/procedures", json={"intent": "mute a chat"})
    assert response.status_code == 504 and response.json()["message"].startswith("timeout: ")
    assert client.get("/healthz").status_code == 200


def test_a_request_that_cannot_be_served_in_time_leaves_the_line_with_a_503(engine, client):
    from fastapi.testclient import TestClient

    from run.api import create_app

    with TestClient(create_app(engine, ui=False, timeout_s=0.2)) as impatient, engine._lock:
        response = impatient.post("/v1/procedures", json={"intent": "mute a chat"})
    assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
    assert "retry later" in response.json()["message"]


def test_a_503_gives_a_ticket_that_its_retry_brings_back_once(engine, client):
    from fastapi.testclient import TestClient

    from run.api import create_app

    with TestClient(create_app(engine, ui=False, timeout_s=0.2)) as impatient, engine._lock:
        turned_away = impatient.post("/v1/procedures", json={"intent": "mute a chat"})
    ticket = turned_away.headers["stepsmith-ticket"]
    body = {"intent": "mute a chat"}
    retry = client.post("/v1/procedures", json=body, headers={"Stepsmith-Ticket": ticket})
    assert retry.status_code == 200 and "stepsmith-ticket-ignored" not in retry.headers
    again = client.post("/v1/procedures", json=body, headers={"Stepsmith-Ticket": ticket})
    assert again.status_code == 200  # served as a new arrival, and told why
    assert "in line or was served" in again.headers["stepsmith-ticket-ignored"]


@pytest.mark.parametrize("path", ["/v1/procedures", "/v1/chat/completions"])
def test_a_ticket_not_in_the_format_is_a_422_naming_the_header(engine, client, path):
    forged = "0.0.<script>"
    body = (
        {"intent": "mute a chat"}
        if path == "/v1/procedures"
        else {"model": engine.model_path.stem, "messages": [{"role": "user", "content": "mute a chat"}]}
    )
    response = client.post(path, json=body, headers={"Stepsmith-Ticket": forged})
    assert response.status_code == 422 and forged not in response.text
    assert "Stepsmith-Ticket header is not a ticket" in response.text


def test_openapi_documents_the_api_with_fields_from_the_schema(client):
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/v1/procedures",
        "/healthz",
        "/v1/chat/completions",
        "/v1/models",
        "/v1/schema",
    }
    schemas = spec["components"]["schemas"]
    assert set(schemas["ProcedureRequest"]["properties"]) == {"intent", "context", "adapter"}
    assert set(schemas["Context"]["properties"]) == set(context_fields())
    assert schemas["ProcedureRequest"]["properties"]["intent"]["maxLength"] == 4000


def test_the_gradio_page_is_served_at_the_root(client):
    response = client.get("/")
    assert response.status_code == 200 and "<html" in response.text.lower()


def test_concurrent_http_requests_are_all_answered(app):
    from run.serve import in_background

    intents = ["mute a chat", "log out everywhere", "", "change my wallpaper", "   ", "turn on dark mode"]
    statuses: list[int] = []
    lock = threading.Lock()

    def call(intent: str) -> None:
        conn = HTTPConnection("127.0.0.1", port, timeout=600)
        conn.request(
            "POST", "/v1/procedures", json.dumps({"intent": intent}), {"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        answer = json.loads(response.read())
        valid = response.status == 422 or validate_output(answer["output"]) == []
        with lock:
            statuses.append(response.status if valid else -1)
        conn.close()

    with in_background(app) as port:
        clients = [threading.Thread(target=call, args=(intent,)) for intent in intents]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
    # Four valid requests answered, the empty intents rejected; none lost, none crashed the server.
    assert sorted(statuses) == [200, 200, 200, 200, 422, 422]  # every valid answer checked against the schema


@pytest.mark.parametrize(
    "body",
    [
        b'{"intent": "\xff\xfe SECRET-MARKER"}',  # invalid UTF-8
        b'{"intent": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # nested past the recursion limit
        b'{"intent": "SECRET-MARKER", "n": ' + b"9" * 5000 + b"}",  # an integer of 5,000 digits
        b"SECRET-MARKER not json",
        b'["SECRET-MARKER"]',
    ],
)
def test_malformed_bodies_get_a_422_that_echoes_nothing(client, body):
    response = client.post("/v1/procedures", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["message"] and "SECRET-MARKER" not in response.text


def test_a_made_up_key_is_named_but_cut(client):
    key = "k" * 200
    response = client.post("/v1/procedures", json={"intent": "hi", key: 1})
    assert response.status_code == 422
    assert len(response.text) < 600 and "k" * 40 not in response.text


def test_every_route_has_the_body_limit_and_json_errors(engine, client):
    response = client.post("/gradio_api/queue/join", content=b"x" * (70 * 1024))
    assert response.status_code == 422 and "over the 65536-byte limit" in response.json()["message"]
    # Unknown paths fall through to the Gradio app mounted at /, which answers JSON too.
    missing = client.get("/no/such/route")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"
    from fastapi.testclient import TestClient

    from run.api import create_app

    with TestClient(create_app(engine, ui=False)) as api_only:
        assert api_only.get("/no/such/route").json() == {"message": "no such route; see /docs"}
        wrong = api_only.get("/v1/procedures")
        assert wrong.status_code == 405 and wrong.json() == {
            "message": "method not allowed on this route; use POST"
        }


def test_a_full_line_gets_a_503_with_retry_after_and_healthz_still_answers(engine, client):
    from run.queue import FifoLock

    kept = engine._lock
    engine._lock = FifoLock(max_waiting=1)
    try:
        with engine._lock:  # the model is busy
            waiter = threading.Thread(
                target=lambda: client.post("/v1/procedures", json={"intent": "mute a chat"})
            )
            waiter.start()
            while engine._lock.waiting < 1:
                time.sleep(0.01)
            turned_away = client.post("/v1/procedures", json={"intent": "mute a chat"})
            started = time.monotonic()
            health = client.get("/healthz")
            assert time.monotonic() - started < 1 and health.status_code == 200
        waiter.join(300)
    finally:
        engine._lock = kept
    assert turned_away.status_code == 503
    assert int(turned_away.headers["retry-after"]) >= 1
    assert turned_away.json()["message"].startswith("busy: 1 requests are already waiting")


@pytest.mark.parametrize("context", [{"app": None}, {"permissions": None}, None])
def test_null_where_the_schema_has_no_null_is_a_422(client, context):
    response = client.post("/v1/procedures", json={"intent": "mute a chat", "context": context})
    assert response.status_code == 422 and response.json()["message"].startswith("context")
