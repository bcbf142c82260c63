"""Every turn gets an answer or a deliberate action, in every path where a turn is merged,
carried, resumed or cut. CallSession with fake models and transport (fast, deterministic);
real speech drives the VAD. Whole calls: tests/agents/test_calls.py.
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
from voice.audio import ms_of
from voice.ports import Dtmf, HangUp, UserTurn
from voice.turns import TurnState


def spoken(rec: object) -> list[str]:
    return [e.data["text"] for e in rec.of_type("tts.started")]  # type: ignore[attr-defined]


async def test_a_merged_turn_replaces_the_turn_whose_answer_was_cut() -> None:
    session, transport, agent, rec = make_session(["That's all, thank you."], ["Goodbye!"])
    await session.start()
    await settle()
    await ack_all(session, transport)
    # the turn ends after 320 ms of silence and is answered; the caller goes on 150 ms later
    await feed(session, SPEECH + silence(470) + SPEECH + silence(1500))
    await settle()
    assert rec.of_type("turn.merged")[0].data["turn"] == 1
    first, merged = agent.items
    assert isinstance(first, UserTurn) and isinstance(merged, UserTurn)
    assert (first.index, first.supersedes) == (1, None)
    assert (merged.index, merged.supersedes) == (2, 1)
    assert rec.of_type("stt.final")[-1].data["supersedes"] == 1


async def test_a_turn_the_agent_answers_with_nothing_is_noticed_and_answered() -> None:
    session, transport, _agent, rec = make_session(["That's all. Goodbye."], [])
    await session.start()
    await settle()
    await ack_all(session, transport)
    await feed(session, SPEECH + silence(1200))
    await settle()
    assert [e.data["turn"] for e in rec.of_type("agent.silent")] == [1]
    assert spoken(rec)[-1] == session.config.turn.no_reply_text
    await ack_all(session, transport)
    assert session.turns.state is TurnState.LISTENING  # and the silence timer runs again


async def test_an_agent_that_fails_is_noticed_and_the_caller_answered() -> None:
    session, transport, agent, rec = make_session(["Book me in."], ["Never said."])
    agent.error = RuntimeError("agent bug")
    await session.start()
    await settle()
    await ack_all(session, transport)
    await feed(session, SPEECH + silence(1200))
    await settle()
    assert "agent bug" in rec.of_type("agent.error")[0].data["error"]
    assert spoken(rec)[-1] == session.config.turn.no_reply_text


async def test_a_short_sound_over_the_goodbye_still_hangs_up() -> None:
    session, transport, agent, rec = make_session(["Goodbye."], ["Goodbye."])
    agent.then = [HangUp("caller said goodbye")]
    await session.start()
    await settle()
    await ack_all(session, transport)
    await feed(session, SPEECH + silence(1200))
    await settle()
    # the goodbye is out, not yet played: the session waits for it before hanging up
    assert transport.marks == ["r2:1"] and transport.ended is None
    await feed(session, SPEECH[: 32 * 300] + silence(1000))  # a cough over it
    await settle()
    assert rec.of_type("tts.resumed")[0].data["text"] == "Goodbye."
    await ack_all(session, transport)
    assert transport.ended == "caller said goodbye"
    assert session.ended.is_set()


async def test_a_cough_before_the_answer_is_heard_does_not_lose_it() -> None:
    session, transport, _agent, rec = make_session(["Tell me."], ["One. Two."])
    await session.start()
    await settle()
    await ack_all(session, transport)
    tts = session.tts
    assert isinstance(tts, FakeTTS)
    tts.gate = asyncio.Event()  # the answer is slow to synthesise: nothing heard yet
    await feed(session, SPEECH + silence(1200))
    await feed(session, SPEECH[: 32 * 300] + silence(1000))  # well after the merge window
    await settle()
    assert rec.of_type("tts.interrupted")[0].data["cleared"] is False
    tts.gate.set()
    await settle()
    assert rec.of_type("tts.resumed")[0].data["why"] == "short"
    assert spoken(rec)[-2:] == ["One.", "Two."]


async def test_a_merged_turn_heard_as_nothing_still_answers_the_cut_words() -> None:
    session, transport, agent, rec = make_session(["I'd like a table."], ["One moment."])
    await session.start()
    await settle()
    await ack_all(session, transport)
    await feed(session, SPEECH + silence(470))
    stt = session.stt
    assert isinstance(stt, FakeSTT)
    stt.texts = [""]  # the whole was misheard as nothing (or noise followed)
    await feed(session, SPEECH[: 32 * 700] + silence(1500))
    await settle()
    assert rec.of_type("turn.merged")
    merged = agent.items[-1]
    assert isinstance(merged, UserTurn)
    assert (merged.text, merged.supersedes) == ("I'd like a table.", 1)


async def test_a_key_pressed_while_a_turn_is_transcribed_is_answered_after_it() -> None:
    session, transport, agent, rec = make_session(["Book me in."], ["Sure."])
    await session.start()
    await settle()
    await ack_all(session, transport)
    stt = session.stt
    assert isinstance(stt, FakeSTT)
    stt.gate = asyncio.Event()
    await feed(session, SPEECH + silence(1000))  # the turn has ended, whisper is busy
    session.on_dtmf("2")
    await settle()
    stt.gate.set()
    await settle()
    assert [type(i).__name__ for i in agent.items] == ["UserTurn", "Dtmf"]
    assert agent.items[-1] == Dtmf("2")
    replies = [e.data["reply_id"] for e in rec.of_type("agent.reply")]
    assert replies[-1] == "r3"  # the key's answer is the one left standing


async def test_after_a_merged_turn_the_silence_timer_and_hang_up_still_work() -> None:
    session, transport, _agent, rec = make_session(
        ["I'd like a table."], ["One moment."], reprompt_after_s=0.05, max_reprompts=1)
    await session.start()
    await settle()
    await ack_all(session, transport)
    await feed(session, SPEECH + silence(470) + SPEECH + silence(1500))
    await settle()
    assert rec.of_type("turn.merged")
    for _ in range(40):  # the caller says nothing more
        await ack_all(session, transport)
        if session.ended.is_set():
            break
        await asyncio.sleep(0.02)
    assert [e.data["count"] for e in rec.of_type("silence.reprompt")] == [1]
    assert transport.ended == "silence"


async def test_the_session_can_be_told_to_say_something_and_hang_up() -> None:
    session, transport, _agent, _rec = make_session(["Tell me."], ["One. Two."])
    await session.start()
    await settle()
    session.say("The server is going down. Goodbye.", hang_up="draining")
    await settle()
    assert transport.count("clear") == 1  # the greeting was cut
    await ack_all(session, transport)
    assert transport.ended == "draining" and session.ended.is_set()


async def test_a_short_piece_taken_for_a_backchannel_rejoins_the_words_after_it() -> None:
    # "Take a note:" (short, over the agent) (a breath) "send the report to Maria."
    session, transport, agent, rec = make_session(["Tell me."], ["One. Two. Three."])
    await session.start()
    await settle()
    await ack_all(session, transport)
    await feed(session, SPEECH + silence(1200))
    await settle()
    session.on_mark("r2:1")
    transport.marks.clear()
    stt = session.stt
    assert isinstance(stt, FakeSTT)
    stt.texts = ["Take a note: send the report to Maria."]
    await feed(session, SPEECH[32 * 300 : 32 * 700] + silence(400))
    await settle()
    assert rec.of_type("tts.resumed")[0].data["why"] == "short"
    await feed(session, SPEECH + silence(1200))
    await settle()
    assert rec.of_type("turn.rejoined")
    # whisper heard the short piece again with the rest, as one turn
    assert stt.audio_ms[-1] >= ms_of(SPEECH) + 300
    assert agent.turns[-1] == "Take a note: send the report to Maria."
