"""The FastAPI application: HTTP endpoints, the call WebSockets and start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Form, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from twilio.twiml.voice_response import VoiceResponse

from gateway.api_workflows import workflows_router
from gateway.browser import handle_browser
from gateway.config import Settings
from gateway.logs import set_trace_lookup
from gateway.metrics import CONTENT_TYPE, Metrics
from gateway.pages import pages_router, static_files
from gateway.runtime import Runtime
from gateway.state import state_router
from gateway.tracing import CallTracer, otlp_exporter
from gateway.twilio import handle_twilio
from gateway.twilio_protocol import twiml_connect_stream
from orchestration.agent import AgentFactory, basic_agent_factory
from orchestration.bulkhead import shared_bulkheads
from orchestration.events import EventBus
from orchestration.redact import redact_data
from voice.services import VoiceServices

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    voice: VoiceServices | None = None,
    agent_factory: AgentFactory = basic_agent_factory,
    bus: EventBus | None = None,
    tracer: CallTracer | None = None,
) -> FastAPI:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(
        settings=settings,
        voice=voice or VoiceServices.create(settings.voice, settings.data_dir),
        bus=bus or EventBus(redactor=redact_data if settings.redact else None),
        agent_factory=agent_factory,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(runtime.voice.load)
        runtime.ready.set()
        log.info("voxgate ready (model load ms: %s)", runtime.voice.load_ms)
        yield
        for session in list(runtime.sessions.values()):
            await runtime.end_session(session, "server shutting down")
        await asyncio.to_thread(app.state.tracer.shutdown)  # flush spans to the exporter

    app = FastAPI(title="voxgate", version="0.1.0", lifespan=lifespan)
    app.state.runtime = runtime
    # workflows, their REST API, and the event log every call event is appended to
    app.include_router(workflows_router(settings.data_dir, bus=runtime.bus))
    # live state for the dashboard (/ws/state, /api/sessions), the pages and the widget
    app.include_router(state_router(runtime.bus, settings.data_dir))
    app.include_router(pages_router())
    app.mount("/static", static_files(), name="static")
    metrics = Metrics(lambda: [runtime.voice.stt_pool, runtime.voice.tts_pool, *shared_bulkheads()])
    metrics.attach(runtime.bus)
    app.state.metrics = metrics
    if tracer is None:
        exporter = otlp_exporter(settings.otlp_endpoint) if settings.otlp_endpoint else None
        tracer = CallTracer(exporter=exporter)
    tracer.attach(runtime.bus)
    app.state.tracer = tracer
    set_trace_lookup(tracer.trace_id)  # log lines of a call carry its trace id

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        ready = runtime.ready.is_set()
        body = {
            "status": "ok" if ready else "starting",
            "sessions": len(runtime.sessions),
            "models": runtime.voice.load_ms,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.post("/twilio/voice")
    async def twilio_voice(request: Request, From: str | None = Form(None)) -> Response:
        base = _public_ws_base(settings, request)
        action = f"{_public_http_base(settings, request)}/twilio/after-stream"
        xml = twiml_connect_stream(f"{base}/ws/twilio", From, action=action)
        return Response(xml, media_type="application/xml")

    @app.post("/twilio/after-stream")
    async def twilio_after_stream(CallSid: str | None = Form(None)) -> Response:
        """Twilio asks what to do once our stream ends: dial a transfer or hang up."""
        target = runtime.transfers.pop(CallSid or "", None)
        number = target if target and target != "operator" else settings.transfer_number
        response = VoiceResponse()
        if target is not None and number:
            response.dial(number)
        else:
            response.hangup()
        return Response(str(response), media_type="application/xml")

    @app.websocket("/ws/twilio")
    async def ws_twilio(ws: WebSocket) -> None:
        await handle_twilio(ws, runtime)

    @app.websocket("/ws/browser")
    async def ws_browser(ws: WebSocket) -> None:
        await handle_browser(ws, runtime)

    return app


def _public_http_base(settings: Settings, request: Request) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def _public_ws_base(settings: Settings, request: Request) -> str:
    base = _public_http_base(settings, request)
    return "wss://" + base.removeprefix("https://") if base.startswith("https://") else (
        "ws://" + base.removeprefix("http://")
    )


def json_error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)
