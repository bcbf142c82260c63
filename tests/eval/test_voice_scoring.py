"""Scoring one call from what the caller recorded: events grouped by the turn they
answer (a turn the recogniser splits in two stays one turn), WER per turn, intents,
expectations, and the audit against the log."""

from __future__ import annotations

from typing import Any

from gateway.evaluation.call_result import CallResult
from gateway.evaluation.report import RunRecord
from gateway.evaluation.scenario import Call
from gateway.evaluation.voice import by_turn, heard_text, score_call
from orchestration.log.events import Event
from orchestration.log.store import StoredEvent

TIMELINE: list[tuple[float, str, dict[str, Any]]] = [
    (0.1, "session.started", {}),
    (0.2, "agent.reply", {"reply_id": "r1", "text": "Hello, how can I help?"}),
    (0.3, "tts.started", {"reply_id": "r1"}),
    # turn 1 starts at 1.0; the recogniser splits "No, it didn't." in two
    (2.0, "stt.final", {"text": "No."}),
    (2.1, "nlu.result", {"intent": "deny", "slots": {}}),
    (2.2, "agent.turn", {"intent": "deny"}),
    (2.5, "stt.final", {"text": "It didn't."}),
    (2.6, "nlu.result", {"intent": "unknown", "slots": {}}),
    (2.7, "agent.turn", {"intent": "unknown"}),
    (2.8, "tool.called", {"agent": "support", "tool": "ticket.create"}),
    (2.9, "tool.succeeded", {"agent": "support", "tool": "ticket.queue"}),
    (3.0, "agent.reply", {"reply_id": "r2", "text": "I've opened ticket T 1 0 0 1."}),
    (3.1, "tts.started", {"reply_id": "r2"}),
    # turn 2 starts at 5.0
    (6.0, "stt.final", {"text": "Goodbye"}),
    (6.1, "nlu.result", {"intent": "goodbye", "slots": {}}),
    (6.2, "agent.reply", {"reply_id": "r3", "text": "Goodbye!"}),
    (6.3, "call.hangup", {"reason": "caller said goodbye"}),
    (6.4, "session.ended", {"reason": "agent hung up"}),
]


def recorded() -> tuple[CallResult, list[StoredEvent]]:
    result = CallResult(protocol="browser", url="ws://x", session_id="s1", ended_by="agent")
    result.add(1.0, "segment.started", index=0)
    result.add(5.0, "segment.started", index=1)
    logged = []
    for n, (t, type_, data) in enumerate(TIMELINE):
        result.add_event(t, Event(n + 1, 1000.0 + t, "s1", type_, data))
        logged.append(StoredEvent(50 + n, 1000.0 + t, "call:s1", n + 1, type_,
                                  {**data, "bus_seq": n + 1}))
    return result, logged


def test_events_are_grouped_by_the_turn_they_answer() -> None:
    result, _ = recorded()
    turns = by_turn(result, 2)
    assert [e.type for e in turns[0]].count("stt.final") == 2
    assert [e.data.get("text") for e in turns[1] if e.type == "stt.final"] == ["Goodbye"]
    assert not any(e.type == "session.started" for t in turns for e in t)  # the greeting


def test_a_call_is_scored_per_turn_and_against_its_expectations() -> None:
    call = Call.model_validate({"turns": [
        {"say": "No, it didn't.", "intent": "deny"},
        {"say": "Goodbye.", "intent": "goodbye"}],
        "expect": {"tools": ["ticket.queue"], "replies": ["opened ticket", "see you"],
                   "forbid_tools": ["ticket.create"], "ended_by": "agent", "transfer": ""}})
    result, logged = recorded()
    record = RunRecord("s", "a", "rt")
    part = score_call(record, call, result, logged, audited=True)
    assert record.transcripts == [("No, it didn't.", "No. It didn't."),
                                  ("Goodbye.", "Goodbye")]
    assert (record.wer_errors, record.wer_words) == (0, 4)
    assert (record.intents_correct, record.intents_expected) == (2, 2)  # first result
    assert record.outcome == ["reply 'see you' did not happen",
                              "tool ticket.create was used but is forbidden"]
    assert (record.done, record.required) == (4, 5)  # 1 tool, 1 of 2 replies, 2 turns
    assert record.audit == [] and record.policy == []
    assert part["tools"] == ["ticket.queue"] and part["ended_by"] == "agent"


def test_a_merged_turn_is_heard_once() -> None:
    """The caller paused after "Take a note." (a turn), then went on: the session merged
    the pieces, so the second final carries the first's words and supersedes it."""
    def ev(n: int, type_: str, **data: Any) -> Event:
        return Event(n, 1000.0 + n, "s1", type_, data)

    turn = [ev(1, "stt.final", text="Take a note."),
            ev(2, "nlu.result", intent="note_add", slots={}),
            ev(3, "turn.merged", reply_id="r2", gap_ms=0),
            ev(4, "stt.final", text="Take a note. Call Anna about the budget."),
            ev(5, "nlu.result", intent="note_add", slots={"note": "call Anna"}),
            ev(6, "stt.final", text="Thanks.")]  # a later piece without a merge adds on
    assert heard_text(turn) == "Take a note. Call Anna about the budget. Thanks."
    assert heard_text(turn[:3]) == "Take a note."
