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

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from gateway.transports.twilio_fields import (
    Message,
    b64,
    counter_field,
    get_field,
    int_field,
    load,
    obj_field,
    payload_field,
    quote,
    str_field,
    wrong_type,
)
from gateway.transports.twilio_fields import TwilioProtocolError as TwilioProtocolError

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

# --- Twilio -> us ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectedMessage(Message):
    """[WSM] "Connected message": the first message on the socket."""

    protocol: str = "Call"
    version: str = "1.0.0"
    event: ClassVar[str] = "connected"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> ConnectedMessage:
        return cls(
            protocol=str_field(obj, "protocol", "protocol"),
            version=str_field(obj, "version", "version"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event, "protocol": self.protocol, "version": self.version}


@dataclass(frozen=True, slots=True)
class StartMessage(Message):
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
        seq = counter_field(obj, "sequenceNumber", "sequenceNumber")
        start = obj_field(obj, "start", "start")
        stream_sid = str_field(start, "streamSid", "start.streamSid")
        outer_sid = str_field(obj, "streamSid", "streamSid")
        if outer_sid != stream_sid:
            raise TwilioProtocolError(
                f"streamSid {quote(outer_sid)} does not match start.streamSid {quote(stream_sid)}"
            )
        tracks = get_field(start, "tracks", "start.tracks")
        if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
            raise wrong_type("start.tracks", "an array of strings", tracks)
        fmt = obj_field(start, "mediaFormat", "start.mediaFormat")
        encoding = str_field(fmt, "encoding", "start.mediaFormat.encoding")
        rate = int_field(fmt, "sampleRate", "start.mediaFormat.sampleRate")
        channels = int_field(fmt, "channels", "start.mediaFormat.channels")
        # [WSM] "Start message": encoding "is always audio/x-mulaw", sampleRate "always
        # 8000", channels "always 1". Anything else is not a stream we can decode.
        if (encoding, rate, channels) != (ENCODING, SAMPLE_RATE, CHANNELS):
            raise TwilioProtocolError(
                f"unsupported media format: {encoding} at {rate} Hz, {channels} channel(s) "
                f"(expected {ENCODING} at {SAMPLE_RATE} Hz, {CHANNELS} channel)"
            )
        params: dict[str, str] = {}
        if "customParameters" in start:
            raw = obj_field(start, "customParameters", "start.customParameters")
            for key, value in raw.items():
                if not isinstance(value, str):
                    raise wrong_type(f"start.customParameters.{key}", "a string", value)
                params[key] = value
        return cls(
            sequence_number=seq,
            stream_sid=stream_sid,
            account_sid=str_field(start, "accountSid", "start.accountSid"),
            call_sid=str_field(start, "callSid", "start.callSid"),
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
class MediaMessage(Message):
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
        seq = counter_field(obj, "sequenceNumber", "sequenceNumber")
        media = obj_field(obj, "media", "media")
        track = str_field(media, "track", "media.track")
        if track not in MEDIA_TRACKS:
            raise TwilioProtocolError(
                f'bad value for "media.track": {quote(track)} (expected inbound or outbound)'
            )
        return cls(
            sequence_number=seq,
            stream_sid=str_field(obj, "streamSid", "streamSid"),
            chunk=counter_field(media, "chunk", "media.chunk"),
            timestamp=counter_field(media, "timestamp", "media.timestamp"),
            payload=payload_field(media, "media.payload", MAX_MEDIA_PAYLOAD_BYTES),
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
                "payload": b64(self.payload),
            },
            "streamSid": self.stream_sid,
        }


@dataclass(frozen=True, slots=True)
class DtmfMessage(Message):
    """[WSM] "DTMF message": a key press on the inbound track (bidirectional streams only)."""

    sequence_number: int
    stream_sid: str
    digit: str
    track: str = "inbound_track"
    event: ClassVar[str] = "dtmf"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> DtmfMessage:
        seq = counter_field(obj, "sequenceNumber", "sequenceNumber")
        dtmf = obj_field(obj, "dtmf", "dtmf")
        digit = str_field(dtmf, "digit", "dtmf.digit")
        if len(digit) != 1 or digit not in DTMF_DIGITS:
            raise TwilioProtocolError(
                f'bad value for "dtmf.digit": {quote(digit)} (expected one of 0-9 * # A-D)'
            )
        return cls(
            sequence_number=seq,
            stream_sid=str_field(obj, "streamSid", "streamSid"),
            digit=digit,
            track=str_field(dtmf, "track", "dtmf.track"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "streamSid": self.stream_sid,
            "sequenceNumber": str(self.sequence_number),
            "dtmf": {"track": self.track, "digit": self.digit},
        }


@dataclass(frozen=True, slots=True)
class MarkMessage(Message):
    """[WSM] "Mark message": our mark echoed back, once its audio played or was cleared."""

    sequence_number: int
    stream_sid: str
    name: str
    event: ClassVar[str] = "mark"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> MarkMessage:
        seq = counter_field(obj, "sequenceNumber", "sequenceNumber")
        mark = obj_field(obj, "mark", "mark")
        return cls(
            sequence_number=seq,
            stream_sid=str_field(obj, "streamSid", "streamSid"),
            name=str_field(mark, "name", "mark.name"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "sequenceNumber": str(self.sequence_number),
            "streamSid": self.stream_sid,
            "mark": {"name": self.name},
        }


@dataclass(frozen=True, slots=True)
class StopMessage(Message):
    """[WSM] "Stop message": the call ended (the only way a bidirectional stream stops)."""

    sequence_number: int
    stream_sid: str
    account_sid: str
    call_sid: str
    event: ClassVar[str] = "stop"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> StopMessage:
        seq = counter_field(obj, "sequenceNumber", "sequenceNumber")
        stop = obj_field(obj, "stop", "stop")
        return cls(
            sequence_number=seq,
            stream_sid=str_field(obj, "streamSid", "streamSid"),
            account_sid=str_field(stop, "accountSid", "stop.accountSid"),
            call_sid=str_field(stop, "callSid", "stop.callSid"),
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
class OutboundMedia(Message):
    """[WSM] "Send a media message": raw mu-law/8000, no file header, any size."""

    stream_sid: str
    payload: bytes
    event: ClassVar[str] = "media"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> OutboundMedia:
        media = obj_field(obj, "media", "media")
        return cls(
            stream_sid=str_field(obj, "streamSid", "streamSid"),
            payload=payload_field(media, "media.payload", MAX_OUTBOUND_PAYLOAD_BYTES),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "streamSid": self.stream_sid,
            "media": {"payload": b64(self.payload)},
        }


@dataclass(frozen=True, slots=True)
class OutboundMark(Message):
    """[WSM] "Send a mark message": echoed back when the audio sent before it has played."""

    stream_sid: str
    name: str
    event: ClassVar[str] = "mark"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> OutboundMark:
        mark = obj_field(obj, "mark", "mark")
        return cls(
            stream_sid=str_field(obj, "streamSid", "streamSid"),
            name=str_field(mark, "name", "mark.name"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event, "streamSid": self.stream_sid, "mark": {"name": self.name}}


@dataclass(frozen=True, slots=True)
class ClearMessage(Message):
    """[WSM] "Send a clear message": drop buffered audio; pending marks come back at once."""

    stream_sid: str
    event: ClassVar[str] = "clear"

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> ClearMessage:
        return cls(stream_sid=str_field(obj, "streamSid", "streamSid"))

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


def parse_inbound(text: str | bytes) -> InboundMessage:
    """Parse one message from Twilio (what the gateway's ``/ws/twilio`` endpoint receives)."""
    event, obj = load(text, MAX_MESSAGE_BYTES)
    cls = _INBOUND.get(event)
    if cls is None:
        raise TwilioProtocolError(f"unknown event {quote(event)}")
    return cls.parse(obj)


def parse_outbound(text: str | bytes) -> OutboundMessage:
    """Parse one message sent to Twilio (what a fake Twilio, i.e. our client, receives)."""
    event, obj = load(text, MAX_OUTBOUND_MESSAGE_BYTES)
    cls = _OUTBOUND.get(event)
    if cls is None:
        raise TwilioProtocolError(f"unknown event {quote(event)}")
    return cls.parse(obj)
