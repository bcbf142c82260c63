"""Twilio Media Streams messages: round trips of doc-shaped messages and exact errors.

Fixtures follow the examples in https://www.twilio.com/docs/voice/media-streams/websocket-messages
with real base64 mu-law payloads in place of the docs' abbreviated ones.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import math
import struct
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import GatewayError
from gateway.transports.twilio_protocol import (
    MAX_MEDIA_PAYLOAD_BYTES,
    ClearMessage,
    ConnectedMessage,
    DtmfMessage,
    MarkMessage,
    MediaMessage,
    OutboundMark,
    OutboundMedia,
    StartMessage,
    StopMessage,
    TwilioProtocolError,
    parse_inbound,
    parse_outbound,
)
from gateway.transports.twilio_webhooks import twiml_connect_stream
from tests.security.fuzzing import budget
from voice.audio import ulaw_encode

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
ACCOUNT = "AC25e16e9a716a4a1786a7c83f58e30482"
CALL = "CA3e2a6d7a5b9c4f4e8d1f0a2b3c4d5e6f"


def _tone_payload(ms: int = 20) -> str:
    n = 8 * ms
    pcm = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(n)
    )
    return base64.b64encode(ulaw_encode(pcm)).decode()


PAYLOAD = _tone_payload()

CONNECTED: dict[str, Any] = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
START: dict[str, Any] = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": ACCOUNT,
        "streamSid": SID,
        "callSid": CALL,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"caller": "+15017122661", "FirstName": "Jane"},
    },
    "streamSid": SID,
}
MEDIA: dict[str, Any] = {
    "event": "media",
    "sequenceNumber": "4",
    "media": {"track": "inbound", "chunk": "2", "timestamp": "5", "payload": PAYLOAD},
    "streamSid": SID,
}
DTMF: dict[str, Any] = {
    "event": "dtmf",
    "streamSid": SID,
    "sequenceNumber": "5",
    "dtmf": {"track": "inbound_track", "digit": "1"},
}
MARK: dict[str, Any] = {
    "event": "mark",
    "sequenceNumber": "4",
    "streamSid": SID,
    "mark": {"name": "my label"},
}
STOP: dict[str, Any] = {
    "event": "stop",
    "sequenceNumber": "5",
    "stop": {"accountSid": ACCOUNT, "callSid": CALL},
    "streamSid": SID,
}
INBOUND: list[dict[str, Any]] = [CONNECTED, START, MEDIA, DTMF, MARK, STOP]

OUT_MEDIA: dict[str, Any] = {"event": "media", "streamSid": SID, "media": {"payload": PAYLOAD}}
OUT_MARK: dict[str, Any] = {"event": "mark", "streamSid": SID, "mark": {"name": "reply-1:3"}}
OUT_CLEAR: dict[str, Any] = {"event": "clear", "streamSid": SID}
OUTBOUND: list[dict[str, Any]] = [OUT_MEDIA, OUT_MARK, OUT_CLEAR]


@pytest.mark.parametrize("fixture", INBOUND, ids=lambda f: str(f["event"]))
def test_inbound_round_trip(fixture: dict[str, Any]) -> None:
    message = parse_inbound(json.dumps(fixture))
    assert json.loads(message.to_json()) == fixture
    assert parse_inbound(message.to_json().encode()) == message


@pytest.mark.parametrize("fixture", OUTBOUND, ids=lambda f: str(f["event"]))
def test_outbound_round_trip(fixture: dict[str, Any]) -> None:
    message = parse_outbound(json.dumps(fixture))
    assert json.loads(message.to_json()) == fixture
    assert parse_outbound(message.to_json()) == message


def test_parsed_fields() -> None:
    start = parse_inbound(json.dumps(START))
    assert isinstance(start, StartMessage)
    assert (start.stream_sid, start.call_sid, start.account_sid) == (SID, CALL, ACCOUNT)
    assert start.custom_parameters["caller"] == "+15017122661"
    media = parse_inbound(json.dumps(MEDIA))
    assert isinstance(media, MediaMessage)
    assert (media.sequence_number, media.chunk, media.timestamp) == (4, 2, 5)
    assert len(media.payload) == 160
    assert parse_inbound(json.dumps(DTMF)) == DtmfMessage(5, SID, "1")
    assert parse_inbound(json.dumps(MARK)) == MarkMessage(4, SID, "my label")
    assert parse_inbound(json.dumps(STOP)) == StopMessage(5, SID, ACCOUNT, CALL)
    assert parse_inbound(json.dumps(CONNECTED)) == ConnectedMessage()
    assert parse_outbound(json.dumps(OUT_CLEAR)) == ClearMessage(SID)
    assert parse_outbound(json.dumps(OUT_MARK)) == OutboundMark(SID, "reply-1:3")
    assert parse_outbound(OutboundMedia(SID, b"\xff" * 160).to_json()) == OutboundMedia(
        SID, b"\xff" * 160
    )


def test_start_without_custom_parameters_and_integer_counters() -> None:
    fixture = copy.deepcopy(START)
    del fixture["start"]["customParameters"]
    fixture["sequenceNumber"] = 1
    start = parse_inbound(json.dumps(fixture))
    assert isinstance(start, StartMessage)
    assert start.sequence_number == 1 and dict(start.custom_parameters) == {}


def _with(fixture: dict[str, Any], path: str, value: object = ...) -> str:
    """The fixture with the dotted ``path`` set to ``value`` (deleted when omitted)."""
    obj = copy.deepcopy(fixture)
    *parents, last = path.split(".")
    node = obj
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return json.dumps(obj)


BIG = base64.b64encode(b"\xff" * (MAX_MEDIA_PAYLOAD_BYTES + 1)).decode()

ERRORS = [
    (
        "{",
        "malformed JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
    ),
    ("", "malformed JSON: Expecting value: line 1 column 1 (char 0)"),
    ("[1, 2]", "message is not a JSON object (got array)"),
    ('"media"', "message is not a JSON object (got string)"),
    ("{}", 'missing field "event"'),
    ('{"event": 5}', 'wrong type for "event": expected a string, got number'),
    ('{"event": "x"}', 'unknown event "x"'),
    (_with(START, "start.streamSid"), 'missing field "start.streamSid"'),
    (_with(START, "start"), 'missing field "start"'),
    (_with(START, "start", []), 'wrong type for "start": expected an object, got array'),
    (_with(START, "sequenceNumber"), 'missing field "sequenceNumber"'),
    (
        _with(START, "sequenceNumber", "one"),
        'wrong type for "sequenceNumber": expected a decimal string, got string',
    ),
    (
        _with(START, "sequenceNumber", True),
        'wrong type for "sequenceNumber": expected a decimal string, got boolean',
    ),
    (
        _with(START, "start.accountSid", None),
        'wrong type for "start.accountSid": expected a string, got null',
    ),
    (
        _with(START, "start.tracks", "inbound"),
        'wrong type for "start.tracks": expected an array of strings, got string',
    ),
    (
        _with(START, "start.mediaFormat.encoding", "audio/l16"),
        "unsupported media format: audio/l16 at 8000 Hz, 1 channel(s) "
        "(expected audio/x-mulaw at 8000 Hz, 1 channel)",
    ),
    (
        _with(START, "start.mediaFormat.sampleRate", 16000),
        "unsupported media format: audio/x-mulaw at 16000 Hz, 1 channel(s) "
        "(expected audio/x-mulaw at 8000 Hz, 1 channel)",
    ),
    (
        _with(START, "start.mediaFormat.sampleRate", "8000"),
        'wrong type for "start.mediaFormat.sampleRate": expected an integer, got string',
    ),
    (
        _with(START, "start.customParameters.caller", 1),
        'wrong type for "start.customParameters.caller": expected a string, got number',
    ),
    (
        _with(START, "streamSid", "MZother"),
        f'streamSid "MZother" does not match start.streamSid "{SID}"',
    ),
    (_with(MEDIA, "media.payload", "no+JhoaJjpzS..."), "bad base64 in media.payload"),
    (_with(MEDIA, "media.payload", "AAA"), "bad base64 in media.payload"),
    (_with(MEDIA, "media.payload", BIG), "media.payload too large: 16385 bytes (limit 16384)"),
    (_with(MEDIA, "media.payload"), 'missing field "media.payload"'),
    (
        _with(MEDIA, "media.chunk", 1.5),
        'wrong type for "media.chunk": expected a decimal string, got number',
    ),
    (
        _with(MEDIA, "media.timestamp", "-5"),
        'wrong type for "media.timestamp": expected a decimal string, got string',
    ),
    (
        _with(MEDIA, "media.track", "both"),
        'bad value for "media.track": "both" (expected inbound or outbound)',
    ),
    (_with(MEDIA, "streamSid"), 'missing field "streamSid"'),
    (
        _with(DTMF, "dtmf.digit", "12"),
        'bad value for "dtmf.digit": "12" (expected one of 0-9 * # A-D)',
    ),
    (_with(DTMF, "dtmf.digit"), 'missing field "dtmf.digit"'),
    (_with(MARK, "mark.name", ["a"]), 'wrong type for "mark.name": expected a string, got array'),
    (_with(STOP, "stop.callSid"), 'missing field "stop.callSid"'),
    (json.dumps(OUT_CLEAR), 'unknown event "clear"'),  # we send clear; Twilio never does
    (b"\xff\xfe", "message is not valid UTF-8"),
    ('{"event": "' + "x" * 70000 + '"}', "message too large: 70013 bytes (limit 65536)"),
]


@pytest.mark.parametrize(("text", "error"), ERRORS)
def test_inbound_errors(text: str | bytes, error: str) -> None:
    with pytest.raises(TwilioProtocolError) as info:
        parse_inbound(text)
    assert str(info.value) == error
    assert isinstance(info.value, GatewayError)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (json.dumps(CONNECTED), 'unknown event "connected"'),
        (_with(OUT_MEDIA, "media.payload", "%%%"), "bad base64 in media.payload"),
        (_with(OUT_MARK, "mark"), 'missing field "mark"'),
        (
            _with(OUT_CLEAR, "streamSid", 1),
            'wrong type for "streamSid": expected a string, got number',
        ),
    ],
)
def test_outbound_errors(text: str, error: str) -> None:
    with pytest.raises(TwilioProtocolError) as info:
        parse_outbound(text)
    assert str(info.value) == error


# --- fuzzing: any input either parses or raises TwilioProtocolError --------------------

_json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(obj: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix] if prefix else []
    if isinstance(obj, dict):
        for key, value in obj.items():
            found += _paths(value, (*prefix, key))
    return found


@st.composite
def _mutated(draw: st.DrawFn, fixtures: list[dict[str, Any]]) -> str:
    obj = copy.deepcopy(draw(st.sampled_from(fixtures)))
    path = draw(st.sampled_from(_paths(obj)))
    node = obj
    for key in path[:-1]:
        node = node[key]
    if draw(st.booleans()):
        del node[path[-1]]
    else:
        node[path[-1]] = draw(_json)
    return json.dumps(obj)


def _parses_or_protocol_error(text: str | bytes, inbound: bool = True) -> None:
    with contextlib.suppress(TwilioProtocolError):
        (parse_inbound if inbound else parse_outbound)(text)


@budget(150)
@given(st.text() | st.binary())
def test_fuzz_any_text(text: str | bytes) -> None:
    _parses_or_protocol_error(text)
    _parses_or_protocol_error(text, inbound=False)


@budget(150)
@given(_mutated(INBOUND))
def test_fuzz_mutated_inbound(text: str) -> None:
    _parses_or_protocol_error(text)


@budget(150)
@given(_mutated(OUTBOUND))
def test_fuzz_mutated_outbound(text: str) -> None:
    _parses_or_protocol_error(text, inbound=False)


# --- TwiML -------------------------------------------------------------------------------


def test_twiml_connect_stream() -> None:
    xml = twiml_connect_stream("wss://voice.example.com/ws/twilio", '+1 (555) <0100> & "x"')
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    (connect,) = list(root)
    assert connect.tag == "Connect"
    (stream,) = list(connect)
    assert stream.tag == "Stream"
    assert stream.attrib == {"url": "wss://voice.example.com/ws/twilio"}
    (param,) = list(stream)
    assert param.tag == "Parameter"
    assert param.attrib == {"name": "caller", "value": '+1 (555) <0100> & "x"'}


def test_twiml_without_caller() -> None:
    root = ET.fromstring(twiml_connect_stream("wss://h/ws/twilio", None))
    stream = root.find("Connect/Stream")
    assert stream is not None and list(stream) == []


def test_twiml_connect_action() -> None:
    xml = twiml_connect_stream("wss://h/ws/twilio", "+1555", action="https://h/twilio/after-stream")
    connect = ET.fromstring(xml).find("Connect")
    assert connect is not None
    assert connect.attrib == {"action": "https://h/twilio/after-stream"}
