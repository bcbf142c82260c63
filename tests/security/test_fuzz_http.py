"""Fuzzing the HTTP edges of a real gateway on a loopback port: the REST JSON bodies
(/api/tokens, /api/workflows/{name}/runs, /api/runs/{id}/signals) and Twilio's webhook
form posts (/twilio/voice, /twilio/after-stream), signed as Twilio signs them or not.
Whatever arrives, the answer is a 2xx or a 4xx with a reason, never a 5xx, and the server
goes on serving. Budgets: tests/security/fuzzing.py."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from gateway.app import create_app
from gateway.config import Settings
from gateway.server import ServerThread
from orchestration.workflow.loader import CATALOG
from tests.security.fuzzing import budget

pytestmark = pytest.mark.slow

ADMIN = "fuzz-http-admin-0123456789abcdef0123"
TWILIO = "fuzz-http-twilio-auth-token-01234567"
WORKFLOWS = sorted(p.stem for p in CATALOG.glob("*.yaml"))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=5),
    max_leaves=15,
)
FORM_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), agent="basic",
                        admin_token=ADMIN, twilio_auth_token=TWILIO)
    with ServerThread(create_app(settings)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"},
                      timeout=30) as client:
        yield client


def body_of(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def answered(resp: httpx.Response) -> None:
    """A 2xx, or a 4xx that says why in JSON; never a server error."""
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    if resp.status_code >= 400:
        assert "detail" in resp.json(), resp.text[:300]


BODIES = JSON | st.binary(max_size=200) | st.fixed_dictionaries(
    {}, optional={"caller": JSON, "origin": JSON, "ttl_s": JSON, "input": JSON, "event": JSON,
                  "data": JSON})


@budget(100, deadline_ms=5000)
@given(BODIES)
@example({"caller": math.nan})  # was a 500: FastAPI could not encode the error's input
@example(math.inf)
def test_token_requests_mint_or_are_refused(http: httpx.Client, body: Any) -> None:
    resp = http.post("/api/tokens", content=body_of(body),
                     headers={"Content-Type": "application/json"})
    answered(resp)
    if resp.status_code == 200:
        assert set(resp.json()) == {"token", "expires_at"}


@budget(60, deadline_ms=5000)
@given(st.sampled_from(WORKFLOWS) | st.text(st.characters(codec="ascii"), min_size=1,
                                            max_size=20), BODIES)
def test_workflow_run_requests_start_or_are_refused(
        http: httpx.Client, name: str, body: Any) -> None:
    resp = http.post(f"/api/workflows/{quote(name, safe='')}/runs",
                     content=body_of(body), headers={"Content-Type": "application/json"})
    answered(resp)


@budget(60, deadline_ms=5000)
@given(st.text(st.characters(codec="ascii"), min_size=1, max_size=20), BODIES)
@example("0", math.inf)  # was a 500, as above
def test_signals_to_unknown_runs_are_refused(http: httpx.Client, run: str, body: Any) -> None:
    resp = http.post(f"/api/runs/wf-{quote(run, safe='')}/signals",
                     content=body_of(body), headers={"Content-Type": "application/json"})
    answered(resp)
    assert 400 <= resp.status_code < 500, resp.text[:300]  # no such run, or a bad body


@budget(120, deadline_ms=5000)
@given(st.sampled_from(["/twilio/voice", "/twilio/after-stream"]),
       st.dictionaries(FORM_TEXT, FORM_TEXT, max_size=6), st.booleans())
def test_twilio_webhook_forms_get_twiml_or_403(
        server: ServerThread, http: httpx.Client, path: str, form: dict[str, str],
        signed: bool) -> None:
    url = server.url + path
    signature = (RequestValidator(TWILIO).compute_signature(url, form) if signed
                 else "bm90IGEgc2lnbmF0dXJl")
    resp = http.post(path, data=form, headers={"X-Twilio-Signature": signature})
    if not signed:
        assert resp.status_code == 403, resp.text[:300]
        return
    assert resp.status_code == 200, (resp.status_code, resp.text[:300])
    assert ET.fromstring(resp.text).tag == "Response"  # well-formed TwiML, values escaped


@budget(60, deadline_ms=5000)
@given(st.binary(max_size=300), st.sampled_from(["application/x-www-form-urlencoded",
                                                 "multipart/form-data; boundary=x", "text/xml"]))
def test_twilio_webhook_raw_bodies_are_refused(
        http: httpx.Client, raw: bytes, content_type: str) -> None:
    resp = http.post("/twilio/voice", content=raw,
                     headers={"Content-Type": content_type, "X-Twilio-Signature": "x"})
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:300])


def test_the_server_is_still_serving(server: ServerThread) -> None:
    assert httpx.get(f"{server.url}/healthz", timeout=10).json()["status"] == "ok"
