"""The order a browser call's frames must come in (docs/protocol.md): ``start`` first
and once, then audio and the other messages; each frame checked as it arrives."""

from __future__ import annotations

from gateway.transports.browser_protocol import (
    CLOSE_INVALID_DATA,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_POLICY_VIOLATION,
    ERR_ALREADY_STARTED,
    ERR_BAD_AUDIO,
    ERR_NOT_STARTED,
    ERR_TOO_LARGE,
    MAX_MESSAGE_BYTES,
    BrowserProtocolError,
    ClientMessage,
    PingMessage,
    StartMessage,
    parse_client,
)


class ClientValidator:
    """Checks one connection's frames in order: ``start`` first and once, then the rest.

    The server feeds every frame through ``text`` or ``audio``; a ``BrowserProtocolError``
    tells it what to send back and whether to close (``close_code``).
    """

    def __init__(self) -> None:
        self.start: StartMessage | None = None

    def text(self, data: str | bytes) -> ClientMessage:
        message = parse_client(data)
        if isinstance(message, StartMessage):
            if self.start is not None:
                raise BrowserProtocolError(
                    ERR_ALREADY_STARTED, "start sent twice", CLOSE_POLICY_VIOLATION
                )
            self.start = message
        elif self.start is None and not isinstance(message, PingMessage):
            raise BrowserProtocolError(
                ERR_NOT_STARTED, f"{message.type} before start", CLOSE_POLICY_VIOLATION
            )
        return message

    def audio(self, data: bytes) -> bytes:
        if len(data) > MAX_MESSAGE_BYTES:
            raise BrowserProtocolError(
                ERR_TOO_LARGE,
                f"binary message too large: {len(data)} bytes (limit {MAX_MESSAGE_BYTES})",
                CLOSE_MESSAGE_TOO_BIG,
            )
        if self.start is None:
            raise BrowserProtocolError(
                ERR_NOT_STARTED, "audio before start", CLOSE_POLICY_VIOLATION
            )
        if len(data) % 2:
            raise BrowserProtocolError(
                ERR_BAD_AUDIO,
                f"audio frame of {len(data)} bytes is not whole PCM16 samples",
                CLOSE_INVALID_DATA,
            )
        return data
