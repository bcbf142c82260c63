"""Field access for Twilio Media Streams messages (twilio_protocol.py): each accessor
names the field's path in the ``TwilioProtocolError`` it raises."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from gateway.errors import GatewayError

_COUNTER = re.compile(r"[0-9]{1,18}")


class TwilioProtocolError(GatewayError):
    """A Media Streams message that does not follow [WSM]."""


def json_type(value: object) -> str:
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


def quote(text: str) -> str:
    return json.dumps(text if len(text) <= 40 else text[:40] + "...")


def wrong_type(path: str, expected: str, value: object) -> TwilioProtocolError:
    return TwilioProtocolError(
        f'wrong type for "{path}": expected {expected}, got {json_type(value)}'
    )


def get_field(obj: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise TwilioProtocolError(f'missing field "{path}"')
    return obj[key]


def str_field(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = get_field(obj, key, path)
    if not isinstance(value, str):
        raise wrong_type(path, "a string", value)
    return value


def obj_field(obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = get_field(obj, key, path)
    if not isinstance(value, dict):
        raise wrong_type(path, "an object", value)
    return value


def int_field(obj: Mapping[str, Any], key: str, path: str) -> int:
    value = get_field(obj, key, path)
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(path, "an integer", value)
    return value


def counter_field(obj: Mapping[str, Any], key: str, path: str) -> int:
    """sequenceNumber, chunk and timestamp: Twilio sends them as decimal strings."""
    value = get_field(obj, key, path)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _COUNTER.fullmatch(value):
        return int(value)
    raise wrong_type(path, "a decimal string", value)


def payload_field(obj: Mapping[str, Any], path: str, limit: int) -> bytes:
    text = str_field(obj, "payload", path)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise TwilioProtocolError(f"bad base64 in {path}") from None
    if len(data) > limit:
        raise TwilioProtocolError(f"{path} too large: {len(data)} bytes (limit {limit})")
    return data


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Message:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self) -> str:
        return json.dumps(self.to_dict())



def load(text: str | bytes, limit: int) -> tuple[str, dict[str, Any]]:
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise TwilioProtocolError("message is not valid UTF-8") from None
    if len(text) * 4 > limit:  # a character is at most 4 bytes: most messages skip this
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
        raise TwilioProtocolError(f"message is not a JSON object (got {json_type(obj)})")
    return str_field(obj, "event", "event"), obj
