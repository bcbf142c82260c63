"""How many whisper runs a turn costs, and which ones the session skips, with the real
tiny.en model and real speech streamed at real-time pace."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from gateway.evaluation.speech import load_prompt
from orchestration.log.events import EventBus, EventRecorder
from tests.voice.fakes import (
    SPEECH,
    FakeSTT,
    FakeTransport,
    ScriptedAgent,
    ack_all,
    feed,
    make_session,
    settle,
    silence,
)
from voice.audio import FRAME_BYTES
from voice.config import SttConfig, VoiceConfig
from voice.ports import CallInfo
from voice.session import CallSession
from voice.stt import Transcript, WhisperSTT
from voice.stt_jobs import SttSkipped, Ticket

# "press 1 to accept this recording press 2 to listen to it press 3 to rerecord your
# message": ~6 s with a pause after each option, so speculation runs at every pause
PAUSED, _ = load_prompt("vm-review")


class CountingWhisper:
    """The real recogniser, counting the jobs it is given (a wrapper, not a fake)."""

    def __init__(self, whisper: WhisperSTT) -> None:
        self.whisper = whisper
        self.runs = 0

    async def transcribe(self, pcm: bytes, prompt: str | None = None) -> Transcript:
        self.runs += 1
        return await self.whisper.transcribe(pcm, prompt)


def real_session(stt: object) -> tuple[CallSession, FakeTransport, EventRecorder]:
    bus = EventBus()
    recorder = EventRecorder(bus)
    transport = FakeTransport()
    session = CallSession(CallInfo("runs", "test"), transport, ScriptedAgent(["Okay."]),
                          stt, _InstantTTS(), lambda text, _n: [text], bus,  # type: ignore[arg-type]
                          VoiceConfig())
    return session, transport, recorder


class _InstantTTS:
    sample_rate = 16000

    async def synthesize(self, text: str) -> bytes:
        return b"\0\0" * 160


async def paced(session: CallSession, pcm: bytes) -> None:
    """Frames at the pace a caller speaks them, so whisper runs while they talk."""
    for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
        session.feed(pcm[i : i + FRAME_BYTES])
        await asyncio.sleep(0.02)


async def finals(recorder: EventRecorder, count: int = 1) -> list[Any]:
    """The session's stt.final events once there are ``count`` (whisper may be queued
    behind other work on a busy machine: this waits for it, it does not time it)."""
    for _ in range(3000):
        if len(found := recorder.of_type("stt.final")) >= count:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {count} stt.final events: {recorder.of_type('stt.final')}")


async def test_a_turn_says_how_many_whisper_runs_it_cost(whisper_tiny: WhisperSTT) -> None:
    stt = CountingWhisper(whisper_tiny)
    session, transport, recorder = real_session(stt)
    await session.start()
    await settle()
    await ack_all(session, transport)
    await paced(session, silence(200) + PAUSED + silence(1500))
    final = await finals(recorder)
    assert len(final) == 1 and "accept" in final[0].data["text"].lower()
    # every run the recogniser was given is counted, and all but the delivered one wasted
    assert stt.runs >= 2  # the pauses inside the sentence started speculative runs
    assert final[0].data["stt_runs"] == stt.runs
    assert final[0].data["stt_wasted"] == stt.runs - 1
    await session.close("test over")


# --- the queue of every call's jobs ----------------------------------------------------


async def test_final_transcripts_run_before_speculative_ones(whisper_tiny: WhisperSTT) -> None:
    """Jobs of several calls wait while the pool is busy; the final one, queued last,
    runs first."""
    gate = threading.Event()
    blocker = asyncio.ensure_future(whisper_tiny.pool.run_in_thread(gate.wait))
    await settle()
    done: list[str] = []

    async def job(name: str, final: bool) -> Transcript:
        pcm, _ = load_prompt(name)
        if final:
            result = await whisper_tiny.transcribe(pcm)
        else:
            result = await whisper_tiny.speculate(pcm, None, Ticket())
        done.append(name)
        return result

    specs = [asyncio.ensure_future(job(n, False)) for n in ("conf-full", "conf-muted")]
    await settle()
    final = asyncio.ensure_future(job("conf-locked", True))
    await settle()
    assert whisper_tiny.backlog() == 3
    gate.set()
    await asyncio.gather(blocker, final, *specs)
    assert done[0] == "conf-locked"
    assert "locked" in final.result().text.lower()
    assert "full" in specs[0].result().text.lower()


async def test_a_dropped_speculative_job_is_never_run(whisper_tiny: WhisperSTT) -> None:
    gate = threading.Event()
    blocker = asyncio.ensure_future(whisper_tiny.pool.run_in_thread(gate.wait))
    await settle()
    runs = whisper_tiny.jobs.runs
    ticket = Ticket()
    pcm, _ = load_prompt("conf-full")
    spec = asyncio.ensure_future(whisper_tiny.speculate(pcm, None, ticket))
    await settle()
    ticket.dropped = True  # the caller went on talking
    gate.set()
    await blocker
    with pytest.raises(SttSkipped):
        await spec
    assert whisper_tiny.jobs.runs == runs and whisper_tiny.backlog() == 0


async def test_waiting_jobs_run_as_one_batch_with_the_same_words(
        whisper_tiny: WhisperSTT, tmp_path: Path) -> None:
    """Four calls' utterances, each with its own prompt, in one batch: the same
    transcripts as one at a time (the shared model is not loaded again)."""
    batched = WhisperSTT(SttConfig(model="tiny.en", max_batch=4), tmp_path,
                         whisper_tiny.pool)
    names = ["conf-full", "conf-muted", "vm-enter-num-to-call", "agent-loginok"]
    prompts = [None, "mute, unmute", None, "agent login"]
    alone = [whisper_tiny.transcribe_sync(load_prompt(n)[0], p)
             for n, p in zip(names, prompts, strict=True)]
    gate = threading.Event()
    blocker = asyncio.ensure_future(whisper_tiny.pool.run_in_thread(gate.wait))
    await settle()
    jobs = [asyncio.ensure_future(batched.transcribe(load_prompt(n)[0], p))
            for n, p in zip(names, prompts, strict=True)]
    await settle()
    gate.set()
    together = await asyncio.gather(*jobs)
    await blocker
    assert batched.jobs.batches == 1 and batched.jobs.runs == 4
    assert [t.text for t in together] == [t.text for t in alone]
    for one, other in zip(together, alone, strict=True):
        assert one.no_speech_prob == pytest.approx(other.no_speech_prob, abs=1e-3)
        assert one.avg_logprob == pytest.approx(other.avg_logprob, abs=1e-3)


# --- speculative runs the session no longer starts ---------------------------------------


async def test_a_short_sound_over_the_agent_costs_no_whisper_run() -> None:
    """A cough over the reply ends as a backchannel without its words: no speculative
    transcript is started at its pause (one was, and thrown away, before)."""
    session, transport, _agent, rec = make_session(["Tell me."], ["One. Two. Three."])
    stt = session.stt
    assert isinstance(stt, FakeSTT)
    await session.start()
    await settle()
    await ack_all(session, transport)
    await feed(session, SPEECH + silence(1200))
    await settle()
    session.on_mark("r2:1")
    calls = stt.calls
    await feed(session, SPEECH[32 * 300 : 32 * 600] + silence(1000))  # 300 ms of speech
    await settle()
    assert len(rec.of_type("tts.resumed")) == 1
    assert stt.calls == calls


async def blocked(whisper: WhisperSTT, waiting: int) -> tuple[threading.Event, list[Any]]:
    """The STT pool busy and ``waiting`` other calls' final transcripts queued behind."""
    gate = threading.Event()
    held: list[asyncio.Future[Any]] = [
        asyncio.ensure_future(whisper.pool.run_in_thread(gate.wait))]
    await settle()
    held += [asyncio.ensure_future(whisper.transcribe(load_prompt("conf-full")[0]))
             for _ in range(waiting)]
    await settle()
    return gate, held


