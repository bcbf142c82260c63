"""Room tokens for the widget's LiveKit calls (``data-transport="livekit"``, docs/dashboard.md):

    POST /api/livekit/token   {"token": "<widget token>", "caller": "..."}
                              -> {"url", "token", "room", "identity", "expires_at"}

Each request gets a new room, named for the call; the LiveKit server dispatches it to a
``voxgate livekit-worker`` (or, with ``livekit_agent_name``, the room asks for that agent),
and the room token lets its holder join that room only and publish only a microphone.

Guarded as ``/ws/browser`` is: a valid widget token (``POST /api/tokens``, or the one the
demo page carries), from an allowed origin; in development without ``token_secret``, none.
Requests share ``/api/tokens``' budget per client address, counted before the token is
checked, and a widget token's rooms count against its ``calls_per_minute_per_token`` as
its ``/ws/browser`` calls do (live calls are the LiveKit server's and workers' to count). The
widget runs on other sites' pages, so answers carry ``Access-Control-Allow-Origin: *``:
the token, not a cookie, is the credential, and the origin check above still applies.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from gateway.auth import Auth, AuthError
from gateway.config import Settings
from gateway.limits import EdgeLimits, LimitExceeded, check_rate, client_address, token_key

# a room token is used at once, to join; the server refreshes it for a joined participant
ROOM_TOKEN_TTL_S = 600
CORS = {"access-control-allow-origin": "*"}
NOT_CONFIGURED = ("LiveKit calls are not configured on this gateway: set VOXGATE_LIVEKIT_URL, "
                  "VOXGATE_LIVEKIT_API_KEY and VOXGATE_LIVEKIT_API_SECRET (docs/deployment.md)")


class RoomRequest(BaseModel):
    token: str = Field("", max_length=4000)  # the widget token ("" in development)
    caller: str | None = Field(None, max_length=200)


def livekit_tokens_router(settings: Settings, auth: Auth, limits: EdgeLimits) -> APIRouter:
    router = APIRouter(tags=["livekit"])

    @router.options("/api/livekit/token", include_in_schema=False)
    async def preflight() -> Response:
        # a page on another site POSTs JSON: the browser asks first (Fetch, "CORS protocol")
        return Response(status_code=204, headers={
            **CORS, "access-control-allow-methods": "POST",
            "access-control-allow-headers": "content-type", "access-control-max-age": "600"})

    @router.post("/api/livekit/token")
    async def room_token(body: RoomRequest, request: Request, response: Response,
                         ) -> dict[str, Any]:
        """A new room for one widget call, and a token to join it."""
        response.headers.update(CORS)
        if settings.livekit_url is None:
            raise HTTPException(404, NOT_CONFIGURED, headers=CORS)
        try:
            limits.check_credentials(client_address(request))
            grant = auth.check_widget_token(body.token, request.headers.get("origin"))
            if body.token:
                check_rate(limits.calls_by_token, token_key(body.token),
                           "calls with this widget token")
        except LimitExceeded as exc:
            raise HTTPException(429, str(exc),
                                headers={**CORS, "Retry-After": str(exc.retry_after)}) from None
        except AuthError as exc:
            raise HTTPException(exc.status, str(exc), headers=CORS) from None
        caller = (grant.caller if grant is not None else None) or body.caller
        return mint_room_token(settings, caller)

    return router


def mint_room_token(settings: Settings, caller: str | None) -> dict[str, Any]:
    """A fresh room and a token that joins it as the caller, publishing a microphone only."""
    from livekit import api
    from livekit.protocol.agent_dispatch import RoomAgentDispatch
    from livekit.protocol.room import RoomConfiguration

    assert settings.livekit_api_key is not None and settings.livekit_api_secret is not None
    room = f"voxgate-{secrets.token_hex(8)}"
    # the caller's identity is what the worker's call log names as the caller
    identity = _identity(caller) or f"web-{secrets.token_hex(4)}"
    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True,
                             can_publish_data=False, can_publish_sources=["microphone"])
    token = (api.AccessToken(settings.livekit_api_key,
                             settings.livekit_api_secret.get_secret_value())
             .with_identity(identity).with_grants(grants)
             .with_ttl(timedelta(seconds=ROOM_TOKEN_TTL_S)))
    if settings.livekit_agent_name:
        token = token.with_room_config(RoomConfiguration(
            agents=[RoomAgentDispatch(agent_name=settings.livekit_agent_name)]))
    return {"url": settings.livekit_url, "token": token.to_jwt(), "room": room,
            "identity": identity, "expires_at": time.time() + ROOM_TOKEN_TTL_S}


def _identity(caller: str | None) -> str:
    """The caller's name as a participant identity: printable, short."""
    return re.sub(r"[^\w@.+:-]", "-", caller or "")[:100]
