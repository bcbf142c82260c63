"""Answering early (voice.early): the agent gets a finished-looking turn as soon as its
speculative transcript is ready in the closing silence, its reply is made but held, and
heard only once the turn has ended with the same words; dropped unheard if the caller
goes on. CallSession with fake models and transport, real speech for the VAD
(tests/voice/fakes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from orchestration.log.events import EventRecorder
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
from voice.ports import AgentAction, AgentInput, Dtmf, HangUp, UserTurn
from voice.session import CallSession

TEXT = "This conference is locked."
# the prompt from its first loud frame: a caller going on at once, inside the pause
ON_AT_ONCE = SPEECH[next(i for i in range(0, len(SPEECH), 640)
                         if max(abs(int.from_bytes(SPEECH[j:j + 2], "little", signed=True))
                                for j in range(i, i + 640, 2)) > 3000):]


class EarlyAgent(ScriptedAgent):
    """Takes early turns; ``finished`` lists the inputs whose reply it streamed to the end."""

    early_turns = True

    def __init__(self, reply: list[str]) -> None:
        super().__init__(reply)
        self.finished: list[AgentInput] = []

    async def respond(self, item: AgentInput) -> AsyncIterator[AgentAction]:
        async for action in super().respond(item):
            yield action
        self.finished.append(item)


def early_session(reply: list[str], **turn: object
                  ) -> tuple[CallSession, FakeTransport, EarlyAgent, EventRecorder]:
    agent = EarlyAgent(reply)
    session, transport, _, rec = make_session([TEXT], reply, agent, **turn)
    return session, transport, agent, rec


def spoken(rec: object) -> list[str]:
    return [e.data["text"] for e in rec.of_type("tts.started")]  # type: ignore[attr-defined]


async def until_early(session: CallSession, rec: EventRecorder) -> None:
    """The caller's sentence, then silence until the agent gets it early (bounded)."""
    await feed(session, SPEECH)
    for _ in range(40):
        if rec.of_type("agent.early"):
            return
        await feed(session, silence(20))
        await settle()
    raise AssertionError("no early turn within 800 ms of silence")


async def greeted(session: CallSession, transport: FakeTransport) -> None:
    await session.start()
    await settle()
    await ack_all(session, transport)


async def test_the_agent_answers_early_and_is_heard_only_once_the_turn_ends() -> None:
    session, transport, agent, rec = early_session(["Got it."])
    await greeted(session, transport)
    sent = transport.count("audio")
    await until_early(session, rec)  # the transcript is ready: not yet 320 ms of silence
    [early] = [i for i in agent.items if isinstance(i, UserTurn)]
    assert early.text == TEXT and early.index == 1
    assert early.confirmed is not None and not early.confirmed.done()
    turn = session.config.turn
    silence_ms = rec.of_type("agent.early")[0].data["silence_ms"]
    assert turn.early_reply_ms <= silence_ms < turn.end_silence_ms
    # the reply is made, not sent: nothing more reached the caller, no turn yet
    assert transport.count("audio") == sent and spoken(rec) == ["Hello there."]
    assert not rec.of_type("stt.final")
    await feed(session, silence(turn.end_silence_ms - silence_ms + 20))  # the turn ends
    await settle()
    assert early.confirmed.result() is True
    [final] = rec.of_type("stt.final")
    assert final.data["text"] == TEXT and "early_ms" in final.data
    assert spoken(rec) == ["Hello there.", "Got it."]
    assert transport.count("audio") == sent + 1
    assert agent.items == [early] and agent.finished == [early]  # one agent turn, not two
    assert rec.of_type("turn.latency")  # measured from the caller's last voiced frame


async def test_a_caller_who_goes_on_never_hears_the_early_reply() -> None:
    session, transport, agent, rec = early_session(["Got it."])
    await greeted(session, transport)
    sent = transport.count("audio")
    await until_early(session, rec)
    early = agent.items[-1]
    assert isinstance(early, UserTurn) and early.confirmed is not None
    await feed(session, ON_AT_ONCE + silence(1200))  # the pause was inside their sentence
    await settle()
    assert early.confirmed.result() is False
    assert rec.of_type("agent.early_dropped")[0].data["why"] == "the caller went on"
    # the whole sentence is turn 1, answered once (early again, at its own pause); the
    # dropped reply was never sent
    finals = rec.of_type("stt.final")
    assert [e.data["turn"] for e in finals] == [1]
    turns = [i for i in agent.items if isinstance(i, UserTurn)]
    assert [(t.index, t.supersedes) for t in turns] == [(1, None), (1, None)]
    assert turns[-1].confirmed is not None and turns[-1].confirmed.result() is True
    assert spoken(rec) == ["Hello there.", "Got it."]
    assert transport.count("audio") == sent + 1


async def test_an_early_hang_up_waits_for_the_turn() -> None:
    session, transport, agent, rec = early_session([])
    agent.then = [HangUp("caller said goodbye")]
    await greeted(session, transport)
    await until_early(session, rec)
    assert transport.ended is None and not rec.of_type("call.hangup")
    await feed(session, ON_AT_ONCE + silence(1200))  # they went on: it never happened ...
    await settle()
    # ... and the turn they finished is answered (with its own hang-up)
    assert rec.of_type("agent.early_dropped")
    assert [e.data["reason"] for e in rec.of_type("call.hangup")] == ["caller said goodbye"]
    assert len(rec.of_type("stt.final")) == 1


async def test_a_key_drops_the_early_reply() -> None:
    session, transport, agent, rec = early_session(["Got it."])
    await greeted(session, transport)
    await until_early(session, rec)
    early = agent.items[-1]
    assert isinstance(early, UserTurn) and early.confirmed is not None
    session.on_dtmf("5")
    await settle()
    assert early.confirmed.result() is False
    assert rec.of_type("agent.early_dropped")[0].data["why"] == "a key or text came"
    assert isinstance(agent.items[-1], Dtmf)


async def test_no_early_turns_when_off_or_for_an_agent_that_cannot() -> None:
    for session, transport, agent, rec in (early_session(["Got it."], early_reply_ms=0),
                                           make_session([TEXT], ["Got it."])):
        await greeted(session, transport)
        await feed(session, SPEECH + silence(600))
        await settle()
        assert not rec.of_type("agent.early")
        assert [i.confirmed for i in agent.items if isinstance(i, UserTurn)] == [None]
        assert spoken(rec)[-1] == "Got it."


async def test_a_turn_that_does_not_read_finished_is_answered_early_before_its_longer_wait(
        ) -> None:
    session, transport, _agent, rec = early_session(["Go on."])
    assert isinstance(session.stt, FakeSTT)
    session.stt.texts = ["I would like to book and"]  # "and": the caller may go on
    await greeted(session, transport)
    await until_early(session, rec)
    turn = session.config.turn
    lead = turn.end_silence_ms - turn.early_reply_ms
    early = rec.of_type("agent.early")[0].data
    assert turn.end_silence_max_ms - lead <= early["silence_ms"] < turn.end_silence_max_ms
    assert not rec.of_type("stt.final")
    await feed(session, silence(lead + 40))
    await settle()
    assert rec.of_type("stt.final")[0].data["text"] == "I would like to book and"
    assert spoken(rec) == ["Hello there.", "Go on."]
