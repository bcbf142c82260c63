"""The checks on their own: word error rate, understanding, completeness, the audit of a
call's and a run's event stream, policy adherence, token counts."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.evaluation.checks import (
    audit_call,
    audit_run,
    missing_in_order,
    percentile,
    policy_violations,
    tokens_used,
    understanding,
    word_error_rate,
)
from orchestration.log.store import StoredEvent


def stream(name: str, *events: tuple[str, dict[str, Any]], bus: bool = True
           ) -> list[StoredEvent]:
    return [StoredEvent(100 + i, 0.0, name, i + 1, t, {**d, "bus_seq": 10 + i} if bus else d)
            for i, (t, d) in enumerate(events)]


GOOD_CALL = (
    ("session.started", {"protocol": "twilio"}),
    ("stt.final", {"text": "book tuesday"}),
    ("nlu.result", {"intent": "book"}),
    ("tool.called", {"agent": "scheduling", "tool": "calendar.check"}),
    ("tool.succeeded", {"agent": "scheduling", "tool": "calendar.check"}),
    ("agent.reply", {"reply_id": "r2", "text": "Tuesday at 3 PM, shall I book it?"}),
    ("tts.started", {"reply_id": "r2"}),
    ("agent.turn", {"intent": "book"}),
    ("agent.reply", {"reply_id": "r3", "text": "Goodbye!"}),
    ("call.hangup", {"reason": "caller said goodbye"}),
    ("session.ended", {"reason": "agent hung up"}),
)


@pytest.mark.parametrize(("ref", "hyp", "wer"), [
    ("Book Tuesday at three p.m.", "book tuesday at 3pm", 0.0),
    ("It is 3:30.", "it is three thirty", 0.0),
    ("call Anna about the budget", "call Hannah about budget", 0.4),
    ("hello", "", 1.0),
    ("", "", 0.0),
    # a word written closed or open is the same words (Moonshine writes "Good-bye.")
    ("Goodbye.", "Good-bye.", 0.0),
    ("I can't sign in", "I can't signin", 0.0),
    ("good bye", "goodbye now", 0.5),  # the extra word still counts
    ("good bye", "goodby", 1.0),  # a near miss is not a compound
])
def test_word_error_rate_normalizes_numbers_and_punctuation(ref: str, hyp: str,
                                                            wer: float) -> None:
    assert word_error_rate(ref, hyp) == pytest.approx(wer)


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)


def test_understanding_per_turn() -> None:
    u = understanding(
        [("book", {"date": "2026-12-01", "time": "re:1[45]:00"}), ("affirm", {}), (None, {})],
        [{"intent": "book", "slots": {"date": "2026-12-01", "time": "15:00"}},
         {"intent": "deny", "slots": {}}])
    assert (u.intents_expected, u.intents_correct) == (2, 1)
    assert (u.slots_expected, u.slots_correct) == (2, 2)
    assert u.mistakes == ["turn 2: intent 'deny', expected 'affirm'"]


def test_missing_in_order_is_a_subsequence_check() -> None:
    assert missing_in_order(["a", "b", "b"], ["a", "x", "b", "b"]) == []
    assert missing_in_order(["b", "a"], ["a", "b"]) == ["a"]
    assert missing_in_order(["z", "a"], ["a"]) == ["z"]


def test_a_complete_call_passes_the_audit() -> None:
    events = stream("call:s1", *GOOD_CALL)
    assert audit_call(events, [10, 11, 99]) == [
        "call:s1: 1 events the caller received are not in the log (bus seq [99])"]
    assert audit_call(events, [10, 11]) == []


def test_early_turns_pass_the_audit_answered_or_dropped() -> None:
    events = stream(
        "call:s1", ("session.started", {"protocol": "twilio"}),
        # the caller went on: the early reply was dropped unheard
        ("agent.early", {"reply_id": "r2", "turn": 1}),
        ("agent.reply", {"reply_id": "r2", "text": "Done."}),
        ("agent.early_dropped", {"reply_id": "r2", "why": "the caller went on"}),
        # the whole turn, got early again: its answer comes before its stt.final
        ("agent.early", {"reply_id": "r3", "turn": 1}),
        ("agent.reply", {"reply_id": "r3", "text": "Done."}), ("agent.turn", {}),
        ("stt.final", {"text": "yes please", "early_ms": 70}),
        ("tts.started", {"reply_id": "r3"}), ("session.ended", {}))
    assert audit_call(events) == []
    # and while the call is still going (nothing excused by its end)
    assert audit_call(events[:-1]) == ["call:s1: does not close with exactly one session.ended"]


def test_a_broken_call_log_is_named() -> None:
    events = stream("call:s1", *GOOD_CALL[:5], ("tool.called", {"agent": "x", "tool": "t"}),
                    ("agent.reply", {"reply_id": "r9", "text": "hi"}), ("stt.final", {}),
                    ("call.escalated", {}))
    del events[1]  # a gap
    assert audit_call(events) == [
        "call:s1: versions not contiguous (missing [2])",
        "call:s1: does not close with exactly one session.ended",
        "call:s1: tool.called (agent=x) at version 6 has no tool.gave_up/tool.succeeded",
        "call:s1: agent.reply r9 was never spoken or cut",
        "call:s1: call.escalated at version 9 has no call.transfer",
        "call:s1: stt.final at version 8 has no agent.reply/agent.turn",
    ]
    assert audit_call([]) == ["no events in the log for this call"]


def test_workflow_run_audit() -> None:
    good = stream("wf:1", ("workflow.started", {}), ("step.started", {"step": "a"}),
                  ("step.completed", {"step": "a"}), ("signal.received", {}),
                  ("workflow.transition", {}), ("workflow.completed", {"status": "failed"}),
                  bus=False)
    assert audit_run(good, {"status": "failed", "last_seq": 105}) == []
    cut = good[:2]
    assert audit_run(cut, {"status": "succeeded", "last_seq": 105}) == [
        "wf:1: step.started (step=a) at version 2 has no step.completed/step.failed",
        "wf:1: status succeeded but no workflow.completed event",
        "wf:1: view is at seq 105, log at 101",
    ]


def test_policy_a_denied_action_must_not_run() -> None:
    denied = "PermissionDenied: needs permissions not granted: ['ticket.write']"
    fine = [("tool.called", {"agent": "a", "tool": "t"}),
            ("tool.failed", {"agent": "a", "tool": "t", "error": denied}),
            ("tool.gave_up", {"agent": "a", "tool": "t", "error": denied}),
            ("memory.refused", {"kind": "note"}), ("agent.turn", {}),
            ("memory.write", {"kind": "note"})]
    assert policy_violations(fine) == []
    ran = [("tool.called", {"agent": "a", "tool": "t"}),
           ("policy.denied", {"agent": "a", "tool": "t", "rule": "no refunds"}),
           ("tool.succeeded", {"agent": "a", "tool": "t"}),
           ("memory.refused", {"kind": "note"}), ("memory.write", {"kind": "note"}),
           ("step.failed", {"step": "pay", "error": denied}),
           ("step.completed", {"step": "pay"})]
    assert policy_violations(ran) == [
        "event 2: t succeeded although it was denied",
        "event 4: memory.write of a note that was refused",
        "event 6: step pay completed after it was denied",
    ]


def test_tokens_from_events() -> None:
    assert tokens_used([{"usage": {"prompt_tokens": 10, "completion_tokens": 5}},
                        {"tokens": 7}, {"output": {"usage": {"total_tokens": 3}}},
                        {"text": "no model"}]) == 25
