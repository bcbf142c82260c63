"""Fuzzing the parsers of outside input that are not wire protocols: the guard expression
language, the agents' configuration and dialogue flows, widget tokens, settings from the
environment, the ops status file and the NLU's input text. Each gets what its callers
are documented to get: a result, or its own error type, never another exception.
Budgets: tests/security/fuzzing.py; the list: docs/security.md, "Fuzzing"."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic_settings import SettingsError
from starlette.requests import HTTPConnection

from gateway.auth import WIDGET_AUDIENCE, Auth, AuthError
from gateway.config import Settings
from orchestration.agents import config as agents_config
from orchestration.agents.config import DEFAULT_CONFIG, AgentsConfigError
from orchestration.agents.nlu.parser import LocalNlu, NluConfig, NluResult
from orchestration.agents.ops import OpsConfig, OpsMonitor, register
from orchestration.expr import ExpressionError, evaluate, parse, render
from orchestration.patterns.tools import ToolError, ToolRegistry
from orchestration.workflow.loader import _Loader as YamlLoader
from tests.security.fuzzing import budget
from tests.security.test_fuzz import mutate

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)

# --- the guard expression language (orchestration/expr.py) ------------------------

_WORDS = ["input", "steps", "slots", "turn", "vars", "caller", "spoken", "item", "x", "intent",
          ".", "[", "]", "(", ")", ",", "0", "-1", "2.5", "'a'", '"b"', "''", "==", "!=", "<",
          "<=", ">", ">=", "in", "not", "and", "or", "true", "false", "null", "len", "exists",
          "lower", "first", "join", "@", "{", "}", "1e999", "'unterminated"]
EXPRESSIONS = st.lists(st.sampled_from(_WORDS), max_size=20).map(" ".join) | st.text(max_size=120)
# one random branch in an otherwise fixed context keeps generation cheap
CONTEXTS = st.builds(
    lambda key, value: {"input": {"a": 1}, "steps": {"probe": {"ok": True}}, "slots": {},
                        "turn": {"intent": "book"}, "vars": {}, key: value},
    st.sampled_from(["input", "steps", "slots", "turn", "vars"]), JSON)


@budget(300)
@given(EXPRESSIONS, CONTEXTS)
def test_expressions_parse_and_evaluate_or_raise_expression_error(
        text: str, ctx: dict[str, Any]) -> None:
    try:
        node = parse(text)
    except ExpressionError:
        return
    with contextlib.suppress(ExpressionError):
        evaluate(node, ctx)


@budget(150)
@given(st.lists(EXPRESSIONS | st.text(max_size=10), max_size=4), CONTEXTS)
def test_templates_render_or_raise_expression_error(
        pieces: list[str], ctx: dict[str, Any]) -> None:
    template = "".join(f"{{{p}}}" if i % 2 else p for i, p in enumerate(pieces))
    with contextlib.suppress(ExpressionError):
        assert isinstance(render(template, ctx), str)


# --- the agents' configuration and dialogue flows (orchestration/agents/config.py) --


def _read(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=YamlLoader)


BASE = _read(DEFAULT_CONFIG)
FLOWS = {Path(f).name: _read(DEFAULT_CONFIG.parent / f) for f in BASE["flows"]}


def _absolute(config: dict[str, Any], flow_dir: Path) -> dict[str, Any]:
    """Relative paths are read from the file's folder: point them back at the package."""
    out = dict(config)
    if isinstance(out.get("intents_file"), str):
        out["intents_file"] = str(DEFAULT_CONFIG.parent / out["intents_file"])
    out["flows"] = [str(flow_dir / name) for name in FLOWS]
    return out


@budget(30, deadline_ms=3000)
@given(st.randoms(use_true_random=False), st.integers(1, 5), st.sampled_from(sorted(FLOWS)))
def test_mutated_agents_config_and_flows_load_or_raise_agents_config_error(
        rnd: random.Random, rounds: int, flow_name: str) -> None:
    config, flow = copy.deepcopy(BASE), copy.deepcopy(FLOWS[flow_name])
    for _ in range(rounds):
        if rnd.random() < 0.5:
            config = mutate(config, rnd)
        else:
            flow = mutate(flow, rnd)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, data in FLOWS.items():
            (folder / name).write_text(yaml.safe_dump(flow if name == flow_name else data))
        path = folder / "agents.yaml"
        body = _absolute(config, folder) if isinstance(config, dict) else config
        path.write_text(yaml.safe_dump(body))
        try:
            agents_config.load(path)
        except AgentsConfigError as exc:  # names the file and the path of each problem
            assert str(exc).startswith("invalid agents configuration ") and exc.problems, exc


# --- widget tokens (gateway/auth.py) ---------------------------------------------------

SECRET = "fuzz-token-secret-0123456789abcdef0123"
AUTH = Auth(Settings(token_secret=SECRET, admin_token="fuzz-admin-0123456789abcdef0123456"))
GOOD, _ = AUTH.mint_widget_token("+15550001111", "https://shop.example")


def _connection(token: str, origin: str | None) -> HTTPConnection:
    headers = [(b"origin", origin.encode("utf-8", "surrogatepass"))] if origin else []
    return HTTPConnection({"type": "websocket", "path": "/ws/browser", "headers": headers,
                           "query_string": f"token={quote(token, safe='')}".encode()})


