"""The OpenAI-compatible backend against a fake chat-completions server on loopback:
the model's tool calls run on our tools; booking still needs the caller's yes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.evaluation.checks import tokens_used
from gateway.evaluation.line import Line, make_system
from gateway.evaluation.loopback import LoopbackHttp
from orchestration.agents.agent import Transfer


class FakeModel:
    """Scripted answers: a list of assistant messages, one per chat request."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.requests: list[Any] = []

    def __call__(self, n: int, body: Any) -> tuple[int, Any]:
        self.requests.append(body)
        if n > len(self.answers):
            return 500, {"error": "script exhausted"}
        return 200, {"choices": [{"message": self.answers[n - 1]}],
                     "usage": {"prompt_tokens": 300 + n, "completion_tokens": 20,
                               "total_tokens": 320 + n}}


def call(name: str, args: dict[str, Any], ident: str = "c1") -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [{
        "id": ident, "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)}}]}


def llm(url: str) -> dict[str, Any]:
    return {"nlu": {"backend": "llm"}, "llm": {"base_url": url, "model": "tiny",
                                               "api_key_env": "VOXGATE_TEST_LLM_KEY"}}


async def test_model_books_only_after_the_callers_yes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXGATE_TEST_LLM_KEY", "sk-test")
    model = FakeModel([call("calendar__book", {"date": "2026-12-01", "time": "15:00"})])
    with LoopbackHttp({"/v1/chat/completions": model}) as server:
        sys_, rec = make_system(tmp_path, overrides=llm(f"{server.url}/v1"))
        line = Line(sys_, rec)
        said = await line.say("Book me in for Tuesday at three p.m.")
        assert said == "Tuesday at 3 PM, shall I book it?"
        assert sys_.calendar.all() == []
        said = await line.say("Yes please.")
    assert said == "Done. You're booked for Tuesday at 3 PM."
    assert [(b["day"], b["time"], b["caller"]) for b in sys_.calendar.all()] == [
        ("2026-12-01", "15:00", "+15005550006")]
    request = model.requests[0]
    assert request["model"] == "tiny" and request["messages"][0]["role"] == "system"
    names = {t["function"]["name"] for t in request["tools"]}
    assert {"calendar__check", "calendar__book", "ticket__create", "ops__probe",
            "memory__remember", "escalate"} <= names
    assert server.bodies[0]["auth"] == "Bearer sk-test"
    assert [e["tool"] for e in line.events("tool.succeeded")] == [
        "calendar.check", "calendar.book"]


async def test_model_uses_tools_and_speaks_the_answer(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"payments": {"status": "up"}}))
    model = FakeModel([call("ops__probe", {"service": "payments"}),
                       {"role": "assistant", "content": "Payments is up and running."}])
    with LoopbackHttp({"/v1/chat/completions": model}) as server:
        sys_, rec = make_system(tmp_path, overrides={
            **llm(f"{server.url}/v1"), "ops": {"status_file": str(status)}})
        line = Line(sys_, rec)
        said = await line.say("Is the payment service up? My card is 4111 1111 1111 1111.")
    assert said == "Payments is up and running."
    tool_msg = model.requests[1]["messages"][-1]
    assert tool_msg["role"] == "tool" and json.loads(tool_msg["content"])["status"] == "up"
    user = next(m for m in model.requests[0]["messages"] if m["role"] == "user")
    assert "4111" not in user["content"]  # secrets are redacted before they leave
    # each completion's cost is an event, which the evaluation harness sums per call
    usage = line.events("llm.usage")
    assert [(u["model"], u["total_tokens"]) for u in usage] == [("tiny", 321), ("tiny", 322)]
    assert all(u["ms"] > 0 for u in usage)
    assert tokens_used(usage) == 643


async def test_model_failure_and_escalation_policies(tmp_path: Path) -> None:
    model = FakeModel([])  # every request fails
    with LoopbackHttp({"/v1/chat/completions": model}) as server:
        sys_, rec = make_system(tmp_path, overrides=llm(f"{server.url}/v1"))
        line = Line(sys_, rec)
        assert "Sorry" in await line.say("hello there")
        await line.say("anyone?")
        assert line.events("call.escalated")[0]["reason"] == "repeated failure"
        other = Line(sys_, rec)
        await other.say("I want to talk to a human")  # no model needed for that
        assert isinstance(other.actions[-1], Transfer)
    assert len(line.events("llm.failed")) == 2
