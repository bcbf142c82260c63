"""The admin token never travels in a URL: HTTP takes it from ``Authorization: Bearer``
only; ``/ws/state`` takes that header, a short-lived single-use ticket, or the
``bearer.<token>`` subprotocol beside ``voxgate.v1``. Real server in production mode."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from gateway.app import create_app
from gateway.auth import SUBPROTOCOL, AuthError, Tickets
from gateway.evaluation.client import run_call
from gateway.evaluation.speech import load_prompt
from gateway.server import ServerThread
from tests.security.test_auth import ADMIN, TWILIO, secure_settings
from tests.security.test_limits import FakeClock

pytestmark = pytest.mark.slow

BEARER = {"authorization": f"Bearer {ADMIN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = secure_settings(tmp_path_factory.mktemp("data"), agent="basic")
    with ServerThread(create_app(settings)) as running:
        yield running


def ws(server: ServerThread, query: str = "") -> str:
    return server.url.replace("http://", "ws://") + "/ws/state" + query


@pytest.mark.parametrize("path", ["/api/sessions", "/metrics", "/api/workflows"])
def test_http_refuses_the_admin_token_in_the_url(server: ServerThread, path: str) -> None:
    response = httpx.get(f"{server.url}{path}?token={ADMIN}")
    assert response.status_code == 401
    assert "not accepted in the URL" in response.json()["detail"]
    assert httpx.get(f"{server.url}{path}", headers=BEARER).status_code == 200


async def first_message(
    url: str,
    headers: dict[str, str] | None = None,
    subprotocols: Sequence[str] | None = None,
) -> tuple[dict[str, object], str | None]:
    offered = [Subprotocol(p) for p in subprotocols] if subprotocols else None
    async with connect(url, additional_headers=headers, subprotocols=offered) as sock:
        message = json.loads(await asyncio.wait_for(sock.recv(), 5))
        return message, sock.subprotocol


def refused(url: str, **kwargs: object) -> int:
    with pytest.raises(InvalidStatus) as exc:
        asyncio.run(first_message(url, **kwargs))  # type: ignore[arg-type]
    return exc.value.response.status_code


def test_the_state_stream_refuses_the_admin_token_in_the_url(server: ServerThread) -> None:
    assert refused(ws(server, f"?token={ADMIN}")) == 403
    assert refused(ws(server)) == 403


def test_the_state_stream_takes_the_bearer_header(server: ServerThread) -> None:
    message, _ = asyncio.run(first_message(ws(server), headers=BEARER))
    assert message["type"] == "snapshot"


def ticket(server: ServerThread) -> str:
    response = httpx.post(f"{server.url}/api/ws-ticket", headers=BEARER)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_in_s"] == 30.0
    found: str = body["ticket"]
    return found


def test_a_ticket_opens_the_state_stream_once(server: ServerThread) -> None:
    assert httpx.post(f"{server.url}/api/ws-ticket").status_code == 401
    assert httpx.post(f"{server.url}/api/ws-ticket?token={ADMIN}").status_code == 401
    one = ticket(server)
    message, protocol = asyncio.run(first_message(ws(server, f"?ticket={one}")))
    assert message["type"] == "snapshot" and protocol is None
    assert refused(ws(server, f"?ticket={one}")) == 403, "a ticket is single-use"
    assert refused(ws(server, "?ticket=made-up")) == 403
    # a ticket is for WebSockets: HTTP still wants the header
    assert httpx.get(f"{server.url}/api/sessions?ticket={ticket(server)}").status_code == 401


def test_a_ticket_works_with_the_voxgate_subprotocol(server: ServerThread) -> None:
    url = ws(server, f"?ticket={ticket(server)}&session=nobody")
    message, protocol = asyncio.run(first_message(url, subprotocols=[SUBPROTOCOL]))
    assert message["type"] == "snapshot" and message["sessions"] == []
    assert protocol == SUBPROTOCOL


def test_the_bearer_subprotocol_opens_the_state_stream(server: ServerThread) -> None:
    offered = [SUBPROTOCOL, f"bearer.{ADMIN}"]
    message, protocol = asyncio.run(first_message(ws(server), subprotocols=offered))
    assert message["type"] == "snapshot"
    assert protocol == SUBPROTOCOL, "the server selects voxgate.v1, never echoes the token"
    assert refused(ws(server), subprotocols=[SUBPROTOCOL, "bearer.wrong"]) == 403
    # without voxgate.v1 the server would have no subprotocol to select, and a browser
    # would then fail the connection: refused, with the reason in the log
    assert refused(ws(server), subprotocols=[f"bearer.{ADMIN}"]) == 403


def test_tickets_expire_are_single_use_and_bounded() -> None:
    clock = FakeClock()
    tickets = Tickets(30.0, clock=clock, max_open=3)
    first = tickets.issue()
    clock.now += 29.0
    tickets.redeem(first)
    with pytest.raises(AuthError, match="unknown, used or expired ticket"):
        tickets.redeem(first)
    late = tickets.issue()
    clock.now += 30.5
    with pytest.raises(AuthError, match="unknown, used or expired ticket"):
        tickets.redeem(late)
    several = [tickets.issue() for _ in range(5)]
    assert len(tickets) == 3, "only the newest max_open tickets are kept"
    tickets.redeem(several[-1])
    with pytest.raises(AuthError):
        tickets.redeem(several[0])


def test_the_call_client_reads_twilio_events_with_the_header(server: ServerThread) -> None:
    """A Twilio call carries no events: the client reads them (the transcripts, the
    session's id) on /ws/state, sending the admin token as a header."""
    pcm, _ = load_prompt("conf-locked")
    result = asyncio.run(run_call(pcm, "twilio", server.url, tail_s=6.0,
                                  admin_token=ADMIN, twilio_auth_token=TWILIO))
    assert not [e for e in result.errors if "no events" in e], result.errors
    types = [e.event.type for e in result.events]
    assert result.session_id and "session.started" in types, types
