"""The browser protocol (docs/protocol.md): round trips, exact errors and close codes."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import GatewayError
from gateway.transports.browser_protocol import (
    CLOSE_INVALID_DATA,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_POLICY_VIOLATION,
    CLOSE_UNSUPPORTED_DATA,
    ERR_ALREADY_STARTED,
    ERR_BAD_AUDIO,
    ERR_INVALID_MESSAGE,
    ERR_MALFORMED_JSON,
    ERR_NOT_STARTED,
    ERR_SAMPLE_RATE,
    ERR_TOO_LARGE,
    ERR_UNKNOWN_TYPE,
    MAX_MESSAGE_BYTES,
    BrowserProtocolError,
    ClearMessage,
    DtmfMessage,
    EndMessage,
    ErrorMessage,
    EventMessage,
    MarkMessage,
    PingMessage,
    PongMessage,
    SessionMessage,
    StartMessage,
    StopMessage,
    TextMessage,
    parse_client,
    parse_server,
)
from gateway.transports.browser_validator import ClientValidator
from orchestration.log.events import Event
from tests.security.fuzzing import budget

START: dict[str, Any] = {
    "type": "start",
    "sample_rate": 48000,
    "caller": "widget-7f3a",
    "metadata": {"page": "/pricing", "locale": "en-GB", "utm": {"source": "ad"}},
}
CLIENT: list[dict[str, Any]] = [
    START,
    {"type": "mark", "name": "r3:2"},
    {"type": "dtmf", "digit": "#"},
    {"type": "text", "text": "I'd like to book a table for two"},
    {"type": "stop"},
    {"type": "ping"},
]
SERVER: list[dict[str, Any]] = [
    {"type": "session", "session_id": "s-4c1f0e", "sample_rate": 16000},
    {"type": "mark", "name": "r3:2"},
    {"type": "clear"},
    {
        "type": "event",
        "event": {
            "seq": 42,
            "ts": 1764112970.25,
            "session_id": "s-4c1f0e",
            "type": "stt.final",
            "data": {"text": "book a table", "confidence": 0.91},
        },
    },
    {"type": "error", "code": "unknown_type", "message": 'unknown message type "hello"'},
    {"type": "end", "reason": "agent hung up"},
    {"type": "pong"},
]


@pytest.mark.parametrize("fixture", CLIENT, ids=lambda f: str(f["type"]))
def test_client_round_trip(fixture: dict[str, Any]) -> None:
    message = parse_client(json.dumps(fixture))
    assert json.loads(message.to_json()) == fixture
    assert parse_client(message.to_json().encode()) == message


@pytest.mark.parametrize("fixture", SERVER, ids=lambda f: str(f["type"]))
def test_server_round_trip(fixture: dict[str, Any]) -> None:
    message = parse_server(json.dumps(fixture))
    assert json.loads(message.to_json()) == fixture
    assert parse_server(message.to_json()) == message


def test_parsed_fields_and_defaults() -> None:
    assert parse_client('{"type": "start"}') == StartMessage(16000, None, {})
    assert parse_client('{"type": "start", "caller": null}') == StartMessage()
    start = parse_client(json.dumps(START))
    assert isinstance(start, StartMessage)
    assert (start.sample_rate, start.caller, start.metadata["locale"]) == (
        48000,
        "widget-7f3a",
        "en-GB",
    )
    assert parse_client('{"type":"dtmf","digit":"7"}') == DtmfMessage("7")
    assert parse_client('{"type":"text","text":"hi"}') == TextMessage("hi")
    assert parse_client('{"type":"stop","extra":1}') == StopMessage()
    assert parse_client('{"type":"ping"}') == PingMessage()
    assert parse_server('{"type":"clear"}') == ClearMessage()
    assert parse_server('{"type":"pong"}') == PongMessage()
    assert parse_server('{"type":"end","reason":""}') == EndMessage("")
    event = parse_server(json.dumps(SERVER[3]))
    assert isinstance(event, EventMessage)
    assert event.event == Event(42, 1764112970.25, "s-4c1f0e", "stt.final", event.event.data)
    assert event.event.data["text"] == "book a table"
    assert SessionMessage("s1").to_dict() == {
        "type": "session",
        "session_id": "s1",
        "sample_rate": 16000,
    }


BAD = ERR_INVALID_MESSAGE
ERRORS: list[tuple[str | bytes, str, str, int | None]] = [
    (
        "{",
        ERR_MALFORMED_JSON,
        "malformed JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
        CLOSE_INVALID_DATA,
    ),
    (
        "nope",
        ERR_MALFORMED_JSON,
        "malformed JSON: Expecting value: line 1 column 1 (char 0)",
        CLOSE_INVALID_DATA,
    ),
    (b"\xff{}", ERR_MALFORMED_JSON, "malformed JSON: cannot be decoded", CLOSE_INVALID_DATA),
    ("[]", BAD, "message is not a JSON object (got array)", None),
    ("{}", BAD, 'missing field "type"', None),
    ('{"type": 1}', BAD, 'wrong type for "type": expected a string, got number', None),
    ('{"type": "hello"}', ERR_UNKNOWN_TYPE, 'unknown message type "hello"', None),
    ('{"type": "session"}', ERR_UNKNOWN_TYPE, 'unknown message type "session"', None),
    (
        '{"type": "start", "sample_rate": 44100}',
        ERR_SAMPLE_RATE,
        "unsupported sample rate 44100 Hz (supported: 8000, 16000, 24000, 48000)",
        CLOSE_UNSUPPORTED_DATA,
    ),
    (
        '{"type": "start", "sample_rate": "16000"}',
        BAD,
        'wrong type for "sample_rate": expected an integer, got string',
        None,
    ),
    (
        '{"type": "start", "sample_rate": true}',
        BAD,
        'wrong type for "sample_rate": expected an integer, got boolean',
        None,
    ),
    (
        '{"type": "start", "caller": 5}',
        BAD,
        'wrong type for "caller": expected a string, got number',
        None,
    ),
    (
        '{"type": "start", "metadata": []}',
        BAD,
        'wrong type for "metadata": expected an object, got array',
        None,
    ),
    ('{"type": "mark"}', BAD, 'missing field "name"', None),
    ('{"type": "mark", "name": ""}', BAD, 'empty "name"', None),
    (
        '{"type": "dtmf", "digit": "x"}',
        BAD,
        'bad value for "digit": "x" (expected 0-9 * # A-D)',
        None,
    ),
    (
        '{"type": "dtmf", "digit": "12"}',
        BAD,
        'bad value for "digit": "12" (expected 0-9 * # A-D)',
        None,
    ),
    (
        '{"type": "text", "text": null}',
        BAD,
        'wrong type for "text": expected a string, got null',
        None,
    ),
    (
        '{"type": "text", "text": "' + "a" * MAX_MESSAGE_BYTES + '"}',
        ERR_TOO_LARGE,
        "text message too large: 65564 bytes (limit 65536)",
        CLOSE_MESSAGE_TOO_BIG,
    ),
]


@pytest.mark.parametrize(("text", "code", "message", "close"), ERRORS)
def test_client_errors(text: str | bytes, code: str, message: str, close: int | None) -> None:
    with pytest.raises(BrowserProtocolError) as info:
        parse_client(text)
    error = info.value
    assert (error.code, str(error), error.close_code) == (code, message, close)
    assert isinstance(error, GatewayError)
    assert error.to_message() == ErrorMessage(code, message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"type": "session"}', 'missing field "session_id"'),
        ('{"type": "event", "event": {"seq": 1}}', 'missing field "ts"'),
        (
            '{"type": "event", "event": {"seq": 1, "ts": "x"}}',
            'wrong type for "ts": expected a number, got string',
        ),
        ('{"type": "start"}', 'unknown message type "start"'),
    ],
)
def test_server_errors(text: str, message: str) -> None:
    with pytest.raises(BrowserProtocolError) as info:
        parse_server(text)
    assert str(info.value) == message


def _error(action: Any) -> tuple[str, str, int | None]:
    with pytest.raises(BrowserProtocolError) as info:
        action()
    return info.value.code, str(info.value), info.value.close_code


def test_validator_enforces_order() -> None:
    validator = ClientValidator()
    assert validator.text('{"type": "ping"}') == PingMessage()  # harmless before start
    assert _error(lambda: validator.audio(b"\0\0")) == (
        ERR_NOT_STARTED,
        "audio before start",
        CLOSE_POLICY_VIOLATION,
    )
    assert _error(lambda: validator.text('{"type": "mark", "name": "a"}')) == (
        ERR_NOT_STARTED,
        "mark before start",
        CLOSE_POLICY_VIOLATION,
    )
    start = validator.text('{"type": "start", "sample_rate": 8000}')
    assert validator.start == start == StartMessage(8000)
    assert validator.audio(b"\1\0" * 160) == b"\1\0" * 160
    assert validator.text('{"type": "mark", "name": "a"}') == MarkMessage("a")
    assert _error(lambda: validator.text('{"type": "start"}')) == (
        ERR_ALREADY_STARTED,
        "start sent twice",
        CLOSE_POLICY_VIOLATION,
    )
    assert _error(lambda: validator.audio(b"\0" * 641)) == (
        ERR_BAD_AUDIO,
        "audio frame of 641 bytes is not whole PCM16 samples",
        CLOSE_INVALID_DATA,
    )
    assert _error(lambda: validator.audio(b"\0" * (MAX_MESSAGE_BYTES + 2))) == (
        ERR_TOO_LARGE,
        "binary message too large: 65538 bytes (limit 65536)",
        CLOSE_MESSAGE_TOO_BIG,
    )


def test_validator_bad_start_leaves_session_unstarted() -> None:
    validator = ClientValidator()
    assert _error(lambda: validator.text('{"type": "start", "sample_rate": 11025}'))[2] == (
        CLOSE_UNSUPPORTED_DATA
    )
    assert validator.start is None


# --- fuzzing: any input either parses or raises BrowserProtocolError --------------------

_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_json = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_keys = st.sampled_from(["type", "sample_rate", "caller", "metadata", "name", "digit", "text"])
_types = st.sampled_from(["start", "mark", "dtmf", "text", "stop", "ping", "session", "event"])


@st.composite
def _shaped(draw: st.DrawFn) -> str:
    obj = draw(st.dictionaries(_keys, _json, max_size=4))
    if draw(st.booleans()):
        obj["type"] = draw(_types)
    return json.dumps(obj)


def _check(text: str | bytes) -> None:
    for parse in (parse_client, parse_server):
        with contextlib.suppress(BrowserProtocolError):
            parse(text)
    validator = ClientValidator()
    with contextlib.suppress(BrowserProtocolError):
        validator.text(text)
    if isinstance(text, bytes):
        with contextlib.suppress(BrowserProtocolError):
            validator.audio(text)


@budget(150)
@given(st.text() | st.binary())
def test_fuzz_any_text(text: str | bytes) -> None:
    _check(text)


@budget(150)
@given(_shaped())
def test_fuzz_shaped(text: str) -> None:
    _check(text)
