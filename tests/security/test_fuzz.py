"""Fuzzing the parsers that take outside input: workflow YAML here, and both call endpoints
of a live server with a mutational fuzzer while a good call goes on. The wire protocols'
parsers are fuzzed in tests/gateway/test_*_protocol.py, the other parsers in
test_fuzz_parsers.py, the HTTP edges in test_fuzz_http.py; budgets in fuzzing.py and the
list in docs/security.md, "Fuzzing"."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.app import create_app
from gateway.config import Settings
from gateway.evaluation.client import run_call
from gateway.evaluation.speech import load_prompt
from gateway.server import ServerThread
from orchestration.catalog.registry import build_registry
from orchestration.workflow.loader import CATALOG, DefinitionError, load_text
from tests.gateway.test_bad_input import start_message
from tests.security.fuzzing import budget

REGISTRY = build_registry()
SEED_YAML = (CATALOG / "support_triage.yaml").read_text()


@budget(100)
@given(st.text(max_size=2000))
def test_any_text_is_a_workflow_or_a_definition_error(text: str) -> None:
    try:
        load_text(text, "fuzz.yaml", REGISTRY)
    except DefinitionError as exc:
        assert "fuzz.yaml" in str(exc)


def mutate(obj: Any, rnd: random.Random) -> Any:
    """Replace, drop or retype one node somewhere in a YAML document."""
    if isinstance(obj, dict) and obj:
        key = rnd.choice(list(obj))
        choice = rnd.random()
        out = dict(obj)
        if choice < 0.2:
            del out[key]
        elif choice < 0.35:
            out[rnd.choice(["x", "state", "on", "if", "to", "tool", ""])] = out[key]
        else:
            out[key] = mutate(obj[key], rnd)
        return out
    if isinstance(obj, list) and obj:
        i = rnd.randrange(len(obj))
        out_list = list(obj)
        out_list[i] = mutate(obj[i], rnd)
        return out_list
    return rnd.choice([None, 0, -1, 1e308, "", "?", "]]", "a" * 500, [], {}, True, "${{x}}"])


@budget(100, deadline_ms=2000)
@given(st.randoms(use_true_random=False), st.integers(min_value=1, max_value=6))
def test_mutated_catalog_workflows_never_crash_the_loader(rnd: random.Random, rounds: int) -> None:
    doc = yaml.safe_load(SEED_YAML)
    for _ in range(rounds):
        doc = mutate(doc, rnd)
    try:
        load_text(yaml.safe_dump(doc), "mutant.yaml", REGISTRY)
    except DefinitionError as exc:
        assert "mutant.yaml" in str(exc)


# --- live endpoints ------------------------------------------------------------------


def twilio_frames(rnd: random.Random, n: int) -> list[str | bytes]:
    media = {
        "event": "media",
        "sequenceNumber": "2",
        "streamSid": "MZ1",
        "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": ""},
    }
    frames: list[str | bytes] = [start_message(call_sid="CA-fuzz")]
    for _ in range(n):
        kind = rnd.random()
        if kind < 0.3:
            payload = base64.b64encode(rnd.randbytes(rnd.randrange(0, 400))).decode()
            media["media"]["payload"] = payload  # type: ignore[index]
            frames.append(json.dumps(media))
        elif kind < 0.5:
            frames.append(json.dumps(mutate(media, rnd)))
        elif kind < 0.6:
            frames.append(rnd.randbytes(rnd.randrange(1, 300)).decode("latin-1"))
        elif kind < 0.7:
            frames.append(
                json.dumps({"event": rnd.choice(["mark", "dtmf", "stop", "x"]), "mark": {}})
            )
        else:
            frames.append(json.dumps(mutate(json.loads(start_message()), rnd)))
    return frames


def browser_frames(rnd: random.Random, n: int) -> list[str | bytes]:
    frames: list[str | bytes] = [json.dumps({"type": "start"})]
    for _ in range(n):
        kind = rnd.random()
        if kind < 0.4:
            frames.append(rnd.randbytes(rnd.randrange(0, 2000)))
        elif kind < 0.7:
            message = {"type": rnd.choice(["mark", "dtmf", "text", "ping", "start", "?"])}
            frames.append(json.dumps(mutate(message, rnd)))
        else:
            frames.append(rnd.randbytes(rnd.randrange(1, 200)).decode("latin-1"))
    return frames


async def throw(url: str, frames: list[str | bytes]) -> None:
    try:
        async with connect(url, max_size=None) as sock:
            for frame in frames:
                await sock.send(frame)
            async with asyncio.timeout(5):
                async for _ in sock:
                    pass
    except (ConnectionClosed, InvalidStatus, TimeoutError):
        pass  # the server may close on us: that is its right


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with ServerThread(
        create_app(Settings(data_dir=tmp_path_factory.mktemp("data"), agent="basic"))
    ) as running:
        yield running


@pytest.mark.slow
def test_fuzzed_connections_never_hurt_the_server_or_another_call(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    rnd = random.Random(20261126)
    base = server.url.replace("http://", "ws://")

    async def scenario() -> None:
        pcm, _ = load_prompt("conf-locked")
        good = asyncio.create_task(run_call(pcm, "twilio", server.url, tail_s=10.0))
        for round_ in range(6):
            await asyncio.gather(
                throw(f"{base}/ws/twilio", twilio_frames(rnd, 60)),
                throw(f"{base}/ws/browser", browser_frames(rnd, 60)),
            )
            del round_
        result = await good
        assert result.user_transcripts(), "the good call was disturbed"
        assert any("I heard" in u.text for u in result.agent_replies())

    asyncio.run(scenario())
    health = httpx.get(f"{server.url}/healthz").json()
    assert health["status"] == "ok"
    # every fuzzed session has ended and been cleaned up
    for _ in range(50):
        if not server.runtime.sessions:
            break
        asyncio.run(asyncio.sleep(0.1))
    assert not server.runtime.sessions
    # bad input is a warning at the edge, never an error inside the server
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors][:5]
