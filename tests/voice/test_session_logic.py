"""Turn-taking logic of CallSession with fake STT/TTS/transport (fast, deterministic).

Real speech drives the VAD; only the models and the network are faked here. The real
models and the real server are exercised end to end in tests/gateway/test_calls.py.
"""

from __future__ import annotations

import asyncio

import pytest

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
from voice.turns import TurnState


async def test_greeting_then_turn_then_reply() -> None:
    session, transport, agent, rec = make_session(["I need help."], ["Sure. Ask away."])
    await session.start()
    await settle()
    assert transport.count("audio") == 1 and transport.marks == ["r1:1"]
    assert session.turns.state is TurnState.AGENT_SPEAKING
    await ack_all(session, transport)
    assert session.turns.state.value == "listening"  # (mypy narrowed the state above)

    await feed(session, silence(200) + SPEECH + silence(1200))
    await settle()
    assert agent.turns == ["I need help."]
    final = rec.of_type("stt.final")
    assert [e.data["text"] for e in final] == ["I need help."]
    assert final[0].data["audio_ms"] >= ms_of(SPEECH) - 400
    assert transport.count("audio") == 3  # greeting + two sentences
    assert transport.count("clear") == 0
    states = [e.data["state"] for e in rec.of_type("agent.state")]
    assert states[:3] == ["thinking", "agent_speaking", "listening"]
    assert "user_speaking" in states
    await session.close("test over")
    assert rec.of_type("session.ended")[0].data["reason"] == "test over"


async def test_the_agents_vocabulary_goes_with_every_utterance() -> None:
    session, transport, agent, _rec = make_session(["Read me my notes."], ["Here they are."])
    stt = session.stt
    assert isinstance(stt, FakeSTT)
    await session.start()
    await settle()
    await ack_all(session, transport)
    await feed(session, silence(200) + SPEECH + silence(1200))
    await settle()
    assert stt.prompts and set(stt.prompts) == {None}  # an agent without one: no prompt

    agent.stt_prompt = "Take a note. Read my notes."  # type: ignore[attr-defined]
    await ack_all(session, transport)
    await feed(session, SPEECH + silence(1200))
    await settle()
    assert agent.turns == ["Read me my notes.", "Read me my notes."]
    assert stt.prompts[-1] == "Take a note. Read my notes."
    await session.close("test over")


async def test_barge_in_clears_and_records_what_was_played() -> None:
    session, transport, _agent, rec = make_session(
        ["Stop, I want something else."], ["One. Two. Three."]
    )
    await session.start()
    await settle()
    await ack_all(session, transport)
    await feed(session, SPEECH + silence(1200))
    await settle()
    # the reply's three sentences were sent; the far end has played only the first
    assert transport.marks == ["r2:1", "r2:2", "r2:3"]
    session.on_mark("r2:1")
    transport.marks.clear()
    await feed(session, SPEECH[: 32 * 300])  # the caller talks over the agent
    await settle()
    assert transport.count("clear") == 1
    interrupted = rec.of_type("tts.interrupted")[0].data
    assert interrupted["played_text"] == "One."
    assert interrupted["unplayed_text"] == "Two. Three."
    assert session.turns.state is TurnState.USER_SPEAKING
    # marks Twilio echoes for the cleared audio do not count as played
    session.on_mark("r2:2")
    await feed(session, SPEECH[32 * 300 :] + silence(1200))
    await settle()
    assert rec.of_type("tts.resumed") == []
    assert len(rec.of_type("stt.final")) == 2


async def test_short_sound_over_agent_resumes_the_reply() -> None:
    session, transport, _agent, rec = make_session(["Tell me."], ["One. Two. Three."])
    await session.start()
    await settle()
    await ack_all(session, transport)
    await feed(session, SPEECH + silence(1200))
    await settle()
    session.on_mark("r2:1")
    transport.marks.clear()
    before = transport.count("audio")
    await feed(session, SPEECH[32 * 300 : 32 * 600] + silence(1000))  # 300 ms of speech
    await settle()
    resumed = rec.of_type("tts.resumed")
    assert len(resumed) == 1 and resumed[0].data["text"] == "Two. Three."
    assert transport.count("audio") == before + 2
    assert len(rec.of_type("stt.final")) == 1  # the cough was not a turn


