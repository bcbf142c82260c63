"""Credentials the admin hands out (docs/security.md):

    POST /api/tokens      a signed, expiring widget token a page passes to /ws/browser
    POST /api/ws-ticket   a single-use ticket that opens /ws/state for a few seconds, so a
                          browser never puts the admin token in a WebSocket URL

Both need ``Authorization: Bearer $VOXGATE_ADMIN_TOKEN`` (the ``admin`` dependency), and
share one budget of requests per client address, counted before the token is checked so
that guessing it costs the same (HTTP 429 with ``Retry-After`` beyond it).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, params
from pydantic import BaseModel, Field

from gateway.auth import Auth
from gateway.limits import EdgeLimits, LimitExceeded, client_address


class TokenRequest(BaseModel):
    caller: str | None = Field(None, max_length=200)
    origin: str | None = Field(None, max_length=300)
    ttl_s: float | None = Field(None, gt=0, le=7 * 86400)


def tokens_router(
    auth: Auth, admin: params.Depends, limits: EdgeLimits | None = None
) -> APIRouter:
    async def within_limit(request: Request) -> None:
        if limits is None:
            return
        try:
            limits.check_credentials(client_address(request))
        except LimitExceeded as exc:
            headers = {"Retry-After": str(exc.retry_after)}
            raise HTTPException(429, str(exc), headers=headers) from None

    # dependencies run in order: the limit first
    router = APIRouter(tags=["auth"], dependencies=[Depends(within_limit), admin])

    @router.post("/api/tokens")
    async def mint_token(body: TokenRequest) -> dict[str, Any]:
        """A signed, expiring token a page passes to /ws/browser (?token=)."""
        token, expires = auth.mint_widget_token(body.caller, body.origin, body.ttl_s)
        return {"token": token, "expires_at": expires}

    @router.post("/api/ws-ticket")
    async def ws_ticket() -> dict[str, Any]:
        """A ticket for ``/ws/state?ticket=``: valid once, for ``expires_in_s`` seconds."""
        ticket, ttl_s = auth.issue_ticket()
        return {"ticket": ticket, "expires_in_s": ttl_s}

    return router