@st.composite
def tampered(draw: st.DrawFn) -> str:
    """A real token with characters changed, or re-signed with a guessed key, or with
    its header swapped for ``alg: none``."""
    kind = draw(st.sampled_from(["edit", "resign", "none", "claims"]))
    if kind == "edit":
        chars = list(GOOD)
        for _ in range(draw(st.integers(1, 4))):
            chars[draw(st.integers(0, len(chars) - 1))] = draw(st.sampled_from("aZ0-_.="))
        return "".join(chars)
    claims = draw(st.dictionaries(st.sampled_from(["sub", "aud", "exp", "origin", "iat"]),
                                  JSON, max_size=5))
    if kind == "resign":  # a guessed key (32 bytes or more: PyJWT warns about shorter)
        return jwt.encode(claims, draw(st.text(min_size=32, max_size=48)), algorithm="HS256")
    if kind == "none":  # {"alg":"none"} over the real claims, no signature
        return "eyJhbGciOiJub25lIn0." + GOOD.split(".")[1] + "."
    return jwt.encode({"aud": WIDGET_AUDIENCE, **claims}, "not-the-key-" + "x" * 32,
                      algorithm="HS256")


@budget(200)
@given(st.text(max_size=300) | tampered(), st.none() | st.text(max_size=60))
def test_widget_tokens_are_granted_only_when_minted_here(token: str, origin: str | None) -> None:
    try:
        grant = AUTH.check_widget(_connection(token, origin))
    except AuthError as exc:
        assert exc.status in (401, 403)
        return
    assert token == GOOD and grant is not None  # only the real token gets through


# --- settings from the environment (gateway/config.py) ---------------------------------

ENV_KEYS = ["VOXGATE_PORT", "VOXGATE_MAX_SESSIONS", "VOXGATE_IDLE_TIMEOUT_S", "VOXGATE_MODE",
            "VOXGATE_ALLOWED_ORIGINS", "VOXGATE_REDACT", "VOXGATE_RETENTION_DAYS",
            "VOXGATE_DRAIN_TIMEOUT_S", "VOXGATE_AGENT", "VOXGATE_TOKEN_TTL_S",
            "VOXGATE_VOICE__TURN__REPROMPT_AFTER_S", "VOXGATE_VOICE__STT__WORKERS",
            "VOXGATE_VOICE__VAD__AGGRESSIVENESS", "VOXGATE_VOICE", "VOXGATE_DATA_DIR",
            "VOXGATE_NO_SUCH_SETTING"]
ENV_VALUES = (st.text(max_size=30) | st.sampled_from(["1", "0", "-1", "1e309", "true", "[]", "{}",
                                                       '["https://a"]', "nan", "inf", ""])
              ).filter(lambda v: "\x00" not in v)


@budget(150)
@given(st.dictionaries(st.sampled_from(ENV_KEYS), ENV_VALUES, min_size=1, max_size=4))
def test_settings_from_environment_validate_or_raise_a_settings_error(
        env: dict[str, str]) -> None:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        Settings()
    except (ValidationError, SettingsError):
        pass
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- the ops status file, read by the ops.probe tool (orchestration/agents/ops.py) ------------


@pytest.fixture(scope="module")
def status_probe() -> Iterator[tuple[ToolRegistry, Path]]:
    with tempfile.TemporaryDirectory() as tmp:
        status = Path(tmp) / "status.yaml"
        config = OpsConfig(status_file=status, services={"payments": {"aliases": ["payment"]}})
        monitor = OpsMonitor(config, Path(tmp) / "ops.db")
        registry = ToolRegistry()
        register(registry, monitor)
        yield registry, status


STATUS_FILES = (st.binary(max_size=300)
                | JSON.map(lambda v: yaml.safe_dump({"payments": v}).encode())
                | st.dictionaries(st.text(max_size=10), JSON, max_size=4).map(
                    lambda d: yaml.safe_dump({"payments": {"status": "up", **d}}).encode()))


@budget(150)
@given(STATUS_FILES)
def test_status_file_gives_a_status_or_a_tool_error(
        status_probe: tuple[ToolRegistry, Path], content: bytes) -> None:
    registry, status = status_probe
    status.write_bytes(content)
    try:
        out = asyncio.run(registry.invoke("ops.probe", {"service": "payments"}))
    except ToolError:
        return
    assert isinstance(out["status"], str)


# --- what the NLU is given: any transcript (orchestration/agents/nlu/parser.py) -------------------


@pytest.fixture(scope="module")
def nlu() -> LocalNlu:
    # tf-idf: the same normalising, respelling and slot parsing as the default logistic
    # regression, without its training time (30 s on a busy 2-core machine)
    return LocalNlu.from_files(DEFAULT_CONFIG.parent / BASE["intents_file"],
                               NluConfig(method="tfidf"),
                               services={"payments": ["payment"], "website": ["site"]})


@budget(100)
@given(st.text(max_size=300), st.sampled_from([(), ("deny", "affirm"), ("tell_name",)]))
def test_any_transcript_gets_an_intent(nlu: LocalNlu, text: str,
                                       expected: tuple[str, ...]) -> None:
    result = nlu.parse(text, expected)
    assert isinstance(result, NluResult)
    assert result.intent in (*nlu.intents, "unknown"), result
    assert math.isfinite(result.confidence), result