async def test_no_speculation_while_other_calls_wait(whisper_tiny: WhisperSTT) -> None:
    session, transport, recorder = real_session(whisper_tiny)
    await session.start()
    await settle()
    await ack_all(session, transport)
    gate, held = await blocked(whisper_tiny, session.config.stt.speculate_max_queue)
    await paced(session, silence(200) + PAUSED + silence(1500))
    gate.set()
    final = await finals(recorder)
    await asyncio.gather(*held)
    assert "accept" in final[0].data["text"].lower()
    assert final[0].data["stt_runs"] == 1  # the final one only
    assert session.listener.speculator.skipped >= 2  # a pause inside each option
    await session.close("test over")


async def test_a_speculative_job_the_caller_talked_over_is_dropped(
        whisper_tiny: WhisperSTT) -> None:
    """While the pool is busy, each pause queues a speculative job and the caller's next
    words make it useless: it is dropped unrun, only the turn's last one runs."""
    session, transport, recorder = real_session(whisper_tiny)
    session.listener.speculator.max_queue = 1000  # never skipped for a long queue
    await session.start()
    await settle()
    await ack_all(session, transport)
    gate, held = await blocked(whisper_tiny, 0)
    await paced(session, silence(200) + PAUSED)
    gate.set()
    await paced(session, silence(1500))
    final = await finals(recorder)
    await asyncio.gather(*held)
    assert "accept" in final[0].data["text"].lower()
    assert final[0].data["stt_runs"] == 1
    assert session.listener.speculator.skipped >= 2
    await session.close("test over")