async def test_backchannel_words_resume_the_reply() -> None:
    session, transport, _agent, rec = make_session(
        ["Tell me."], ["One. Two."], backchannel_max_ms=200
    )
    await session.start()
    await settle()
    await ack_all(session, transport)
    await feed(session, SPEECH + silence(1200))
    await settle()
    stt = session.stt
    assert isinstance(stt, FakeSTT)
    stt.texts = ["Mm-hmm."]
    await feed(session, SPEECH + silence(1200))
    await settle()
    assert rec.of_type("stt.backchannel")[0].data["text"] == "Mm-hmm."
    assert rec.of_type("tts.resumed")[0].data["text"] == "One. Two."


async def test_no_clear_when_nothing_was_sent_yet() -> None:
    session, transport, _agent, rec = make_session(["x."], ["Reply."])
    gate = asyncio.Event()
    tts = session.tts
    assert isinstance(tts, FakeTTS)

    async def slow_synthesize(text: str) -> bytes:
        await gate.wait()
        return b"\0\0" * 160

    tts.synthesize = slow_synthesize  # type: ignore[method-assign]
    await session.start()
    # the greeting is still being synthesised (nothing sent) when the caller speaks
    await feed(session, SPEECH[: 32 * 300])
    await settle()
    gate.set()
    await settle()
    assert transport.count("clear") == 0
    assert transport.count("audio") == 0
    assert rec.of_type("tts.interrupted")[0].data["cleared"] is False


async def test_silence_reprompts_then_hangs_up() -> None:
    session, transport, _agent, rec = make_session([], [], reprompt_after_s=0.05, max_reprompts=2)
    await session.start()
    for _ in range(40):
        await settle()
        await ack_all(session, transport)
        if session.ended.is_set():
            break
        await asyncio.sleep(0.02)
    assert [e.data["count"] for e in rec.of_type("silence.reprompt")] == [1, 2]
    assert len(rec.of_type("silence.timeout")) == 1
    assert transport.ended == "silence"
    assert session.ended.is_set()
    assert "silence" in rec.of_type("session.ended")[0].data["reason"]


async def test_speech_resets_the_reprompt_count() -> None:
    session, transport, _agent, rec = make_session(
        ["Hi."], ["Ok."], reprompt_after_s=0.3, max_reprompts=1
    )
    await session.start()
    await settle()
    await ack_all(session, transport)
    await feed(session, SPEECH + silence(1200))
    await settle()
    await ack_all(session, transport)
    await asyncio.sleep(0.4)
    await settle()
    assert len(rec.of_type("silence.reprompt")) == 1
    assert not session.ended.is_set()


@pytest.mark.parametrize(
    ("text", "finished"),
    [
        ("I want to book an appointment.", True),
        ("What time is it?", True),
        ("I want to book an appointment and", False),
        ("I'd like the", False),
        ("So, um...", False),
        ("Tomorrow at", False),
        ("", False),
        # a turn ending in digits is finished (it used to read as ending on "is")
        ("The alarm code is 4321.", True),
        ("Book me Tuesday at 3.", True),
        ("My number is 415,", False),
        # "in" and "on" as a verb's particle, and a question's stranded preposition
        ("I still can't log in.", True),
        ("The router won't turn on.", True),
        ("Who am I speaking to?", True),
        ("What's that charge for?", True),
        ("I logged in to", False),
        ("I'm calling about", False),
        ("Can you put me on", False),
        ("Where did you send it to", False),
    ],
)
def test_sounds_finished(text: str, finished: bool) -> None:
    from voice.turns import sounds_finished

    assert sounds_finished(text) is finished


async def test_dtmf_interrupts_the_agent_and_reaches_it() -> None:
    session, transport, _agent, rec = make_session([], ["You pressed it."])
    await session.start()
    await settle()
    assert transport.marks  # the greeting is out and not yet played
    session.on_dtmf("5")
    await settle()
    assert transport.count("clear") == 1
    assert rec.of_type("dtmf.received")[0].data["digit"] == "5"
    assert [e.data["text"] for e in rec.of_type("agent.reply")][-1] == "You pressed it."


async def test_audio_levels_for_the_dashboard() -> None:
    session, transport, _agent, rec = make_session(["Hi."], ["Ok."])
    await session.start()
    await settle()
    await ack_all(session, transport)
    await feed(session, silence(1000) + SPEECH + silence(1200))
    await settle()
    caller = [e.data for e in rec.of_type("audio.levels") if e.data["dir"] == "in"]
    agent = [e.data for e in rec.of_type("audio.levels") if e.data["dir"] == "out"]
    assert caller and all(len(d["levels"]) == 6 and d["hop_ms"] == 40 for d in caller)
    assert max(max(d["levels"]) for d in caller) > 0.4  # real speech is loud
    # nothing is metered while the line is silent: at most the speech and its tail
    assert len(caller) * 240 <= ms_of(SPEECH) + 1200 + 240
    assert {d["reply_id"] for d in agent} == {"r1", "r2"}


