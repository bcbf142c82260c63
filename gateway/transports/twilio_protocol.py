"""Twilio Media Streams: the bidirectional WebSocket messages, parsed and serialized.

Every field follows "Media Streams - WebSocket Messages",
https://www.twilio.com/docs/voice/media-streams/websocket-messages (cited below as [WSM]
with the section name). Twilio sends ``connected``, ``start``, ``media``, ``dtmf``, ``mark``
and ``stop``; over a ``<Connect><Stream>`` (bidirectional) stream we may send back ``media``,
``mark`` and ``clear``.

Marks and clear ([WSM] "Mark message", "Send a clear message"): Twilio echoes a mark once
the audio queued before it has played; on ``clear`` it "empties the audio buffer and sends
back ``mark`` messages matching any remaining ``mark`` messages from your server". A mark
that comes back after a clear therefore means "dropped", not "played".

Anything malformed raises ``TwilioProtocolError`` with a message that names the field.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from twilio.twiml.voice_response import VoiceResponse

from gateway.errors import GatewayError

# 20 ms of 8 kHz mu-law is 160 bytes; 16 KiB is two seconds, far beyond what Twilio sends.
MAX_MEDIA_PAYLOAD_BYTES = 16 * 1024
# [WSM] "Send a media message": "The audio can be of any size." We still bound what a fake
# Twilio (our client) accepts from the server: 32 s of audio in one message.
MAX_OUTBOUND_PAYLOAD_BYTES = 256 * 1024
MAX_MESSAGE_BYTES = 64 * 1024
MAX_OUTBOUND_MESSAGE_BYTES = 512 * 1024

ENCODING = "audio/x-mulaw"
SAMPLE_RATE = 8_000
CHANNELS = 1
MEDIA_TRACKS = ("inbound", "outbound")
DTMF_DIGITS = "0123456789*#ABCD"

_COUNTER = re.compile(r"[0-9]{1,18}")


class TwilioProtocolError(GatewayError):
    """A Media Streams message that does not follow [WSM]."""


# --- field access ----------------------------------------------------------------------


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _quote(text: str) -> str:
    return json.dumps(text if len(text) <= 40 else text[:40] + "...")


def _wrong_type(path: str, expected: str, value: object) -> TwilioProtocolError:
    return TwilioProtocolError(
        f'wrong type for "{path}": expected {expected}, got {_json_type(value)}'
    )


def _get(obj: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise TwilioProtocolError(f'missing field "{path}"')
    return obj[key]


def _str(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = _get(obj, key, path)
    if not isinstance(value, str):
        raise _wrong_type(path, "a string", value)
    return value


def _obj(obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = _get(obj, key, path)
    if not isinstance(value, dict):
        raise _wrong_type(path, "an object", value)
    return value


def _int(obj: Mapping[str, Any], key: str, path: str) -> int:
    value = _get(obj, key, path)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(path, "an integer", value)
    return value


def _counter(obj: Mapping[str, Any], key: str, path: str) -> int:
    """sequenceNumber, chunk and timestamp: Twilio sends them as decimal strings."""
    value = _get(obj, key, path)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _COUNTER.fullmatch(value):
        return int(value)
    raise _wrong_type(path, "a decimal string", value)


def _payload(obj: Mapping[str, Any], path: str, limit: int) -> bytes:
    text = _str(obj, "payload", path)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise TwilioProtocolError(f"bad base64 in {path}") from None
    if len(data) > limit:
        raise TwilioProtocolError(f"{path} too large: {len(data)} bytes (limit {limit})")
    return data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _Message:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


# --- Twilio -> us ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectedMessage(_Message):
    """[WSM] "Connected message": the first message on the socket."""

    protocol: str = "Call"
    version: str = "1.0.0"
    event: ClassVar[str] = "connected"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> ConnectedMessage:
        return cls(
            protocol=_str(obj, "protocol", "protocol"), version=_str(obj, "version", "version")
        )

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event, "protocol": self.protocol, "version": self.version}


@dataclass(frozen=True, slots=True)
class StartMessage(_Message):
    """[WSM] "Start message": stream metadata, sent once right after ``connected``."""

    sequence_number: int
    stream_sid: str
    account_sid: str
    call_sid: str
    tracks: tuple[str, ...] = ("inbound",)
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    event: ClassVar[str] = "start"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> StartMessage:
        seq = _counter(obj, "sequenceNumber", "sequenceNumber")
        start = _obj(obj, "start", "start")
        stream_sid = _str(start, "streamSid", "start.streamSid")
        outer_sid = _str(obj, "streamSid", "streamSid")
        if outer_sid != stream_sid:
            raise TwilioProtocolError(
                f"streamSid {_quote(outer_sid)} does not match start.streamSid {_quote(stream_sid)}"
            )
        tracks = _get(start, "tracks", "start.tracks")
        if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
            raise _wrong_type("start.tracks", "an array of strings", tracks)
        fmt = _obj(start, "mediaFormat", "start.mediaFormat")
        encoding = _str(fmt, "encoding", "start.mediaFormat.encoding")
        rate = _int(fmt, "sampleRate", "start.mediaFormat.sampleRate")
        channels = _int(fmt, "channels", "start.mediaFormat.channels")
        # [WSM] "Start message": encoding "is always audio/x-mulaw", sampleRate "always
        # 8000", channels "always 1". Anything else is not a stream we can decode.
        if (encoding, rate, channels) != (ENCODING, SAMPLE_RATE, CHANNELS):
            raise TwilioProtocolError(
                f"unsupported media format: {encoding} at {rate} Hz, {channels} channel(s) "
                f"(expected {ENCODING} at {SAMPLE_RATE} Hz, {CHANNELS} channel)"
            )
        params: dict[str, str] = {}
        if "customParameters" in start:
            raw = _obj(start, "customParameters", "start.customParameters")
            for key, value in raw.items():
                if not isinstance(value, str):
                    raise _wrong_type(f"start.customParameters.{key}", "a string", value)
                params[key] = value
        return cls(
            sequence_number=seq,
            stream_sid=stream_sid,
            account_sid=_str(start, "accountSid", "start.accountSid"),
            call_sid=_str(start, "callSid", "start.callSid"),
            tracks=tuple(tracks),
            custom_parameters=MappingProxyType(params),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "sequenceNumber": str(self.sequence_number),
            "start": {
                "accountSid": self.account_sid,
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": list(self.tracks),
                "mediaFormat": {
                    "encoding": ENCODING,
                    "sampleRate": SAMPLE_RATE,
                    "channels": CHANNELS,
                },
                "customParameters": dict(self.custom_parameters),
            },
            "streamSid": self.stream_sid,
        }


@dataclass(frozen=True, slots=True)
class MediaMessage(_Message):
    """[WSM] "Media message": one chunk of base64 mu-law (20 ms, 160 bytes, from Twilio)."""

    sequence_number: int
    stream_sid: str
    chunk: int
    timestamp: int  # presentation time in ms from the start of the stream
    payload: bytes
    track: str = "inbound"
    event: ClassVar[str] = "media"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> MediaMessage:
        seq = _counter(obj, "sequenceNumber", "sequenceNumber")
        media = _obj(obj, "media", "media")
        track = _str(media, "track", "media.track")
        if track not in MEDIA_TRACKS:
            raise TwilioProtocolError(
                f'bad value for "media.track": {_quote(track)} (expected inbound or outbound)'
            )
        return cls(
            sequence_number=seq,
            stream_sid=_str(obj, "streamSid", "streamSid"),
            chunk=_counter(media, "chunk", "media.chunk"),
            timestamp=_counter(media, "timestamp", "media.timestamp"),
            payload=_payload(media, "media.payload", MAX_MEDIA_PAYLOAD_BYTES),
            track=track,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "sequenceNumber": str(self.sequence_number),
            "media": {
                "track": self.track,
                "chunk": str(self.chunk),
                "timestamp": str(self.timestamp),
                "payload": _b64(self.payload),
            },
            "streamSid": self.stream_sid,
        }


@dataclass(frozen=True, slots=True)
class DtmfMessage(_Message):
    """[WSM] "DTMF message": a key press on the inbound track (bidirectional streams only)."""

    sequence_number: int
    stream_sid: str
    digit: str
    track: str = "inbound_track"
    event: ClassVar[str] = "dtmf"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> DtmfMessage:
        seq = _counter(obj, "sequenceNumber", "sequenceNumber")
        dtmf = _obj(obj, "dtmf", "dtmf")
        digit = _str(dtmf, "digit", "dtmf.digit")
        if len(digit) != 1 or digit not in DTMF_DIGITS:
            raise TwilioProtocolError(
                f'bad value for "dtmf.digit": {_quote(digit)} (expected one of 0-9 * # A-D)'
            )
        return cls(
            sequence_number=seq,
            stream_sid=_str(obj, "streamSid", "streamSid"),
            digit=digit,
            track=_str(dtmf, "track", "dtmf.track"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "streamSid": self.stream_sid,
            "sequenceNumber": str(self.sequence_number),
            "dtmf": {"track": self.track, "digit": self.digit},
        }


@dataclass(frozen=True, slots=True)
class MarkMessage(_Message):
    """[WSM] "Mark message": our mark echoed back, once its audio played or was cleared."""

    sequence_number: int
    stream_sid: str
    name: str
    event: ClassVar[str] = "mark"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> MarkMessage:
        seq = _counter(obj, "sequenceNumber", "sequenceNumber")
        mark = _obj(obj, "mark", "mark")
        return cls(
            sequence_number=seq,
            stream_sid=_str(obj, "streamSid", "streamSid"),
            name=_str(mark, "name", "mark.name"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "sequenceNumber": str(self.sequence_number),
            "streamSid": self.stream_sid,
            "mark": {"name": self.name},
        }


@dataclass(frozen=True, slots=True)
class StopMessage(_Message):
    """[WSM] "Stop message": the call ended (the only way a bidirectional stream stops)."""

    sequence_number: int
    stream_sid: str
    account_sid: str
    call_sid: str
    event: ClassVar[str] = "stop"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> StopMessage:
        seq = _counter(obj, "sequenceNumber", "sequenceNumber")
        stop = _obj(obj, "stop", "stop")
        return cls(
            sequence_number=seq,
            stream_sid=_str(obj, "streamSid", "streamSid"),
            account_sid=_str(stop, "accountSid", "stop.accountSid"),
            call_sid=_str(stop, "callSid", "stop.callSid"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "sequenceNumber": str(self.sequence_number),
            "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            "streamSid": self.stream_sid,
        }


# --- us -> Twilio ([WSM] "Send WebSocket messages to Twilio") ---------------------------


@dataclass(frozen=True, slots=True)
class OutboundMedia(_Message):
    """[WSM] "Send a media message": raw mu-law/8000, no file header, any size."""

    stream_sid: str
    payload: bytes
    event: ClassVar[str] = "media"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> OutboundMedia:
        media = _obj(obj, "media", "media")
        return cls(
            stream_sid=_str(obj, "streamSid", "streamSid"),
            payload=_payload(media, "media.payload", MAX_OUTBOUND_PAYLOAD_BYTES),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "streamSid": self.stream_sid,
            "media": {"payload": _b64(self.payload)},
        }


@dataclass(frozen=True, slots=True)
class OutboundMark(_Message):
    """[WSM] "Send a mark message": echoed back when the audio sent before it has played."""

    stream_sid: str
    name: str
    event: ClassVar[str] = "mark"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> OutboundMark:
        mark = _obj(obj, "mark", "mark")
        return cls(
            stream_sid=_str(obj, "streamSid", "streamSid"), name=_str(mark, "name", "mark.name")
        )

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event, "streamSid": self.stream_sid, "mark": {"name": self.name}}


@dataclass(frozen=True, slots=True)
class ClearMessage(_Message):
    """[WSM] "Send a clear message": drop buffered audio; pending marks come back at once."""

    stream_sid: str
    event: ClassVar[str] = "clear"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> ClearMessage:
        return cls(stream_sid=_str(obj, "streamSid", "streamSid"))

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event, "streamSid": self.stream_sid}


InboundMessage = (
    ConnectedMessage | StartMessage | MediaMessage | DtmfMessage | MarkMessage | StopMessage
)
OutboundMessage = OutboundMedia | OutboundMark | ClearMessage

_INBOUND: dict[str, type[InboundMessage]] = {
    c.event: c
    for c in (ConnectedMessage, StartMessage, MediaMessage, DtmfMessage, MarkMessage, StopMessage)
}
_OUTBOUND: dict[str, type[OutboundMessage]] = {
    c.event: c for c in (OutboundMedia, OutboundMark, ClearMessage)
}


def _load(text: str | bytes, limit: int) -> tuple[str, dict[str, Any]]:
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise TwilioProtocolError("message is not valid UTF-8") from None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise TwilioProtocolError(f"message too large: {size} bytes (limit {limit})")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TwilioProtocolError(f"malformed JSON: {exc}") from None
    except (ValueError, RecursionError):  # e.g. a number longer than int() accepts
        raise TwilioProtocolError("malformed JSON: cannot be decoded") from None
    if not isinstance(obj, dict):
        raise TwilioProtocolError(f"message is not a JSON object (got {_json_type(obj)})")
    return _str(obj, "event", "event"), obj


def parse_inbound(text: str | bytes) -> InboundMessage:
    """Parse one message from Twilio (what the gateway's ``/ws/twilio`` endpoint receives)."""
    event, obj = _load(text, MAX_MESSAGE_BYTES)
    cls = _INBOUND.get(event)
    if cls is None:
        raise TwilioProtocolError(f"unknown event {_quote(event)}")
    return cls.parse(obj)


def parse_outbound(text: str | bytes) -> OutboundMessage:
    """Parse one message sent to Twilio (what a fake Twilio, i.e. our client, receives)."""
    event, obj = _load(text, MAX_OUTBOUND_MESSAGE_BYTES)
    cls = _OUTBOUND.get(event)
    if cls is None:
        raise TwilioProtocolError(f"unknown event {_quote(event)}")
    return cls.parse(obj)


def twiml_connect_stream(stream_url: str, caller: str | None, *, action: str | None = None) -> str:
    """TwiML answering a call with a bidirectional stream to ``stream_url``.

    ``<Connect><Stream>`` makes the stream bidirectional ([WSM] "Send WebSocket messages to
    Twilio"); the caller travels as the custom parameter ``caller``, which Twilio hands back
    in ``start.customParameters`` (TwiML <Stream> doc, "Custom parameters"). ``action`` is
    the <Connect> webhook Twilio asks for the next TwiML once the stream ends.
    """
    response = VoiceResponse()
    connect = response.connect(action=action) if action is not None else response.connect()
    stream = connect.stream(url=stream_url)
    if caller is not None:
        stream.parameter(name="caller", value=caller)
    return str(response)
