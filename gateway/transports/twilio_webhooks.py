"""Twilio's HTTP webhooks: answer a call with a media stream, and decide what happens when
the stream ends (a transfer dials out, anything else hangs up). Both verify Twilio's
request signature (gateway/auth.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from starlette.requests import HTTPConnection
from twilio.twiml.voice_response import VoiceResponse

from gateway.auth import Auth, AuthError
from gateway.call_log import CallLog
from gateway.limits import EdgeLimits, LimitExceeded
from gateway.runtime import Runtime
from gateway.transports.inbox import VANISHED

log = logging.getLogger(__name__)

XML = "application/xml"
# a phone call whose stream keeps breaking is carried on this many times, then hung up
MAX_RESUMES = 3


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


def _busy_message(runtime: Runtime) -> Response:
    """A call the node has no room for: a short message, then a clean hang-up."""
    busy = VoiceResponse()
    busy.say(runtime.settings.busy_text)
    busy.hangup()
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
        session = runtime.reserve()
        if session is None:
            log.warning("phone call %s refused: the node is at capacity (%d calls)",
                        form.get("CallSid"), runtime.settings.max_sessions)
            return _busy_message(runtime)
        return _stream_twiml(runtime, request, form.get("From"), session)

    @router.post("/twilio/after-stream")
    async def after_stream(request: Request, session: str | None = None) -> Response:
        form = await _verified_form(request, runtime, auth)
        call_sid = form.get("CallSid", "")
        target = runtime.transfers.pop(call_sid, None)
        number = target if target and target != "operator" else runtime.settings.transfer_number
        if target is None and session is not None and await asyncio.to_thread(
                dropped, runtime.call_log, session, call_sid):
            # the stream broke (its node died, or the line): a new stream carries on
            log.warning("twilio call %s: stream of session %s dropped; resuming it",
                        call_sid, session)
            carried = runtime.reserve()
            if carried is None:
                return _busy_message(runtime)
            return _stream_twiml(runtime, request, form.get("From"), carried,
                                 resume_from=session)
        if runtime.refused_streams.pop(call_sid, None) is not None:
            return _busy_message(runtime)  # its stream found the node full
        response = VoiceResponse()
        if target is not None and number:
            response.dial(number)
        else:
            response.hangup()
        return Response(str(response), media_type=XML)

    return router


def _stream_twiml(runtime: Runtime, request: Request, caller: str | None, session: str,
                  resume_from: str | None = None) -> Response:
    """A stream for ``session``; the action URL names it, so whichever node Twilio asks
    when the stream ends can look the call up in the shared log."""
    stream = f"{public_ws_base(runtime, request)}/ws/twilio"
    action = f"{public_http_base(runtime, request)}/twilio/after-stream?session={session}"
    params = {"session": session}
    if resume_from is not None:
        params["resume_from"] = resume_from
    return Response(twiml_connect_stream(stream, caller, action=action, parameters=params),
                    media_type=XML)


def dropped(call_log: CallLog, session: str, call_sid: str) -> bool:
    """Did ``session``'s stream break rather than end? Its node died (the log holds no
    ``session.ended``) or the connection vanished, the conversation was not ended by the
    agent, and the call has not already been carried on ``MAX_RESUMES`` times."""
    started = call_log.started(session)
    if started is None or started.get("call_sid") != call_sid:
        return False  # not in the log, or not this phone call's session
    view = call_log.call(session)
    conversation = (view or {}).get("conversation") or {}
    if conversation.get("ended") or int(conversation.get("resumed") or 0) >= MAX_RESUMES:
        return False
    reason = call_log.end_reason(session)
    return reason is None or reason.startswith(VANISHED)


def twiml_connect_stream(stream_url: str, caller: str | None, *, action: str | None = None,
                         parameters: Mapping[str, str] | None = None) -> str:
    """TwiML answering a call with a bidirectional stream to ``stream_url``.

    ``<Connect><Stream>`` makes the stream bidirectional ([WSM] "Send WebSocket messages to
    Twilio"); the caller travels as the custom parameter ``caller``, which Twilio hands back
    in ``start.customParameters`` (TwiML <Stream> doc, "Custom parameters"), and so do
    ``parameters`` (the session's id, the session it resumes). ``action`` is the <Connect>
    webhook Twilio asks for the next TwiML once the stream ends.
    """
    response = VoiceResponse()
    connect = response.connect(action=action) if action is not None else response.connect()
    stream = connect.stream(url=stream_url)
    if caller is not None:
        stream.parameter(name="caller", value=caller)
    for name, value in (parameters or {}).items():
        stream.parameter(name=name, value=value)
    return str(response)
