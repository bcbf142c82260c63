"""Who may do what at the edges.

* Admin API, ``/metrics`` and the dashboard's data: ``Authorization: Bearer
  $VOXGATE_ADMIN_TOKEN``, never in the URL (where access logs and proxies keep it).
  ``/ws/state`` takes that header too, and from browsers, which cannot set headers on a
  WebSocket, a single-use ticket (``POST /api/ws-ticket``, then ``?ticket=``) or the
  subprotocols ``voxgate.v1, bearer.<token>``.
* Browser and widget calls: a signed, expiring widget token (``?token=`` on
  ``/ws/browser``) minted by ``POST /api/tokens`` (admin only) or, for the gateway's own
  demo page, by the server as it renders the page. Optional allowed origins.
* Twilio: the ``X-Twilio-Signature`` of webhooks and of the media-stream upgrade, checked
  with the ``twilio`` library's validator and ``VOXGATE_TWILIO_AUTH_TOKEN``.

Production mode (``VOXGATE_MODE=production``) refuses to start without the three secrets.
Development mode runs without them and says so loudly; whatever secret *is* set is
enforced in either mode.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from starlette.requests import HTTPConnection
from twilio.request_validator import RequestValidator

from gateway.config import Settings
from gateway.errors import GatewayError

log = logging.getLogger(__name__)

WIDGET_AUDIENCE = "voxgate:call"
CLOSE_UNAUTHORIZED = 4401  # WebSocket close codes 4000-4999 are the application's own
CLOSE_FORBIDDEN = 4403
MIN_SECRET_CHARS = 32
# WebSocket subprotocols (RFC 6455 section 1.9): a client offers ``voxgate.v1`` and
# ``bearer.<admin token>``; the server selects ``voxgate.v1`` (never echoing the token),
# since a browser fails a handshake that selects none of what it offered
SUBPROTOCOL = "voxgate.v1"
BEARER_PREFIX = "bearer."


class AuthError(GatewayError):
    """A request without the credentials it needs; ``status`` is the HTTP status to send."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


class InsecureConfiguration(GatewayError):
    """Production settings without the secrets production needs."""


@dataclass(frozen=True, slots=True)
class WidgetGrant:
    caller: str | None
    origin: str | None
    expires_at: float


class Tickets:
    """Single-use tickets that open ``/ws/state`` for ``ttl_s`` seconds, so a browser
    never puts the admin token in a WebSocket URL. Only the newest ``max_open`` unused
    tickets are kept."""

    def __init__(
        self, ttl_s: float, *, clock: Callable[[], float] = time.monotonic, max_open: int = 1000
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self.max_open = max_open
        self._open: OrderedDict[str, float] = OrderedDict()  # ticket -> expiry, oldest first

    def __len__(self) -> int:
        return len(self._open)

    def issue(self) -> str:
        now = self.clock()
        while self._open and next(iter(self._open.values())) <= now:
            self._open.popitem(last=False)
        ticket = secrets.token_urlsafe(32)
        self._open[ticket] = now + self.ttl_s
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)
        return ticket

    def redeem(self, ticket: str) -> None:
        expires = self._open.pop(ticket, None)
        if expires is None or expires <= self.clock():
            raise AuthError("unknown, used or expired ticket (POST /api/ws-ticket for a new one)")


def ws_subprotocol(conn: HTTPConnection) -> str | None:
    """The subprotocol to select on accepting a WebSocket: ``voxgate.v1`` if offered."""
    return SUBPROTOCOL if SUBPROTOCOL in conn.scope.get("subprotocols", ()) else None


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return text or None