async def test_a_short_final_phrase_ends_the_turn_quickly() -> None:
    session, transport, agent, rec = make_session(["Goodbye."], ["Bye."])
    await session.start()
    await settle()
    await ack_all(session, transport)
    await feed(session, SPEECH + silence(1500))
    await settle()
    stopped = rec.of_type("vad.speech_stopped")[0].data
    assert stopped["silence_ms"] <= session.config.turn.end_silence_ms + 40
    assert agent.turns == ["Goodbye."]


async def test_an_unfinished_sentence_waits_for_the_longer_silence() -> None:
    session, transport, agent, rec = make_session(["I want to book an appointment for"], ["Ok."])
    await session.start()
    await settle()
    await ack_all(session, transport)
    turn = session.config.turn
    # a breath, not the end: longer than the short silence, shorter than the long one
    await feed(session, SPEECH + silence((turn.end_silence_ms + turn.end_silence_max_ms) // 2))
    await settle()
    assert agent.turns == [] and not rec.of_type("vad.speech_stopped")
    await feed(session, silence(600))
    await settle()
    stopped = rec.of_type("vad.speech_stopped")[0].data
    assert stopped["silence_ms"] >= session.config.turn.end_silence_max_ms
    assert len(agent.turns) == 1


async def test_carrying_on_at_once_makes_one_turn() -> None:
    session, transport, agent, rec = make_session(["I'd like a table."], ["One moment."])
    await session.start()
    await settle()
    await ack_all(session, transport)
    # the turn ends after 320 ms of silence; the caller goes on 150 ms later
    await feed(session, SPEECH + silence(470) + SPEECH + silence(1500))
    await settle()
    merged = rec.of_type("turn.merged")
    assert merged and merged[0].data["gap_ms"] <= session.config.turn.merge_window_ms
    # whisper hears both pieces again as one utterance (its text is the whole turn's)
    stt = session.stt
    assert isinstance(stt, FakeSTT)
    assert stt.audio_ms[-1] >= 2 * ms_of(SPEECH)
    finals = rec.of_type("stt.final")
    assert finals[-1].data["audio_ms"] >= 2 * ms_of(SPEECH)
    assert agent.turns[-1] == "I'd like a table."
    assert not rec.of_type("tts.resumed")


@pytest.mark.parametrize(
    ("text", "finished"),
    [
        # Moonshine's habit: a finished short turn ends with a comma or nothing
        ("No,", True),
        ("Please enter the conference pin number", True),
        ("Book me Tuesday at 3,", True),
        # the last word and an explicit trailing-off still decide
        ("I want to book an appointment and,", False),
        ("I'd like the", False),
        ("So, um...", False),
        ("Tomorrow at", False),
        ("My number is:", False),
        ("", False),
        (",", False),
        ("Agent logged in", True),
        ("Which folder should I save this message to?", True),
        ("Which folder should I save this message to", False),
        ("Save this message to", False),
        # a hyphenated last word is one word: Moonshine wrote "Care, good-by." for
        # "Cheers, goodbye." (its "by" is not a preposition waiting for its noun)
        ("Care, good-by.", True),
        ("Bye-bye", True),
        ("I need a follow-up", True),
        ("Put it in the to-", False),
    ],
)
def test_sounds_finished_without_trusting_punctuation(text: str, finished: bool) -> None:
    from voice.turns import sounds_finished

    assert sounds_finished(text, trust_punctuation=False) is finished
    if text.endswith(",") or (text and text[-1].isalnum()):
        assert not sounds_finished(text)  # whisper's comma or missing stop: not finished


def test_the_recogniser_decides_whether_punctuation_is_trusted() -> None:
    from voice.config import VoiceConfig
    from voice.listener import Listener

    def listener(**overrides: object) -> Listener:
        config = VoiceConfig.model_validate(overrides)
        return Listener(config, None, lambda *a, **k: None, None, lambda: None,  # type: ignore[arg-type]
                        lambda: False, lambda e: None, None)  # type: ignore[arg-type]

    assert listener(stt={"model": "tiny.en"}).trust_punctuation
    assert not listener().trust_punctuation  # Moonshine, the default
    assert not listener(stt={"model": "moonshine-base"}).trust_punctuation
    assert listener(stt={"model": "moonshine-base"},
                    turn={"trust_punctuation": True}).trust_punctuation
