"""``voxgate livekit-worker``: a LiveKit agent worker that answers rooms with voxgate.

The worker registers with a LiveKit server through ``livekit-agents`` (``AgentServer``).
The server dispatches each new room (or, with ``agent_name``, each explicit dispatch) to a
worker; the worker joins the room, runs voxgate's own ``CallSession`` (VAD, barge-in,
turn-taking, the agents) on the first caller's audio track and publishes the reply as the
agent's audio track.

* Jobs run on threads of this one process (``JobExecutorType.THREAD``), each on an event
  loop of its own: the whisper and piper models are loaded once, before the worker
  registers, and every call shares them through the runtime's bulkheads, as calls on
  ``voxgate serve`` do. (livekit-agents' default, a process per job, would load the
  models again in each process and lose the shared bounds on two cores.)
* Load: live calls / ``capacity``; at ``load >= 1`` the worker tells the server it is
  full, and an availability request that comes anyway is declined, so the server tries
  another worker.
* SIGTERM drains: the worker reports itself full at once, lets live calls finish for
  ``drain_timeout_s``, then has each say the gateway's goodbye and hang up, and exits 0.
* What the caller's app sees besides audio: the caller's words and the agent's sentences
  as LiveKit transcriptions (text streams on ``lk.transcription``, the topic LiveKit's
  client components read) and every event of the session as JSON on the data topic
  ``voxgate.events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from livekit import api, rtc
from livekit.agents import AgentServer, AutoSubscribe, JobContext, JobExecutorType, JobRequest

from gateway.agents import plug
from gateway.call_log import CallLog
from gateway.config import Settings
from gateway.livekit.events import Forwarder, publish_event
from gateway.livekit.resume import (
    Redispatcher,
    alive,
    heartbeat,
    open_log,
    resume_from,
    room_metadata,
    stop,
)
from gateway.livekit.transport import CallerAudio, LiveKitTransport
from gateway.runtime import CallRefused, Runtime
from orchestration.agents.agent import basic_agent_factory
from orchestration.agents.system import make_agent_factory
from orchestration.log.events import EventBus
from orchestration.log.redact import redact_data
from orchestration.patterns.bulkhead import Bulkhead
from voice.services import VoiceServices
from voice.session import CallSession

log = logging.getLogger(__name__)

WORKER_ATTRIBUTE = "voxgate.worker"  # on the agent participant: which worker took the call
DRAINING = "worker draining"  # the hang-up reason of a call cut at the drain deadline


@dataclass
class WorkerOptions:
    url: str
    api_key: str
    api_secret: str
    capacity: int  # live calls at most; the load reported is live / capacity
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    agent_name: str = ""  # "": every new room; else only explicit dispatches of this name
    drain_timeout_s: int = 60
    http_port: int = 0  # livekit-agents' health endpoint; 0: any free port
    redispatch: bool = True  # watch the rooms; dispatch again one whose agent died


def make_runtime(settings: Settings) -> Runtime:
    """The bus, the models (not loaded yet) and the agents every call of this worker shares."""
    bus = EventBus(redactor=redact_data if settings.redact else None)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # the agents' stores follow settings.database_url: on PostgreSQL, every worker and
    # gateway replica books into the same tables
    # the event log the agents resume a call from (gateway/livekit/resume.py opens it)
    call_log = CallLog()
    factory = (basic_agent_factory if settings.agent == "basic"
               else make_agent_factory(bus, settings.data_dir, settings.agents_config,
                                       database_url=settings.database_url,
                                       calls=call_log.call, durable=call_log.durable))
    return Runtime(settings=settings,
                   voice=VoiceServices.create(settings.voice, settings.data_dir, Bulkhead),
                   bus=bus, agent_factory=plug(factory), call_log=call_log)


@dataclass
class _Call:
    loop: asyncio.AbstractEventLoop
    session: CallSession


class VoxgateWorker:
    def __init__(self, options: WorkerOptions, runtime: Runtime) -> None:
        if options.capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {options.capacity}")
        self.options = options
        self.runtime = runtime
        self.server = AgentServer(
            job_executor_type=JobExecutorType.THREAD,
            load_threshold=1.0,
            num_idle_processes=1,
            ws_url=options.url, api_key=options.api_key, api_secret=options.api_secret,
            port=options.http_port,
            drain_timeout=options.drain_timeout_s,
            setup_fnc=self._prewarm,
            load_fnc=self.load,
        )
        self.server.rtc_session(self.entrypoint, agent_name=options.agent_name,
                                on_request=self.on_request)
        self._calls: dict[str, _Call] = {}
        self._lock = threading.Lock()
        self._loaded = threading.Event()
        self._done_jobs: set[str] = set()  # jobs whose call is over, their thread ending
        self._loop: asyncio.AbstractEventLoop | None = None  # the server's (run's) loop

    # --- what the server asks ---------------------------------------------------------

    def load(self) -> float:
        """Live calls over capacity, capped at 1 (the server's threshold for full). A job
        accepted whose call has not started yet counts; one whose call is over does not,
        though its thread may still be winding down."""
        try:
            running = {info.job.id for info in self.server.active_jobs}
        except AttributeError:  # not running yet: no process pool
            running = set()
        with self._lock:
            live = len(self._calls)
            self._done_jobs &= running
            jobs = len(running - self._done_jobs)
        return min(1.0, max(live, jobs) / self.options.capacity)

    def _report_load(self) -> None:
        """Tell the server the new load now, not at livekit-agents' next status update
        (every 2.5 s): a room created meanwhile would find every worker "full" and get no
        agent. (Private methods of livekit-agents 1.8.9, pinned.)"""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        async def report() -> None:
            await self.server._refresh_worker_load()
            await self.server._update_worker_status()

        asyncio.run_coroutine_threadsafe(report(), loop)

    async def on_request(self, request: JobRequest) -> None:
        if self.server.draining:
            await request.reject()
            return
        await request.accept(name="voxgate", attributes={WORKER_ATTRIBUTE: self.options.name})

    def _prewarm(self, proc: Any) -> None:
        # a job thread: the models were loaded (and warmed) once, before the worker
        # registered; only a worker run without run() loads them here, on its first job
        with self._lock:
            if not self._loaded.is_set():
                self.runtime.voice.load()
                self._loaded.set()

    # --- one call ---------------------------------------------------------------------

    async def entrypoint(self, ctx: JobContext) -> None:
        try:
            await self._answer(ctx)
        finally:
            with self._lock:
                self._done_jobs.add(ctx.job.id)
            self._report_load()

    async def _answer(self, ctx: JobContext) -> None:
        await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
        resume = resume_from(ctx.job.metadata)
        if resume and _other_agent(ctx.room):
            ctx.shutdown("another worker carried the call on first")
            return
        caller = await ctx.wait_for_participant()
        track = await _audio_track(ctx.room, caller)
        transport = LiveKitTransport.create()
        try:
            session = self.runtime.new_session(transport, "livekit", caller=caller.identity,
                                               call_sid=ctx.room.name, resume_from=resume)
        except CallRefused as exc:
            log.warning("room %s refused: %s", ctx.room.name, exc)
            await publish_event(ctx.room, {"type": "call.refused", "code": exc.code,
                                            "reason": str(exc)})
            ctx.shutdown(f"refused: {exc.code}")
            return
        with self._lock:
            self._calls[session.id] = _Call(asyncio.get_running_loop(), session)
        self._report_load()
        with contextlib.suppress(Exception):  # without it the call goes on, unresumable
            await ctx.api.room.update_room_metadata(api.UpdateRoomMetadataRequest(
                room=ctx.room.name, metadata=room_metadata(session.id)))
        try:
            await self._run_call(ctx, caller, track, session, transport)
        finally:
            with self._lock:
                self._calls.pop(session.id, None)

    async def _run_call(self, ctx: JobContext, caller: rtc.RemoteParticipant, track: rtc.Track,
                        session: CallSession, transport: LiveKitTransport) -> None:
        room = ctx.room
        published = await room.local_participant.publish_track(
            rtc.LocalAudioTrack.create_audio_track("voxgate", transport.source),
            rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        transport.on_mark = session.on_mark
        transport.start()
        forwarder = Forwarder(room, session.id, caller_track=track.sid,
                               agent_track=published.sid)
        unsubscribe = self.runtime.bus.subscribe(forwarder.on_event)
        beating = asyncio.create_task(heartbeat(room.local_participant.set_attributes),
                                      name="lk-heartbeat")
        audio = CallerAudio(track)
        left = asyncio.Event()
        room.on("participant_disconnected",
                lambda p: left.set() if p.identity == caller.identity else None)
        reason = "caller hung up"
        try:
            await session.start()
            feeding = asyncio.create_task(audio.frames(session.feed), name="lk-caller-audio")
            ended = [asyncio.create_task(e.wait()) for e in (left, session.ended,
                                                             transport.closed)]
            await asyncio.wait([feeding, *ended], return_when=asyncio.FIRST_COMPLETED)
            if not left.is_set():
                reason = transport.end_reason or session.end_reason or "caller track ended"
            for task in (feeding, *ended):
                task.cancel()
        finally:
            await self.runtime.end_session(session, reason)
            await forwarder.flush()
            unsubscribe()
            await stop(beating)
            await audio.aclose()
            await transport.aclose()
        if not left.is_set():  # the agent ended the call: the room goes with it
            with contextlib.suppress(Exception):
                await ctx.delete_room()
        ctx.shutdown(reason)

    # --- the worker's life ------------------------------------------------------------

    def _live_calls(self) -> list[_Call]:
        with self._lock:
            return list(self._calls.values())

    def cut_live_calls(self) -> None:
        """The drain's deadline: every live call hears the goodbye and is hung up."""
        text = self.runtime.settings.drain_goodbye_text
        for call in self._live_calls():
            call.loop.call_soon_threadsafe(call.session.say, text, DRAINING)

    async def _wait_for_goodbyes(self) -> None:
        """Wait for the goodbyes, at most ``drain_timeout_s``; a call still live then is
        ended here (its caller gets ``session.ended``), not killed with its job thread."""
        started = time.monotonic()
        await self._until_no_calls(self.runtime.settings.drain_timeout_s)
        left = self._live_calls()
        log.warning("worker %s: goodbyes said in %.1f s, %d call(s) ended without one",
                    self.options.name, time.monotonic() - started, len(left))
        reason = f"{DRAINING}: no goodbye in time"
        for call in left:
            asyncio.run_coroutine_threadsafe(self.runtime.end_session(call.session, reason),
                                             call.loop)
        await self._until_no_calls(5.0)  # each call's own clean-up: its last events

    async def _until_no_calls(self, limit_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit_s):
                while self._calls:  # noqa: ASYNC110 (emptied from the job threads)
                    await asyncio.sleep(0.1)

    async def run(self) -> None:
        """Load the models, open the event log, register, take calls (and watch the rooms
        for a call whose worker died); SIGTERM drains, then this returns."""
        await asyncio.to_thread(self._prewarm, None)
        close_log = await asyncio.to_thread(open_log, self.runtime.settings, self.runtime.bus,
                                            self.runtime.call_log)
        watcher = (asyncio.create_task(Redispatcher(
            self.options.url, self.options.api_key, self.options.api_secret,
            self.options.agent_name).run(), name="lk-room-watch")
            if self.options.redispatch else None)
        try:
            await self._serve()
        finally:
            await stop(watcher)
            await asyncio.to_thread(close_log)

    async def _serve(self) -> None:
        log.info("voxgate livekit worker %s: models loaded (ms: %s), registering with %s",
                 self.options.name, self.runtime.voice.load_ms, self.options.url)
        loop = self._loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        runner = asyncio.create_task(self.server.run(), name="lk-agent-server")
        stopper = asyncio.create_task(stopping.wait())
        await asyncio.wait([runner, stopper], return_when=asyncio.FIRST_COMPLETED)
        if runner.done():
            stopper.cancel()
            runner.result()  # registration failed for good: raise it
            return
        await self.drain()
        await self.server.aclose()
        await asyncio.gather(runner, return_exceptions=True)

    async def drain(self) -> None:
        log.warning("worker %s draining: no new calls, %d live", self.options.name,
                    len(self._calls))
        try:
            await self.server.drain(timeout=self.options.drain_timeout_s)
        except TimeoutError:
            # (livekit-agents' drain() returns at once when called again): the goodbyes
            # are waited for here, before the job threads are closed
            self.cut_live_calls()
            await self._wait_for_goodbyes()
        log.warning("worker %s drained", self.options.name)


def _other_agent(room: rtc.Room) -> bool:
    """Whether another voxgate agent is in ``room`` already (two workers dispatched it)."""
    return any(WORKER_ATTRIBUTE in p.attributes and alive(p.attributes)
               for p in room.remote_participants.values())


async def _audio_track(room: rtc.Room, participant: rtc.RemoteParticipant) -> rtc.Track:
    """The participant's first audio track, once we are subscribed to it."""
    for publication in participant.track_publications.values():
        if publication.kind == rtc.TrackKind.KIND_AUDIO and publication.track is not None:
            return publication.track
    found: asyncio.Future[rtc.Track] = asyncio.get_running_loop().create_future()

    def subscribed(track: rtc.Track, _: rtc.RemoteTrackPublication,
                   who: rtc.RemoteParticipant) -> None:
        if (who.identity == participant.identity and track.kind == rtc.TrackKind.KIND_AUDIO
                and not found.done()):
            found.set_result(track)

    room.on("track_subscribed", subscribed)
    try:
        return await found
    finally:
        room.off("track_subscribed", subscribed)
