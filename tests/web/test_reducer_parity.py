"""The dashboard's reducer (JavaScript) and the server's session fold (Python) give the
same summary for the same events: for a real call's events and for agent events the
built-in agent does not emit (handoffs, tools, denials, escalations, workflows)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.api.sessions import fold_all
from tests.web.node import run_node

SUMMARY_KEYS = (
    "id", "protocol", "call_sid", "caller", "started_at", "ended_at", "end_reason", "state",
    "agent", "agents", "supervisor", "workflow", "turns", "barge_ins", "escalations",
    "denials", "tool_calls", "latency", "events", "last_seq", "updated_at", "live",
)


def _events() -> list[dict[str, Any]]:
    seq = 0

    def ev(session: str, type: str, **data: Any) -> dict[str, Any]:
        nonlocal seq
        seq += 1
        return {"seq": seq, "ts": 1000.0 + seq / 10, "session_id": session, "type": type,
                "data": data}

    return [
        ev("a", "session.started", protocol="twilio", call_sid="CA9", caller="+15550100"),
        ev("a", "agent.state", state="thinking", previous="idle"),
        ev("b", "session.started", protocol="browser", caller=None),
        ev("a", "agent.handoff", **{"from": "front_desk", "to": "scheduling"}),
        ev("a", "tool.called", tool="calendar.check"),
        ev("a", "tool.denied", tool="payments.refund"),
        ev("a", "workflow.started", run="r1", name="booking", version=1, input={}),
        ev("a", "workflow.transition", run="r1", workflow="booking", to="confirm"),
        ev("a", "workflow.transition", run="scheduling-1", workflow="scheduling",
           agent="scheduling", **{"from": "route", "to": "ask_date", "via": "default"}),
        ev("a", "tool.gave_up", agent="ops", tool="ops.restart", error="PermissionDenied: no"),
        ev("a", "tool.failed", tool="crm.lookup", attempt=1, error="ToolTimeout: 5 s"),
        ev("a", "memory.refused", kind="note", reason="card number"),
        ev("a", "stt.final", text="tuesday at three", turn=1),
        ev("a", "tts.interrupted", reply_id="r2", played_text="", unplayed_text="x"),
        ev("a", "turn.latency", reply_id="r2", total_ms=700.5, stt_ms=310.0, tts_ms=90.2),
        ev("a", "agent.handoff", **{"from": "scheduling", "to": "front_desk"}),
        ev("a", "call.escalated", target="human"),
        ev("b", "agent.state", state="listening", previous="thinking"),
        ev("a", "session.ended", reason="transferred", duration_ms=9000, turns=1),
    ]


def _compare(events: list[dict[str, Any]]) -> None:
    result = run_node("scripts/fold-events.js", stdin=json.dumps(events))
    assert result.returncode == 0, result.stderr
    js = json.loads(result.stdout)
    ids = sorted({e["session_id"] for e in events})
    assert sorted(js) == ids
    for sid in ids:
        py = fold_all(e for e in events if e["session_id"] == sid)
        assert py is not None
        assert {k: js[sid][k] for k in SUMMARY_KEYS} == {k: py[k] for k in SUMMARY_KEYS}, sid


def test_agent_events_fold_the_same_in_both() -> None:
    _compare(_events())


@pytest.mark.slow
def test_a_real_calls_events_fold_the_same_in_both(call_events: list[dict[str, Any]]) -> None:
    _compare(call_events)
