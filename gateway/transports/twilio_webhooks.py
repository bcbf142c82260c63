"""Twilio's HTTP webhooks: answer a call with a media stream, and decide what happens when
the stream ends (a transfer dials out, anything else hangs up). Both verify Twilio's
request signature (gateway/auth.py)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from starlette.requests import HTTPConnection
from twilio.twiml.voice_response import VoiceResponse

from gateway.auth import Auth, AuthError
from gateway.limits import EdgeLimits, LimitExceeded
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

XML = "application/xml"


def public_http_base(runtime: Runtime, request: HTTPConnection) -> str:
    if runtime.settings.public_url:
        return runtime.settings.public_url.rstrip("/")
    base = str(request.base_url).rstrip("/")  # ws:// or wss:// for a WebSocket upgrade
    for ws_scheme, http_scheme in (("ws://", "http://"), ("wss://", "https://")):
        if base.startswith(ws_scheme):
            return http_scheme + base.removeprefix(ws_scheme)
    return base


def public_ws_base(runtime: Runtime, request: HTTPConnection) -> str:
    base = public_http_base(runtime, request)
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://")
    return "ws://" + base.removeprefix("http://")


async def _verified_form(request: Request, runtime: Runtime, auth: Auth) -> dict[str, str]:
    form = {k: str(v) for k, v in (await request.form()).items()}
    url = public_http_base(runtime, request) + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    try:
        auth.check_twilio(url, form, request.headers.get("x-twilio-signature"))
    except AuthError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return form


def _live_calls_from(runtime: Runtime, caller: str) -> int:
    return sum(
        1
        for session in runtime.sessions.values()
        if session.call.protocol == "twilio" and session.call.caller == caller
    )


def _busy_tone() -> Response:
    """Twilio does not answer a call whose TwiML starts with <Reject>: nothing is billed and
    the caller hears a busy signal. (An HTTP error would make Twilio log error 11200, try
    the fallback URL and then play its "application error" message.)"""
    busy = VoiceResponse()
    busy.reject(reason="busy")
    return Response(str(busy), media_type=XML)


def twilio_webhooks(
    runtime: Runtime, auth: Auth, limits: EdgeLimits | None = None
) -> APIRouter:
    """``limits`` caps phone calls per caller number (a busy tone beyond them)."""
    router = APIRouter(tags=["twilio"])

    @router.post("/twilio/voice")
    async def voice(request: Request) -> Response:
        form = await _verified_form(request, runtime, auth)
        if runtime.draining:
            # shutting down: no stream is opened, the caller hears a busy tone
            busy = VoiceResponse()
            busy.reject(reason="busy")
            return Response(str(busy), media_type=XML)
        if limits is not None:
            caller = form.get("From") or "unknown"
            try:
                limits.admit_phone(caller, _live_calls_from(runtime, caller))
            except LimitExceeded as exc:
                log.warning("phone call %s refused: %s", form.get("CallSid"), exc)
                return _busy_tone()
        stream = f"{public_ws_base(runtime, request)}/ws/twilio"
        action = f"{public_http_base(runtime, request)}/twilio/after-stream"
        return Response(
            twiml_connect_stream(stream, form.get("From"), action=action), media_type=XML
        )

    @router.post("/twilio/after-stream")
    async def after_stream(request: Request) -> Response:
        form = await _verified_form(request, runtime, auth)
        target = runtime.transfers.pop(form.get("CallSid", ""), None)
        number = target if target and target != "operator" else runtime.settings.transfer_number
        response = VoiceResponse()
        if target is not None and number:
            response.dial(number)
        else:
            response.hangup()
        return Response(str(response), media_type=XML)

    return router


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
