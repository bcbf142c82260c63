"""How the call client reaches a gateway: its WebSocket URLs, tokens, Twilio's signature."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from gateway.evaluation.call_result import CallError

CLOSE_WAIT_S = 2.0
CONNECT_TIMEOUT_S = 5.0
MAX_WIRE_BYTES = 4 * 1024 * 1024


def endpoint(url: str, path: str) -> str:
    """``url`` may be the gateway's base (http, https, ws, wss) or a full ``/ws/...`` URL."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise CallError(f"not a gateway URL: {url!r} (expected http(s):// or ws(s)://)")
    base = parts.path.split("/ws/")[0].rstrip("/")
    return urlunsplit((scheme, parts.netloc, base + path, parts.query, ""))


def with_token(url: str, token: str | None) -> str:
    if not token:
        return url
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"token": token})) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def twilio_signature(url: str, auth_token: str) -> str:
    """The ``X-Twilio-Signature`` Twilio sends when it opens a media stream at ``url``
    (no form parameters), so a production gateway lets this client in."""
    from twilio.request_validator import RequestValidator

    return str(RequestValidator(auth_token).compute_signature(url, {}))


async def open_ws(url: str, headers: dict[str, str] | None = None) -> ClientConnection:
    try:
        return await connect(
            url,
            additional_headers=headers,
            open_timeout=CONNECT_TIMEOUT_S,
            close_timeout=CLOSE_WAIT_S,
            max_size=MAX_WIRE_BYTES,
            compression=None,
        )
    except InvalidStatus as exc:
        raise CallError(f"{url} refused the WebSocket: HTTP {exc.response.status_code}") from None
    except TimeoutError:
        raise CallError(f"timed out connecting to {url}") from None
    except (OSError, WebSocketException) as exc:
        raise CallError(f"cannot connect to {url}: {exc}") from None
