"""Turns the caller carried on after the agent had started answering.

The voice session cuts the reply and hands the agent the whole sentence as one turn that
supersedes the cut one (``UserTurn.supersedes``); the agent undoes what the cut turn did
to the conversation and answers the whole. A turn that reaches the agent after it said
goodbye (the caller cut the goodbye, so the hang-up never happened) is answered too.
Real NLU, flows and stores, as in ``helpers.Line``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.evaluation.line import Line, make_system
from gateway.evaluation.loopback import LoopbackHttp
from orchestration.agents.agent import HangUp, Say, Transfer, UserTurn
from tests.agents.test_llm_agent import FakeModel, llm


async def answer(line: Line, text: str, supersedes: int | None = None) -> str:
    """One caller turn, as the session gives it after a merge (``supersedes``)."""
    line.turns += 1
    said = []
    async for action in line.agent.respond(UserTurn(text, 1000, line.turns, supersedes)):
        line.actions.append(action)
        if isinstance(action, Say):
            said.append(action.text)
    return " ".join(said)


async def test_a_goodbye_merged_with_its_second_half_still_says_goodbye_and_hangs_up(
        tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    await line.greet()
    assert "Goodbye" in await answer(line, "That's all, thank you.")
    assert isinstance(line.actions[-1], HangUp)
    # "Goodbye." came 0.7 s later: the reply above was cut, the whole is one turn
    said = await answer(line, "That's all. Thank you. Goodbye.", supersedes=1)
    assert "Goodbye" in said
    assert isinstance(line.actions[-1], HangUp)
    assert line.events("agent.rollback") == [{"turn": 2, "superseded": 1}]


async def test_a_turn_after_a_cut_goodbye_is_answered(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    await line.say("Goodbye.")
    assert isinstance(line.actions[-1], HangUp)
    # the caller talked over the goodbye, so the hang-up never happened: they are still here
    said = await line.say("Wait, one more thing: book me on Tuesday at 3 PM.")
    assert "shall I book it?" in said
    assert line.events("agent.reopened") == [{"after": "goodbye"}]


async def test_a_turn_after_a_cut_transfer_is_answered(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    await line.say("I want to talk to a human.")
    assert isinstance(line.actions[-1], Transfer)
    assert "What day would you like?" in await line.say("Actually, I'll book an appointment.")


async def test_a_merged_turn_does_not_count_the_cut_half_as_a_failure(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    assert "Sorry, I didn't get that" in await answer(line, "Sing me a song.")
    said = await answer(line, "Sing me a song about the sea.", supersedes=1)
    # one failed turn, not two: no escalation
    assert "Sorry, I didn't get that" in said
    assert not line.events("call.escalated")
    assert [e["count"] for e in line.events("agent.failure")] == [1, 1]


async def test_a_merged_turn_answers_from_where_the_cut_turn_started(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    assert "Monday at 10 AM, shall I book it?" in await answer(line, "Book me on Monday at 10 AM.")
    # "No." (a breath) "problem, go ahead.": the cut half alone moved the booking to
    # "which day and time instead?"; the whole sentence is a yes to the read-back
    assert "Which day and time" in await answer(line, "No.")
    said = await answer(line, "No problem, go ahead.", supersedes=2)
    assert "You're booked for Monday at 10 AM" in said
    assert line.events("agent.rollback") == [{"turn": 3, "superseded": 2}]


async def test_a_superseded_turn_the_agent_never_saw_is_answered_plainly(
        tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    said = await answer(line, "Book me on Monday at 10 AM.", supersedes=7)
    assert "Monday at 10 AM, shall I book it?" in said
    assert not line.events("agent.rollback")


async def test_the_model_backend_undoes_a_superseded_turn_and_reopens_after_a_transfer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXGATE_TEST_LLM_KEY", "sk-test")
    model = FakeModel([{"role": "assistant", "content": "Hello! What can I do?"},
                       {"role": "assistant", "content": "Which day would suit you?"},
                       {"role": "assistant", "content": "Sure, what else?"}])
    with LoopbackHttp({"/v1/chat/completions": model}) as server:
        sys_, rec = make_system(tmp_path, overrides=llm(f"{server.url}/v1"))
        line = Line(sys_, rec)
        assert await answer(line, "Hello there.") == "Hello! What can I do?"
        said = await answer(line, "Hello there, I'd like an appointment.", supersedes=1)
        assert said == "Which day would suit you?"
        assert isinstance(line.actions[-1], Say)
        await answer(line, "I want to talk to a human.")
        assert isinstance(line.actions[-1], Transfer)
        # the caller cut the transfer: the model hears them, not silence
        assert await answer(line, "Wait, one more question.") == "Sure, what else?"
    asked = [[m["content"] for m in r["messages"] if m["role"] == "user"]
             for r in model.requests]
    # the cut turn and its answer are gone from what the model is told
    assert asked[1] == ["Hello there, I'd like an appointment."]
    assert line.events("agent.reopened") == [{"after": "transfer"}]
