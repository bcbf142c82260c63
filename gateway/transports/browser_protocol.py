"""The browser WebSocket protocol (``WS /ws/browser``), as specified in docs/protocol.md.

Binary frames carry PCM16 little-endian mono audio: client -> server at the rate declared in
``start``, server -> client always at 16 kHz. Text frames are JSON objects with a ``type``.
This module parses and serializes the text messages and holds the limits, close codes
(RFC 6455 section 7.4.1) and error codes the server applies, so the server, the client and
the docs cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from gateway.errors import GatewayError
from orchestration.log.events import Event

# RFC 6455 section 7.4.1 status codes used by the server.
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED_DATA = 1003  # start declared a sample rate we do not take
CLOSE_INVALID_DATA = 1007  # malformed JSON, audio that is not whole PCM16 samples
CLOSE_POLICY_VIOLATION = 1008  # protocol order: audio or messages before start, start twice
CLOSE_MESSAGE_TOO_BIG = 1009  # a text or binary frame over MAX_MESSAGE_BYTES
CLOSE_INTERNAL_ERROR = 1011  # the server failed; not the client's fault

MAX_MESSAGE_BYTES = 64 * 1024  # per frame, text or binary
CLIENT_SAMPLE_RATES = (8_000, 16_000, 24_000, 48_000)
DEFAULT_SAMPLE_RATE = 16_000
SERVER_SAMPLE_RATE = 16_000
DTMF_DIGITS = "0123456789*#ABCD"

# Error codes carried by {"type": "error"}; docs/protocol.md lists them with their close code.
ERR_MALFORMED_JSON = "malformed_json"
ERR_INVALID_MESSAGE = "invalid_message"
ERR_UNKNOWN_TYPE = "unknown_type"
ERR_TOO_LARGE = "message_too_large"
ERR_NOT_STARTED = "not_started"
ERR_ALREADY_STARTED = "already_started"
ERR_BAD_AUDIO = "bad_audio"
ERR_SAMPLE_RATE = "unsupported_sample_rate"


class BrowserProtocolError(GatewayError):
    """A frame that breaks the browser protocol.

    ``code`` goes into the ``error`` message sent back; ``close_code`` is the WebSocket close
    status the server then uses, or None when the connection stays open (an unknown type or
    a bad field in an otherwise well-formed message is reported, not fatal).
    """

    def __init__(self, code: str, message: str, close_code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code

    def to_message(self) -> ErrorMessage:
        return ErrorMessage(code=self.code, message=self.message)


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
    return "array" if isinstance(value, list) else "object"


def _invalid(message: str) -> BrowserProtocolError:
    return BrowserProtocolError(ERR_INVALID_MESSAGE, message)


def _get(obj: Mapping[str, Any], key: str, expected: str, types: tuple[type, ...]) -> Any:
    if key not in obj:
        raise _invalid(f'missing field "{key}"')
    value = obj[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise _invalid(f'wrong type for "{key}": expected {expected}, got {_json_type(value)}')
    return value


def _str(obj: Mapping[str, Any], key: str, *, nonempty: bool = True) -> str:
    value: str = _get(obj, key, "a string", (str,))
    if nonempty and not value:
        raise _invalid(f'empty "{key}"')
    return value


def _int(obj: Mapping[str, Any], key: str) -> int:
    value: int = _get(obj, key, "an integer", (int,))
    return value


def _object(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value: dict[str, Any] = _get(obj, key, "an object", (dict,))
    return MappingProxyType(value)


class _Message:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


# --- client -> server ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartMessage(_Message):
    """Opens the session; must be the first frame on the socket."""

    sample_rate: int = DEFAULT_SAMPLE_RATE
    caller: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    type: ClassVar[str] = "start"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> StartMessage:
        rate = _int(obj, "sample_rate") if "sample_rate" in obj else DEFAULT_SAMPLE_RATE
        if rate not in CLIENT_SAMPLE_RATES:
            supported = ", ".join(str(r) for r in CLIENT_SAMPLE_RATES)
            raise BrowserProtocolError(
                ERR_SAMPLE_RATE,
                f"unsupported sample rate {rate} Hz (supported: {supported})",
                CLOSE_UNSUPPORTED_DATA,
            )
        caller = None
        if obj.get("caller") is not None:
            caller = _str(obj, "caller")
        metadata = _object(obj, "metadata") if "metadata" in obj else MappingProxyType({})
        return cls(sample_rate=rate, caller=caller, metadata=metadata)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "sample_rate": self.sample_rate}
        if self.caller is not None:
            out["caller"] = self.caller
        out["metadata"] = dict(self.metadata)
        return out


@dataclass(frozen=True, slots=True)
class MarkMessage(_Message):
    """Both ways: the server marks the end of a reply chunk; the client echoes the name
    once it has *played* all audio up to that mark."""

    name: str
    type: ClassVar[str] = "mark"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> MarkMessage:
        return cls(name=_str(obj, "name"))

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name}


@dataclass(frozen=True, slots=True)
class DtmfMessage(_Message):
    digit: str
    type: ClassVar[str] = "dtmf"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> DtmfMessage:
        digit = _str(obj, "digit")
        if len(digit) != 1 or digit not in DTMF_DIGITS:
            raise _invalid(f'bad value for "digit": {json.dumps(digit[:8])} (expected 0-9 * # A-D)')
        return cls(digit=digit)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "digit": self.digit}


@dataclass(frozen=True, slots=True)
class TextMessage(_Message):
    """A typed user turn (chat widgets); treated like a final transcript."""

    text: str
    type: ClassVar[str] = "text"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> TextMessage:
        return cls(text=_str(obj, "text"))

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "text": self.text}


@dataclass(frozen=True, slots=True)
class StopMessage(_Message):
    """The caller hangs up; the server answers with ``end`` and closes with 1000."""

    type: ClassVar[str] = "stop"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> StopMessage:
        return cls()

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type}


@dataclass(frozen=True, slots=True)
class PingMessage(_Message):
    type: ClassVar[str] = "ping"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> PingMessage:
        return cls()

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type}


# --- server -> client ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionMessage(_Message):
    """The reply to ``start``: the session id and the rate of the audio we send."""

    session_id: str
    sample_rate: int = SERVER_SAMPLE_RATE
    type: ClassVar[str] = "session"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> SessionMessage:
        return cls(session_id=_str(obj, "session_id"), sample_rate=_int(obj, "sample_rate"))

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "session_id": self.session_id, "sample_rate": self.sample_rate}


@dataclass(frozen=True, slots=True)
class ClearMessage(_Message):
    """Barge-in: stop playback at once and drop buffered audio. Unlike Twilio, the
    browser does not echo the marks it drops: a mark only ever means "played"."""

    type: ClassVar[str] = "clear"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> ClearMessage:
        return cls()

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type}


@dataclass(frozen=True, slots=True)
class EventMessage(_Message):
    """One bus event of this session (orchestration.log.events.Event)."""

    event: Event
    type: ClassVar[str] = "event"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> EventMessage:
        raw = _object(obj, "event")
        ts: int | float = _get(raw, "ts", "a number", (int, float))
        return cls(
            Event(
                seq=_int(raw, "seq"),
                ts=float(ts),
                session_id=_str(raw, "session_id", nonempty=False),
                type=_str(raw, "type"),
                data=_object(raw, "data"),
            )
        )

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "event": self.event.to_dict()}


@dataclass(frozen=True, slots=True)
class ErrorMessage(_Message):
    code: str
    message: str
    type: ClassVar[str] = "error"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> ErrorMessage:
        return cls(code=_str(obj, "code"), message=_str(obj, "message", nonempty=False))

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class EndMessage(_Message):
    """The session is over (agent hung up, caller stopped, error); a 1000 close follows."""

    reason: str
    type: ClassVar[str] = "end"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> EndMessage:
        return cls(reason=_str(obj, "reason", nonempty=False))

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class PongMessage(_Message):
    type: ClassVar[str] = "pong"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> PongMessage:
        return cls()

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type}


ClientMessage = StartMessage | MarkMessage | DtmfMessage | TextMessage | StopMessage | PingMessage
ServerMessage = (SessionMessage | MarkMessage | ClearMessage | EventMessage | ErrorMessage
                 | EndMessage | PongMessage)

_CLIENT: dict[str, type[ClientMessage]] = {
    c.type: c
    for c in (StartMessage, MarkMessage, DtmfMessage, TextMessage, StopMessage, PingMessage)
}
_SERVER: dict[str, type[ServerMessage]] = {
    c.type: c for c in (SessionMessage, MarkMessage, ClearMessage, EventMessage, ErrorMessage,
                        EndMessage, PongMessage)
}


def _load(text: str | bytes) -> tuple[str, dict[str, Any]]:
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_MESSAGE_BYTES:
        raise BrowserProtocolError(
            ERR_TOO_LARGE,
            f"text message too large: {size} bytes (limit {MAX_MESSAGE_BYTES})",
            CLOSE_MESSAGE_TOO_BIG,
        )
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BrowserProtocolError(
            ERR_MALFORMED_JSON, f"malformed JSON: {exc}", CLOSE_INVALID_DATA
        ) from None
    except (ValueError, RecursionError):  # bad UTF-8, a number too long for int()...
        raise BrowserProtocolError(
            ERR_MALFORMED_JSON, "malformed JSON: cannot be decoded", CLOSE_INVALID_DATA
        ) from None
    if not isinstance(obj, dict):
        raise _invalid(f"message is not a JSON object (got {_json_type(obj)})")
    return _str(obj, "type"), obj


def _unknown(kind: str) -> BrowserProtocolError:
    return BrowserProtocolError(ERR_UNKNOWN_TYPE, f"unknown message type {json.dumps(kind[:40])}")


def parse_client(text: str | bytes) -> ClientMessage:
    """Parse one text frame from a browser (order is checked by ``ClientValidator``)."""
    kind, obj = _load(text)
    cls = _CLIENT.get(kind)
    if cls is None:
        raise _unknown(kind)
    return cls.parse(obj)


def parse_server(text: str | bytes) -> ServerMessage:
    """Parse one text frame from the server (used by the client and the tests)."""
    kind, obj = _load(text)
    cls = _SERVER.get(kind)
    if cls is None:
        raise _unknown(kind)
    return cls.parse(obj)
