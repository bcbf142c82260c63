"""The optional language-model backend: an OpenAI-compatible chat model with tool calls
(Ollama, vLLM, llama.cpp server, ...) in place of the local NLU and flows, chosen by
``nlu.backend: llm`` and configured under ``llm:`` like ``orchestration/patterns/llm.py``.

The model gets the same tools the flows use (names with ``.`` written ``__``, as the
function-name grammar wants) and the same policies hold, enforced here rather than
hoped for from the prompt:

* bookings, moves and cancellations are confirmed: a call to ``calendar.book``,
  ``calendar.move`` or ``calendar.cancel`` is not run; the slot is read back ("Tuesday at
  3 PM, shall I book it?") and only a yes, judged by the local NLU, runs it;
* escalation: DTMF 0, a request for a person (local NLU, as with the local backend) or
  the model's ``escalate`` tool; a model or tool failing ``max_failures`` times in a row
  escalates too;
* memory goes through the call's router (secrets refused), the caller id is filled in
  by us, never by the model, and turns sent to the model pass the redactor (cards,
  phones, codes, said as digits or as words);
* every tool call runs on the orchestration ``ToolRunner`` (breakers, time boxes) with
  the usual ``tool.called`` / ``tool.succeeded`` / ``tool.failed`` events.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx

from memory.redact import redact_text
from orchestration.agents.agent import AgentAction, AgentInput, CallInfo, Dtmf, Say, UserTurn
from orchestration.agents.config import AgentsConfigError
from orchestration.agents.context import AgentContext
from orchestration.agents.nlu.parser import NluResult
from orchestration.agents.supervisor import SUPERVISOR, Supervisor
from orchestration.log.store import View
from orchestration.patterns.breaker import BreakerOpen
from orchestration.patterns.bulkhead import BulkheadFull
from orchestration.patterns.llm import read_usage
from orchestration.patterns.runner import describe
from orchestration.patterns.tools import ToolError

CONFIRM = {"calendar.book": "book", "calendar.move": "move", "calendar.cancel": "cancel"}
PERMISSIONS = ["calendar.read", "calendar.write", "support.read", "ticket.write", "ops.read",
               "notes.read"]
_LOCAL = {
    "memory.remember": ("Remember a note or fact for this caller (never secrets).",
                        {"kind": {"type": "string", "enum": ["note", "fact"]},
                         "text": {"type": "string"}}),
    "memory.recall": ("Read this caller's recent notes or facts.",
                      {"kind": {"type": "string", "enum": ["note", "fact", "booking", "ticket"]},
                       "query": {"type": "string"}}),
    "escalate": ("Hand the call to a human colleague.", {"reason": {"type": "string"}}),
}


def wire_name(tool: str) -> str:
    return tool.replace(".", "__")


class LlmError(Exception):
    """The model could not be asked or gave an unusable answer."""


class LlmBrain:
    """The model client and the tool catalogue shared by all calls."""

    def __init__(self, context: AgentContext, http: httpx.AsyncClient | None = None) -> None:
        cfg = context.config.llm
        if not cfg.base_url:
            raise AgentsConfigError(context.source, [("llm.base_url",
                                                     "nlu.backend 'llm' needs llm.base_url")])
        self.config = cfg
        self.base_url = cfg.base_url.rstrip("/")
        self.http = http
        self.api_key = os.environ.get(cfg.api_key_env, "")
        tools = sorted({t for f in context.flows.values() for st in f.states.values()
                        for t in [getattr(st, "tool", None), *getattr(st, "fallbacks", [])]
                        if t and t in context.registry and t not in _LOCAL
                        and t not in ("ticket.queue", "ops.cached")})
        self.tools = tools
        self.specs: list[dict[str, Any]] = []
        for name in tools:
            tool = context.registry.get(name)
            schema = tool.input_model.model_json_schema()
            schema.get("properties", {}).pop("caller", None)
            if "required" in schema:
                schema["required"] = [r for r in schema["required"] if r != "caller"]
            self.specs.append({"type": "function", "function": {
                "name": wire_name(name), "description": tool.description, "parameters": schema}})
        for name, (description, props) in _LOCAL.items():
            self.specs.append({"type": "function", "function": {
                "name": wire_name(name), "description": description,
                "parameters": {"type": "object", "properties": props}}})
        self.names = {wire_name(n): n for n in [*tools, *_LOCAL]}

    async def chat(self, messages: list[dict[str, Any]],
                   on_usage: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """One completion; ``on_usage`` gets the tokens it cost (``llm.usage``)."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {"model": self.config.model, "temperature": 0, "messages": messages,
                "tools": self.specs, "tool_choice": "auto"}
        client = self.http or httpx.AsyncClient(timeout=self.config.timeout_s)
        started = time.perf_counter()
        try:
            resp = await client.post(f"{self.base_url}/chat/completions",
                                     json=body, headers=headers, timeout=self.config.timeout_s)
            resp.raise_for_status()
            answer = resp.json()
            message = answer["choices"][0]["message"]
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise LlmError(f"{type(exc).__name__}: {exc}") from None
        finally:
            if self.http is None:
                await client.aclose()
        if not isinstance(message, dict):
            raise LlmError("the answer has no message")
        if on_usage is not None:
            on_usage({"model": self.config.model, **(read_usage(answer) or {}),
                      "ms": round((time.perf_counter() - started) * 1e3, 1)})
        return message


