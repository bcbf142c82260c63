"""REST endpoints of the orchestration core: list and draw workflows, start one, signal
it, read its state and its events.

Mounted by ``gateway/app.py``::

    app.include_router(workflows_router(settings.data_dir, bus=runtime.bus))

With ``bus``, every call event of the voice gateway is appended to the same event log
(through ``attach_bus``: batched on a writer thread, never blocking the audio loop). The
router's lifespan also resumes instances a crash left active and fires timers and cron
schedules every ``tick_s`` seconds.

    GET  /api/workflows                      the runnable workflows and their inputs
    GET  /api/workflows/{name}               definition, JSON graph and Mermaid text
    POST /api/workflows/{name}/runs          {"input": {...}} -> 201 the new run's state
    GET  /api/runs[?status=waiting]          every run, in brief
    GET  /api/runs/{id}                      a run's state (its derived view)
    POST /api/runs/{id}/signals              {"event": "...", "data": {...}} -> 200, or
                                             409 when the transition is rejected
    GET  /api/runs/{id}/events?after=&limit= the run's events, oldest first

Errors are ``{"detail": "..."}``: 404 unknown workflow or run, 422 input failing the
workflow's schema, 409 a concurrent writer, 503 the log is busy or damaged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway.call_log import CallLog, bus_writer
from orchestration.log.buslog import AppendObserver
from orchestration.log.events import EventBus
from orchestration.log.store import ConcurrentWriteError, LogError, StoredEvent
from orchestration.service import Orchestrator
from orchestration.workflow.engine import InputInvalid, WorkflowError

T = TypeVar("T")


class StartRun(BaseModel):
    input: dict[str, Any] = Field(default_factory=dict)


class SendSignal(BaseModel):
    event: str = Field(min_length=1, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)


async def _guard(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return await fn()
    except InputInvalid as exc:
        raise HTTPException(422, str(exc)) from None
    except WorkflowError as exc:
        raise HTTPException(404, str(exc)) from None
    except ConcurrentWriteError as exc:
        raise HTTPException(409, str(exc)) from None
    except LogError as exc:
        raise HTTPException(503, str(exc)) from None


def workflows_router(
    data_dir: str | Path | None = None, *, orchestrator: Orchestrator | None = None,
    bus: EventBus | None = None, tick_s: float = 1.0,
    log_observer: AppendObserver | None = None,
    on_logged: Callable[[list[StoredEvent]], None] | None = None, redact: bool = True,
    database_url: str | None = None, call_log: CallLog | None = None,
) -> APIRouter:
    """The workflow API. ``on_logged`` sees every batch the orchestrator commits to the
    log (the metrics count back-office workflow runs with it); ``log_observer`` hears how
    the bus's log writer fares (appends, failures, drops, backlog); ``redact`` masks the
    runs' events as the bus masks the calls' (the ``redact`` setting); ``call_log`` gets
    the log and its writer while the app runs (the agents resume calls from it)."""
    orch = orchestrator or Orchestrator(data_dir, redact=redact, database_url=database_url)
    if on_logged is not None:
        orch.store.observe(on_logged)

    lifespan = _lifespan(orch, bus, tick_s, log_observer, call_log, own=orchestrator is None)
    router = APIRouter(tags=["workflows"], lifespan=lifespan)

    @router.get("/api/workflows")
    async def list_workflows() -> list[dict[str, Any]]:
        return orch.workflows()

    @router.get("/api/workflows/{name}")
    async def get_workflow(name: str) -> dict[str, Any]:
        return await _guard(lambda: _now(lambda: orch.workflow(name)))

    @router.post("/api/workflows/{name}/runs", status_code=201)
    async def start_run(name: str, body: StartRun) -> dict[str, Any]:
        return await _guard(lambda: orch.start(name, body.input))

    @router.get("/api/runs")
    async def list_runs(status: str | None = None) -> list[dict[str, Any]]:
        return orch.runs(status)

    @router.get("/api/runs/{run_id}")
    async def get_run(run_id: str) -> dict[str, Any]:
        return await _guard(lambda: _now(lambda: orch.status(run_id)))

    @router.post("/api/runs/{run_id}/signals")
    async def signal_run(run_id: str, body: SendSignal) -> JSONResponse:
        result = await _guard(lambda: orch.signal(run_id, body.event, body.data))
        content = {"accepted": result.accepted, "status": result.status,
                   "state": result.state, "reason": result.reason}
        return JSONResponse(content, status_code=200 if result.accepted else 409)

    @router.get("/api/runs/{run_id}/events")
    async def run_events(
        run_id: str, after: int = Query(0, ge=0), limit: int = Query(1000, ge=1, le=10_000),
    ) -> list[dict[str, Any]]:
        return await _guard(lambda: _now(lambda: orch.events(run_id, after, limit)))

    return router


def _lifespan(orch: Orchestrator, bus: EventBus | None, tick_s: float,
              log_observer: AppendObserver | None, call_log: CallLog | None, *, own: bool,
              ) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """While the app runs: the bus's events written to the log, the engine's timers ticking;
    the orchestrator closed at the end when this router made it (``own``)."""
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sink = writer = None
        if bus is not None:
            sink, writer = bus_writer(bus, orch.store_location, log_observer)
        if call_log is not None:
            call_log.attach(orch.store, sink)
        ticker = await orch.start_background(tick_s) if tick_s > 0 else None
        try:
            yield
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            if call_log is not None:
                call_log.detach()
            if sink is not None and writer is not None:
                await asyncio.to_thread(sink.close)
                writer.close()
            if own:
                orch.close()

    return lifespan


async def _now(fn: Callable[[], T]) -> T:
    return fn()
