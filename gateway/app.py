"""The FastAPI application: HTTP endpoints, the call WebSockets and start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, WebSocket, WebSocketException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.requests import HTTPConnection
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateway.agents import plug
from gateway.api.http_errors import validation_error
from gateway.api.livekit_tokens import livekit_tokens_router
from gateway.api.pages import pages_router, static_files
from gateway.api.state import state_router
from gateway.api.tokens import tokens_router
from gateway.api.workflows import workflows_router
from gateway.auth import CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED, Auth, AuthError
from gateway.call_log import CallLog
from gateway.cluster.wiring import attach_cluster
from gateway.config import Settings
from gateway.limits import CLOSE_LIMITED, EdgeLimits, LimitExceeded, client_address
from gateway.observability.debug import debug_router
from gateway.observability.health import GatewayReadings
from gateway.observability.logs import set_trace_lookup
from gateway.observability.metrics import CONTENT_TYPE, Metrics
from gateway.observability.tracing import CallTracer, otlp_exporter
from gateway.retention import apply_retention
from gateway.runtime import Runtime
from gateway.transports.browser import handle_browser
from gateway.transports.twilio import handle_twilio
from gateway.transports.twilio_webhooks import public_ws_base, twilio_webhooks
from orchestration.agents.agent import AgentFactory, basic_agent_factory
from orchestration.agents.system import make_agent_factory
from orchestration.log.events import EventBus
from orchestration.log.redact import redact_data
from orchestration.patterns.bulkhead import Bulkhead, shared_bulkheads
from voice.services import VoiceServices

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    voice: VoiceServices[Bulkhead] | None = None,
    agent_factory: AgentFactory | None = None,
    bus: EventBus | None = None,
    tracer: CallTracer | None = None,
) -> FastAPI:
    auth = Auth(settings)
    for warning in auth.validate():  # raises InsecureConfiguration in production
        log.warning(warning)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime, readings = _runtime(settings, voice, agent_factory, bus)
    app = FastAPI(title="voxgate", version="0.1.0", lifespan=_lifespan(runtime, settings))
    # a 422 that NaN or Infinity in the body cannot turn into a 500 (gateway/api/http_errors.py)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.state.runtime = runtime
    app.state.auth = auth
    limits = EdgeLimits(settings.limits, enabled=settings.limits_on)
    app.state.limits = limits
    if settings.trusted_proxies:
        # the client address comes from X-Forwarded-For only when a trusted proxy sent it
        # (uvicorn's middleware; the servers we start leave proxy headers to this setting)
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    app.state.readings = readings
    admin = Depends(_admin_check(auth))
    _observers(app, runtime, limits, tracer)
    _routers(app, runtime, auth, limits, admin)
    attach_cluster(app, runtime, admin)  # the live bus to other nodes, if configured
    _call_endpoints(app, runtime, auth, limits)
    return app


def _runtime(settings: Settings, voice: VoiceServices[Bulkhead] | None,
             agent_factory: AgentFactory | None, bus: EventBus | None,
             ) -> tuple[Runtime, GatewayReadings]:
    """The bus, the voice models and the agents every call shares."""
    bus = bus or EventBus(redactor=redact_data if settings.redact else None)
    # the gateway's own status for the ops agent ("how is the gateway?"); a caller that
    # builds its own agents plugs in app.state.readings itself
    readings = GatewayReadings(settings.data_dir)
    # the event log the agents resume a dropped call from (the workflow router attaches it)
    call_log = CallLog()
    if agent_factory is None:
        agent_factory = (
            basic_agent_factory
            if settings.agent == "basic"
            else make_agent_factory(
                bus, settings.data_dir, settings.agents_config, readings={"gateway": readings},
                calls=call_log.call, durable=call_log.durable,
                database_url=settings.database_url,
            )
        )
    runtime = Runtime(
        settings=settings,
        voice=voice or VoiceServices.create(settings.voice, settings.data_dir, Bulkhead),
        bus=bus,
        agent_factory=plug(agent_factory),
        call_log=call_log,
    )
    readings.attach(runtime)
    return runtime, readings


def _lifespan(runtime: Runtime, settings: Settings,
              ) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(runtime.voice.load)
        retention = (
            asyncio.create_task(_retention_loop(settings)) if settings.retention_days else None
        )
        runtime.ready.set()
        log.info("voxgate ready (model load ms: %s)", runtime.voice.load_ms)
        yield
        if retention is not None:
            retention.cancel()
        for session in list(runtime.sessions.values()):
            await runtime.end_session(session, "server shutting down")
        await asyncio.to_thread(app.state.tracer.shutdown)  # flush spans to the exporter

    return lifespan


def _admin_check(auth: Auth) -> Callable[[HTTPConnection], Awaitable[None]]:
    async def require_admin(conn: HTTPConnection) -> None:
        try:
            auth.check_admin(conn)
        except AuthError as exc:
            if conn.scope["type"] == "websocket":
                # the handshake is refused with HTTP 403: the reason reaches only the log
                log.warning("%s refused: %s", conn.url.path, exc)
                raise WebSocketException(CLOSE_UNAUTHORIZED, str(exc)) from None
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None

    return require_admin


def _observers(app: FastAPI, runtime: Runtime, limits: EdgeLimits, tracer: CallTracer | None,
               ) -> None:
    """Metrics and traces, both observers of the bus."""
    settings = runtime.settings
    metrics = Metrics(
        lambda: [runtime.voice.stt_pool, runtime.voice.tts_pool, *shared_bulkheads()],
        # the edge limits' refusals and the node's own: full (max_sessions)
        refusals=lambda: {**limits.refusals(), "capacity": runtime.capacity_refusals},
    )
    metrics.attach(runtime.bus)
    app.state.metrics = metrics
    if tracer is None:
        exporter = otlp_exporter(settings.otlp_endpoint) if settings.otlp_endpoint else None
        tracer = CallTracer(exporter=exporter)
    tracer.attach(runtime.bus)
    app.state.tracer = tracer
    set_trace_lookup(tracer.trace_id)  # log lines of a call carry its trace id


def _routers(app: FastAPI, runtime: Runtime, auth: Auth, limits: EdgeLimits, admin: Any,
             ) -> None:
    settings, metrics = runtime.settings, app.state.metrics
    # widget tokens and /ws/state tickets (POST /api/tokens, /api/ws-ticket)
    app.include_router(tokens_router(auth, admin, limits))
    # room tokens for the widget's LiveKit calls (POST /api/livekit/token)
    app.include_router(livekit_tokens_router(settings, auth, limits))
    # workflows, their REST API, and the event log every call event is appended to
    app.include_router(
        workflows_router(settings.data_dir, bus=runtime.bus, log_observer=metrics,
                         on_logged=metrics.observe_log, redact=settings.redact,
                         database_url=settings.database_url, call_log=runtime.call_log),
        dependencies=[admin],
    )
    # live state for the dashboard (/ws/state, /api/sessions), the pages and the widget
    app.include_router(state_router(runtime.bus, settings.data_dir,
                                    database_url=settings.database_url), dependencies=[admin])
    # leak-hunting figures for the soak benchmark and the fault tests
    app.include_router(debug_router(runtime), dependencies=[admin])
    app.include_router(pages_router(
        lambda: auth.mint_widget_token("demo-page")[0],
        demo_page=settings.demo_page_on,
        demo_limiter=limits.demo_pages,
    ))
    app.include_router(twilio_webhooks(runtime, auth, limits))
    app.mount("/static", static_files(), name="static")

    @app.get("/metrics", dependencies=[admin])
    async def metrics_endpoint() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        # 503 unless serving: a load balancer stops sending calls to a draining gateway
        ready = runtime.ready.is_set() and not runtime.draining
        status = "draining" if runtime.draining else "ok" if ready else "starting"
        body = {"status": status, "sessions": len(runtime.sessions),
                "models": runtime.voice.load_ms}
        # the live bus, for operators: a node without it still takes calls (never a 503)
        body["bus"] = app.state.cluster.status if app.state.cluster is not None else "off"
        return JSONResponse(body, status_code=200 if ready else 503)


def _call_endpoints(app: FastAPI, runtime: Runtime, auth: Auth, limits: EdgeLimits) -> None:
    """The two call WebSockets, each behind its own check."""

    @app.websocket("/ws/twilio")
    async def ws_twilio(ws: WebSocket) -> None:
        url = public_ws_base(runtime, ws) + ws.url.path
        if ws.url.query:
            url += "?" + ws.url.query
        try:
            auth.check_twilio(url, {}, ws.headers.get("x-twilio-signature"))
        except AuthError as exc:
            log.warning("twilio stream refused: %s", exc)
            raise WebSocketException(CLOSE_FORBIDDEN, str(exc)) from None
        await handle_twilio(ws, runtime)

    @app.websocket("/ws/browser")
    async def ws_browser(ws: WebSocket) -> None:
        address = client_address(ws)
        try:
            limits.check_browser_attempt(address)
            grant = auth.check_widget(ws)
            slot = limits.admit_browser(address, ws.query_params.get("token") if grant else None)
        except (AuthError, LimitExceeded) as exc:
            log.warning("browser call refused: %s", exc)
            await ws.accept()
            if isinstance(exc, LimitExceeded):
                code = CLOSE_LIMITED
            else:
                code = CLOSE_FORBIDDEN if exc.status == 403 else CLOSE_UNAUTHORIZED
            await ws.close(code, str(exc)[:120])
            return
        with slot:  # a place among the live calls until this connection ends
            await handle_browser(ws, runtime)


async def _retention_loop(settings: Settings, every_s: float = 3600.0) -> None:
    """Apply the retention period at start-up and then hourly."""
    assert settings.retention_days is not None
    while True:
        try:
            await asyncio.to_thread(apply_retention, settings.data_dir, settings.retention_days,
                                    database_url=settings.database_url)
        except Exception:
            log.exception("retention pass failed; will try again")
        await asyncio.sleep(every_s)