class LlmSupervisor(Supervisor):
    """The supervisor with the model deciding what to do; policies stay ours."""

    TURN_STATE = ("pending", "history")  # undone with the rest for a superseded turn
    # no early turns: each would cost a model call, and the model's memory tools act at once
    early_turns = False

    def __init__(self, call: CallInfo, context: AgentContext, brain: LlmBrain,
                 resume: View | None = None) -> None:
        super().__init__(call, context, resume)
        self.brain = brain
        self.pending: tuple[str, dict[str, Any], str] | None = None  # tool, input, call id
        self.history: list[dict[str, Any]] = []

    def _system_prompt(self) -> str:
        name = self.caller.get("name")
        return (
            "You are the front desk of a phone line: customer support (connectivity, login, "
            "billing; walk through steps, open tickets), appointments (check a slot before "
            "booking, read it back), notes and follow-ups, and service status. Answer in one "
            "or two short spoken sentences, no lists or markdown. Use the tools for facts. "
            f"Today is {self.sys.today().isoformat()} ({self.sys.today():%A}). Dates are "
            "YYYY-MM-DD, times HH:MM (24 h). "
            + (f"The caller's name is {name}. " if name else "")
            + "Services: " + ", ".join(self.sys.spoken_services) + "."
        )

    async def respond(self, item: AgentInput) -> AsyncIterator[AgentAction]:
        if isinstance(item, Dtmf) or not isinstance(item, UserTurn):
            async for a in super().respond(item):
                yield a
            return
        await self._begin(item)  # undo a superseded turn; a turn after a cut transfer reopens
        started = time.perf_counter()
        local = self.sys.nlu.parse(item.text, ("affirm", "deny") if self.pending else ())
        self.emit("nlu.result", {**local.to_event(), "backend": "llm"})
        self.memory.heard(item.text, local.intent)
        async for a in self._llm_turn(item.text, local):
            if isinstance(a, Say):
                self.memory.said(a.text)
            yield a
        self.emit("agent.turn", {"intent": local.intent, "agent": "llm",
                                 "ms": round((time.perf_counter() - started) * 1e3, 3)})

    async def _llm_turn(self, text: str, local: NluResult) -> AsyncIterator[AgentAction]:
        if local.intent == "escalate" and local.confidence >= self.config.interrupt_confidence:
            async for a in self._escalate("caller asked for a person"):
                yield a
            return
        if local.intent == "tell_name" and isinstance(local.slots.get("name"), str):
            self.router.set_name(local.slots["name"])  # memory.write: the name is known
        confirmed = await self._answer_pending(local)
        if confirmed is not None:
            yield confirmed
            return
        self.history.append({"role": "user", "content": redact_text(text)})
        for _ in range(self.brain.config.max_tool_rounds):
            messages = [{"role": "system", "content": self._system_prompt()}, *self.history[-16:]]
            try:
                message = await self.brain.chat(
                    messages, lambda usage: self.emit("llm.usage", usage))
            except LlmError as exc:
                self.emit("llm.failed", {"error": str(exc)})
                async for a in self._failure("llm error"):
                    yield a
                return
            calls = message.get("tool_calls") or []
            self.history.append({"role": "assistant", "content": message.get("content") or "",
                                 **({"tool_calls": calls} if calls else {})})
            if not calls:
                self.failures = 0
                content = str(message.get("content") or "").strip()
                yield Say(content or self.config.not_understood)
                return
            for call in calls:
                fn = call.get("function", {})
                wanted = self.brain.names.get(str(fn.get("name")))
                try:
                    raw = json.loads(fn.get("arguments") or "{}")
                except ValueError:
                    raw = {}
                if wanted is None or not isinstance(raw, dict):
                    result: dict[str, Any] = {"ok": False, "error": "unknown tool or bad input"}
                elif wanted == "escalate":
                    async for a in self._escalate(str(raw.get("reason") or "model asked")):
                        yield a
                    return
                elif wanted in CONFIRM:
                    async for a in self._ask_confirmation(wanted, raw, str(call.get("id", ""))):
                        yield a
                    return
                else:
                    result = await self._run_tool(wanted, raw)
                self.history.append({"role": "tool", "tool_call_id": str(call.get("id", "")),
                                     "content": json.dumps(result)})
        async for a in self._failure("too many tool rounds"):
            yield a

    async def _answer_pending(self, local: NluResult) -> Say | None:
        """The caller's answer to a read-back: a yes runs the tool waiting for it and says
        how it went; anything else tells the model the caller did not confirm (None)."""
        if self.pending is None:
            return None
        tool, raw, call_id = self.pending
        self.pending = None
        if local.intent != "affirm":
            self.history.append({"role": "tool", "tool_call_id": call_id,
                                 "content": json.dumps({"ok": False,
                                                        "error": "the caller did not confirm"})})
            return None
        done = await self._run_tool(tool, raw)
        self.history.append({"role": "tool", "tool_call_id": call_id,
                             "content": json.dumps(done)})
        verb = {"book": "You're booked for", "move": "Your appointment is now",
                "cancel": "Cancelled:"}[CONFIRM[tool]]
        return Say(f"Done. {verb} {done.get('spoken', '')}." if done.get("ok") else
                   "Sorry, that didn't work.")

    async def _ask_confirmation(self, tool: str, raw: dict[str, Any],
                                call_id: str) -> AsyncIterator[AgentAction]:
        """The confirmation policy: read the slot back; only a yes will run ``tool``."""
        raw = {**raw, "caller": self.router.key, "name": self.caller.get("name")}
        if tool == "calendar.cancel":
            found = await self._run_tool("calendar.find", {"caller": self.router.key})
            spoken = str(found.get("spoken") or "your appointment")
            raw.setdefault("id", found.get("id"))
        else:
            check = await self._run_tool("calendar.check", raw)
            if not check.get("ok") or not check.get("free"):
                self.history.append({"role": "tool", "tool_call_id": call_id,
                                     "content": json.dumps({"ok": False, **check})})
                alts = check.get("alternatives_spoken")
                yield Say(f"Sorry, {check.get('spoken', 'that slot')} is taken."
                          + (f" I can offer {alts}." if alts else ""))
                return
            spoken = str(check.get("spoken"))
        self.pending = (tool, raw, call_id)
        self.emit("llm.confirm", {"tool": tool, "spoken": spoken})
        yield Say(f"{spoken}, shall I {CONFIRM[tool]} it?")

    async def _run_tool(self, tool: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        self.emit("tool.called", {"agent": "llm", "tool": tool})
        if tool == "memory.remember":
            item = self.router.remember(str(raw.get("kind", "note")), str(raw.get("text", "")))
            return {"ok": item is not None, "refused": item is None}
        if tool == "memory.recall":
            items = self.router.recall(str(raw.get("kind", "note")), 5, raw.get("query") or None)
            return {"ok": True, "items": [i.text for i in items]}
        spec = self.sys.registry.get(tool)
        if "caller" in spec.input_model.model_fields:
            raw = {**raw, "caller": self.router.key}

        def emit(type: str, data: Mapping[str, Any]) -> None:
            self.emit(type, {"agent": "llm", **data})

        try:
            out = await self.sys.runner.run([tool], raw, emit=emit, granted=PERMISSIONS,
                                            fallbacks=_FALLBACKS.get(tool, ()))
        except (ToolError, BreakerOpen, BulkheadFull) as exc:
            self.failures += 1
            self.emit("tool.gave_up", {"agent": "llm", "tool": tool, "error": describe(exc)})
            return {"ok": False, "error": describe(exc)}
        self.emit("tool.succeeded", {"agent": "llm", "tool": out.tool, "fallback": out.fallback,
                                     "ms": round((time.perf_counter() - started) * 1e3, 2)})
        for alert in out.output.get("alerts", []) or []:
            self.emit("ops.alert", dict(alert))
        return {"ok": True, **out.output}


_FALLBACKS = {"ops.probe": ("ops.cached",), "ticket.create": ("ticket.queue",)}
__all__ = ["SUPERVISOR", "LlmBrain", "LlmError", "LlmSupervisor", "wire_name"]