class Auth:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.admin_token = _secret(settings.admin_token)
        self.twilio_token = _secret(settings.twilio_auth_token)
        configured = _secret(settings.token_secret)
        # without a configured key, widget tokens are still real, signed with a key that
        # lives as long as the process (development only: validate() refuses otherwise)
        self._key = configured or secrets.token_urlsafe(32)
        # HS256 wants a 256-bit key whatever length the configured secret has
        self._key = hashlib.sha256(self._key.encode()).hexdigest()
        self.origins = {o.rstrip("/") for o in settings.allowed_origins}
        self.tickets = Tickets(settings.ws_ticket_ttl_s)

    def validate(self) -> list[str]:
        """Raise in production if a secret is missing; return development-mode warnings."""
        missing = [
            name
            for name, value in (
                ("VOXGATE_ADMIN_TOKEN", self.admin_token),
                ("VOXGATE_TWILIO_AUTH_TOKEN", self.twilio_token),
                ("VOXGATE_TOKEN_SECRET", _secret(self.settings.token_secret)),
            )
            if value is None
        ]
        key = _secret(self.settings.token_secret)
        if self.settings.mode == "production":
            if key is not None and len(key) < MIN_SECRET_CHARS:
                raise InsecureConfiguration(
                    f"VOXGATE_TOKEN_SECRET must be at least {MIN_SECRET_CHARS} characters"
                )
            if missing:
                raise InsecureConfiguration(
                    "production mode needs " + ", ".join(missing) + "; refusing to start"
                )
            return self._production_warnings()
        warnings = [
            f"DEVELOPMENT MODE: {name} is not set"
            + {
                "VOXGATE_ADMIN_TOKEN": ": the admin API, /ws/state and the dashboard are open",
                "VOXGATE_TWILIO_AUTH_TOKEN": ": Twilio requests are not verified",
                "VOXGATE_TOKEN_SECRET": ": browser calls need no token",
            }[name]
            for name in missing
        ]
        if not self.settings.limits_on:
            warnings.append("DEVELOPMENT MODE: no rate or call limits "
                            "(VOXGATE_LIMITS__ENABLED=true turns them on)")
        return warnings

    def _production_warnings(self) -> list[str]:
        warnings = []
        if self.settings.demo_page_on:
            warnings.append("the demo page is on (VOXGATE_DEMO_PAGE): GET / hands a widget "
                            "token to anyone who loads it")
        if not self.settings.limits_on:
            warnings.append("rate and call limits are off (VOXGATE_LIMITS__ENABLED=false)")
        return warnings

    # --- admin ------------------------------------------------------------------------

    def check_admin(self, conn: HTTPConnection) -> None:
        if self.admin_token is None:
            return  # development mode, announced at start-up
        websocket = conn.scope["type"] == "websocket"
        how = (
            "Authorization: Bearer <token>, a ticket from POST /api/ws-ticket (?ticket=), "
            f"or the subprotocols {SUBPROTOCOL}, {BEARER_PREFIX}<token>"
            if websocket
            else "Authorization: Bearer <token>"
        )
        if "token" in conn.query_params:
            raise AuthError(f"the admin token is not accepted in the URL (logs keep URLs): {how}")
        scheme, _, given = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            given = ""
        if websocket and not given:
            if "ticket" in conn.query_params:
                self.tickets.redeem(conn.query_params["ticket"])
                return
            given = _subprotocol_bearer(conn)
        if not given:
            raise AuthError(f"admin token required: {how}")
        if not hmac.compare_digest(given.encode(), self.admin_token.encode()):
            raise AuthError("invalid admin token")

    def issue_ticket(self) -> tuple[str, float]:
        """A ticket for ``/ws/state`` and how many seconds it stays valid."""
        return self.tickets.issue(), self.tickets.ttl_s

    # --- widget tokens ----------------------------------------------------------------

    def mint_widget_token(
        self, caller: str | None = None, origin: str | None = None, ttl_s: float | None = None
    ) -> tuple[str, float]:
        ttl = self.settings.token_ttl_s if ttl_s is None else ttl_s
        expires = time.time() + ttl
        claims: dict[str, Any] = {
            "aud": WIDGET_AUDIENCE,
            "exp": int(expires),
            "iat": int(time.time()),
            # unique (RFC 7519 section 4.1.7): two page views in the same second would
            # otherwise get the same token, and share its limits
            "jti": secrets.token_urlsafe(12),
        }
        if caller:
            claims["sub"] = caller
        if origin:
            claims["origin"] = origin.rstrip("/")
        return jwt.encode(claims, self._key, algorithm="HS256"), expires

    def check_widget(self, conn: HTTPConnection) -> WidgetGrant | None:
        return self.check_widget_token(conn.query_params.get("token", ""),
                                       conn.headers.get("origin"))

    def check_widget_token(self, token: str, origin: str | None) -> WidgetGrant | None:
        """A widget token from a page at ``origin``: its grant, or None in development
        mode without a signing key (no token needed); AuthError otherwise."""
        if not token and _secret(self.settings.token_secret) is None:
            self._check_origin(origin)
            return None  # development mode without a signing key, announced at start-up
        if not token:
            raise AuthError("widget token required (?token=...; POST /api/tokens mints one)")
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"], audience=WIDGET_AUDIENCE)
        except jwt.ExpiredSignatureError:
            raise AuthError("widget token expired") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid widget token: {exc}") from None
        bound = claims.get("origin")
        if bound and origin and origin.rstrip("/") != bound:
            raise AuthError(f"widget token is for {bound}, not {origin}", status=403)
        self._check_origin(origin)
        return WidgetGrant(claims.get("sub"), bound, float(claims["exp"]))

    def _check_origin(self, origin: str | None) -> None:
        if self.origins and origin and origin.rstrip("/") not in self.origins:
            raise AuthError(f"origin {origin} is not allowed", status=403)

    # --- Twilio -----------------------------------------------------------------------

    def check_twilio(self, url: str, params: dict[str, Any], signature: str | None) -> None:
        if self.twilio_token is None:
            return  # development mode, announced at start-up
        if not signature:
            raise AuthError("missing X-Twilio-Signature", status=403)
        if not RequestValidator(self.twilio_token).validate(url, params, signature):
            raise AuthError("invalid X-Twilio-Signature", status=403)


def _subprotocol_bearer(conn: HTTPConnection) -> str:
    offered: list[str] = list(conn.scope.get("subprotocols", ()))
    bearers = [p.removeprefix(BEARER_PREFIX) for p in offered if p.startswith(BEARER_PREFIX)]
    if not bearers:
        return ""
    if SUBPROTOCOL not in offered:
        raise AuthError(f"offer {SUBPROTOCOL} beside {BEARER_PREFIX}<token>: it is the "
                        "subprotocol the server selects")
    return bearers[0]
