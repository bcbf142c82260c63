"""A recogniser or a voice that raises mid-call: the caller hears an apology and the call
goes on. CallSession with fake models and transport (fast, deterministic); real speech
drives the VAD. The same faults with the real models through the real gateway:
tests/voice/test_faulty_calls.py.
"""

from __future__ import annotations

import asyncio

from tests.voice.fakes import (
    SPEECH,
    FakeSTT,
    FakeTTS,
    ack_all,
    feed,
    make_session,
    settle,
    silence,
)
from voice.ports import HangUp
from voice.replies import keep
from voice.turns import TurnState


def spoken(rec: object) -> list[str]:
    return [e.data["text"] for e in rec.of_type("tts.started")]  # type: ignore[attr-defined]


async def test_a_sentence_that_cannot_be_synthesised_is_an_apology_and_the_call_goes_on(
) -> None:
    session, transport, _agent, rec = make_session(
        ["Tell me."], ["One. Two. Three."], reprompt_after_s=0.05)
    tts = session.tts
    assert isinstance(tts, FakeTTS)
    tts.fails = lambda text: text == "Two."
    await session.start()
    await settle()
    await ack_all(session, transport)
    await feed(session, SPEECH + silence(1200))
    await settle()
    assert rec.of_type("tts.error")[0].data["text"] == "Two."
    apology = session.config.turn.tts_error_text
    # what was left of the reply would not make sense without "Two."
    assert spoken(rec)[-2:] == ["One.", apology]
    await ack_all(session, transport)
    assert session.turns.state is TurnState.LISTENING
    await asyncio.sleep(0.1)
    await settle()
    assert rec.of_type("silence.reprompt")


async def test_synthesis_down_for_good_still_apologises_and_hangs_up() -> None:
    session, transport, agent, rec = make_session(["Goodbye."], ["Goodbye."])
    agent.then = [HangUp("caller said goodbye")]
    tts = session.tts
    assert isinstance(tts, FakeTTS)
    keep(tts, session.config.turn.tts_error_text, b"\0\0" * 1600)  # made at start-up
    await session.start()
    await settle()
    await ack_all(session, transport)
    tts.fails = lambda _text: True
    await feed(session, SPEECH + silence(1200))
    await settle()
    assert rec.of_type("tts.apology")
    assert transport.ended is None  # the apology plays first
    await ack_all(session, transport)
    assert transport.ended == "caller said goodbye"


async def test_a_recogniser_failure_is_an_apology_and_the_next_turn_is_answered() -> None:
    session, transport, agent, rec = make_session(["Tell me."], ["Sure."])
    stt = session.stt
    assert isinstance(stt, FakeSTT)
    await session.start()
    await settle()
    await ack_all(session, transport)
    stt.failing = True
    await feed(session, SPEECH + silence(1200))
    await settle()
    assert rec.of_type("stt.error")
    said = [e.data["text"] for e in rec.of_type("agent.reply")]
    assert said[-1] == session.config.turn.stt_error_text
    await ack_all(session, transport)
    stt.failing = False
    await feed(session, SPEECH + silence(1200))
    await settle()
    assert agent.turns == ["Tell me."]
    assert spoken(rec)[-1] == "Sure."


async def test_a_failed_speculative_transcription_costs_no_turn() -> None:
    session, transport, agent, rec = make_session(["Tell me."], ["Sure."])
    stt = session.stt
    assert isinstance(stt, FakeSTT)
    await session.start()
    await settle()
    await ack_all(session, transport)
    stt.fail_next = 1  # the job started at the first pause
    await feed(session, SPEECH + silence(1200))
    await settle()
    assert agent.turns == ["Tell me."] and not rec.of_type("stt.error")
    assert stt.calls >= 2  # the turn's end transcribed it again


async def test_a_sentence_with_nothing_to_say_is_skipped_not_an_error() -> None:
    session, transport, _agent, rec = make_session(["Tell me."], ["One.", "...", "Two."])
    session.split = lambda text, _n: [text]
    await session.start()
    await settle()
    await ack_all(session, transport)
    await feed(session, SPEECH + silence(1200))
    await settle()
    assert spoken(rec)[-2:] == ["One.", "Two."] and not rec.of_type("tts.error")

