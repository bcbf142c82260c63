"""The workflow engine: runs definitions as event-sourced state machines.

The engine never keeps state that is not in the log. Each instance's state is its view
(``views.project`` folded over its stream), and every decision is written as events
before the engine acts on it: a step's ``step.started`` is durable before the tool is
called, its ``step.completed`` and the next ``state.entered`` are written in one
transaction. So after a crash ``resume`` continues from the state the log shows and never
re-runs a step whose completion was recorded (a step caught in flight runs again:
tools should be idempotent, and the log says which steps were in flight).

Appends carry the version the engine last saw, so two processes advancing one instance
cannot both win: the second gets ``ConcurrentWriteError`` and nothing of it is written.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestration.breaker import Breakers
from orchestration.clock import Clock, SystemClock
from orchestration.definition import (
    ChoiceState,
    EndState,
    ParallelState,
    TaskState,
    WaitState,
    WorkflowDef,
)
from orchestration.errors import OrchestrationError
from orchestration.expr import evaluate, parse, resolve, truthy
from orchestration.fanout import BranchOutcome, fan_out, needed
from orchestration.input_schema import InputInvalid, validate_input
from orchestration.instance import Run
from orchestration.loader import DefinitionError, check_tools
from orchestration.policy import Policy
from orchestration.retry import RetryBudget
from orchestration.runner import ToolRunner, describe
from orchestration.saga import COMPENSATION_RETRY, Compensation, compensate
from orchestration.store import ConcurrentWriteError, EventStore, NewEvent
from orchestration.tools import ToolRegistry
from orchestration.views import TERMINAL

__all__ = ["Engine", "InputInvalid", "SignalResult", "WorkflowError"]

ACTIVE = frozenset({"running", "compensating", "rolling_back"})


class WorkflowError(OrchestrationError):
    """A request the engine cannot carry out (unknown workflow or instance, ...)."""


@dataclass(frozen=True, slots=True)
class SignalResult:
    accepted: bool
    status: str
    state: str | None
    reason: str = ""


def _matches(pattern: str, signal: str) -> bool:
    return signal.startswith(pattern[:-1]) if pattern.endswith("*") else signal == pattern


class Engine:
    def __init__(
        self, store: EventStore, registry: ToolRegistry,
        definitions: Iterable[WorkflowDef] = (), *, clock: Clock | None = None,
        rng: random.Random | None = None, breakers: Breakers | None = None,
        budget: RetryBudget | None = None, ids: Callable[[], str] | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.breakers = breakers or Breakers(self.clock, emit=self._breaker_event)
        self.runner = ToolRunner(registry, self.clock, self.rng, self.breakers, budget, policy)
        self.definitions: dict[str, WorkflowDef] = {}
        for defn in definitions:
            bad = check_tools(defn, registry)  # Python definitions get the loader's checks
            if bad:
                raise DefinitionError(f"<workflow {defn.name}>", bad)
            self.definitions[defn.name] = defn
        self._ids = ids or (lambda: uuid.uuid4().hex[:12])
        self._locks: dict[str, asyncio.Lock] = {}

    def _breaker_event(self, name: str, type: str, data: dict[str, Any]) -> None:
        self.store.append([NewEvent(f"breaker:{name}", type, data, self.clock.now())])

    def definition(self, name: str) -> WorkflowDef:
        try:
            return self.definitions[name]
        except KeyError:
            raise WorkflowError(
                f"unknown workflow {name!r}; known: {', '.join(sorted(self.definitions))}"
            ) from None

    def state(self, instance_id: str) -> dict[str, Any]:
        view = self.store.view(f"wf:{instance_id}")
        if view is None:
            raise WorkflowError(f"no workflow instance {instance_id!r}")
        return view

    # --- public operations ---------------------------------------------------------

    async def start(
        self, name: str, input: Mapping[str, Any] | None = None, instance_id: str | None = None
    ) -> str:
        defn = self.definition(name)
        data = validate_input(defn, input or {})
        ident = instance_id or self._ids()
        run = Run(defn, ident, self.store, self.clock)
        run.emit("workflow.started", {"name": name, "version": defn.version, "input": data})
        run.emit("state.entered", {"state": defn.start})
        async with self._lock(ident):
            try:
                run.commit()
            except ConcurrentWriteError:
                raise WorkflowError(f"workflow instance {ident!r} already exists") from None
            await self._advance(run)
        return ident

    async def resume(self, instance_id: str) -> dict[str, Any]:
        """Continue an instance left active by a crash; a no-op for one that is not."""
        async with self._lock(instance_id):
            run = self._load(instance_id)
            await self._advance(run)
            return run.view

    async def resume_all(self) -> list[str]:
        ids = [v["id"] for v in self.store.views("wf:").values() if v["status"] in ACTIVE]
        for ident in ids:
            await self.resume(ident)
        return ids

    async def signal(
        self, instance_id: str, signal: str, data: Mapping[str, Any] | None = None
    ) -> SignalResult:
        async with self._lock(instance_id):
            run = self._load(instance_id)
            return await self._signal(run, signal, dict(data or {}))

    async def rollback(self, instance_id: str, checkpoint: str | None = None) -> dict[str, Any]:
        async with self._lock(instance_id):
            run = self._load(instance_id)
            if run.view["status"] in TERMINAL:
                raise WorkflowError(f"workflow {instance_id!r} is {run.view['status']}")
            await self._rollback(run, checkpoint)
            return run.view

    async def tick(self) -> int:
        """Fire every timer that is due; returns how many fired."""
        now = self.clock.now()
        due = sorted(
            (t["due"], v["id"], tid)
            for v in self.store.views("wf:").values()
            for tid, t in v["timers"].items()
            if t["due"] <= now
        )
        for _, ident, tid in due:
            async with self._lock(ident):
                await self._fire(self._load(ident), tid)
        return len(due)

    # --- internals -----------------------------------------------------------------

    def _lock(self, ident: str) -> asyncio.Lock:
        return self._locks.setdefault(ident, asyncio.Lock())

    def _load(self, ident: str) -> Run:
        view = self.state(ident)
        return Run(self.definition(view["name"]), ident, self.store, self.clock, view)

    async def _advance(self, run: Run) -> None:
        v = run.view
        while True:
            if v["status"] == "compensating":
                await self._finish_saga(run)
            elif v["status"] == "rolling_back":
                await self._rollback(run, v["rollback_to"])
            if v["status"] != "running":
                return
            name = v["state"]
            st = run.defn.states[name]
            if isinstance(st, TaskState):
                await self._task(run, name, st)
            elif isinstance(st, ParallelState):
                await self._parallel(run, name, st)
            elif isinstance(st, ChoiceState):
                target = next((r.target for r in st.rules if truthy(parse(r.guard), v["ctx"])),
                              st.default or "")
                self._goto(run, target, reason="rule")
            elif isinstance(st, WaitState):
                self._enter_wait(run, name, st)
            else:
                self._end(run, st)
            run.commit()

    def _goto(self, run: Run, target: str, **why: Any) -> None:
        left = run.view["state"]
        for tid, t in run.view["timers"].items():
            if t.get("state") == left:
                run.emit("timer.cancelled", {"timer": tid})
        run.emit("state.entered", {"state": target, "from": left, **why})

    def _end(self, run: Run, st: EndState) -> None:
        output = resolve(st.output, run.view["ctx"])
        run.emit("workflow.completed", {"status": st.status, "output": output})

    async def _task(self, run: Run, name: str, st: TaskState) -> None:
        raw = resolve(st.input, run.view["ctx"])
        run.emit("step.started", {"step": name, "tool": st.tools[0]})
        run.commit()
        try:
            res = await self.runner.run(
                st.tools, raw, emit=run.emit, fallbacks=st.fallbacks, retry_spec=st.retry,
                time_box=st.timeout, granted=run.defn.permissions, who=_who(run),
            )
        except OrchestrationError as exc:
            run.emit("step.failed", {"step": name, "error": describe(exc),
                                     "transient": bool(getattr(exc, "transient", False))})
            await self._on_error(run, name, st.on_error, describe(exc))
            return
        run.emit("step.completed", {"step": name, "tool": res.tool, "fallback": res.fallback,
                                    "output": res.output})
        if st.checkpoint:
            run.emit("checkpoint.saved", {"step": name})
        self._goto(run, st.next or "")

    async def _parallel(self, run: Run, name: str, st: ParallelState) -> None:
        ctx = run.view["ctx"]
        if st.for_each and st.each:
            items = evaluate(parse(st.for_each), ctx)
            if not isinstance(items, list):
                run.emit("step.failed", {"step": name, "error": "for_each is not a list"})
                await self._on_error(run, name, st.on_error, "for_each is not a list")
                return
            calls = {str(i): (st.each, {**ctx, "item": it}) for i, it in enumerate(items)}
        else:
            calls = {b: (spec, ctx) for b, spec in st.branches.items()}
        done = run.view["branches"].get(name, {})
        run.emit("step.started", {"step": name, "branches": len(calls), "done": len(done)})
        run.commit()

        def branch(spec: Any, bctx: Mapping[str, Any]) -> Callable[[], Any]:
            async def go() -> dict[str, Any]:
                res = await self.runner.run([spec.tool], resolve(spec.input, bctx),
                                            emit=run.emit, retry_spec=spec.retry,
                                            time_box=spec.timeout, granted=run.defn.permissions,
                                            who=_who(run))
                return res.output
            return go

        def on_done(o: BranchOutcome) -> None:
            if o.ok:
                run.emit("branch.completed", {"step": name, "branch": o.name, "output": o.output})
            else:
                run.emit("branch.failed", {"step": name, "branch": o.name, "error": o.error})
            run.commit()  # each branch is durable: a resumed fan-out skips it

        pending = {b: branch(*c) for b, c in calls.items() if b not in done}
        await fan_out(pending, limit=st.max_concurrency, policy=st.policy, quorum=st.quorum,
                      on_done=on_done)
        outcomes = run.view["branches"].get(name, {})
        ok = sum(1 for o in outcomes.values() if o["ok"])
        need = needed(st.policy, len(calls), st.quorum)
        output = {"ok": ok >= need, "policy": st.policy, "succeeded": ok,
                  "failed": len(outcomes) - ok, "branches": outcomes}
        if ok >= need:
            run.emit("step.completed", {"step": name, "output": output})
            self._goto(run, st.next or "")
        else:
            error = f"{ok} of {len(calls)} branches succeeded, policy {st.policy} needs {need}"
            run.emit("step.failed", {"step": name, "error": error, "output": output})
            await self._on_error(run, name, st.on_error, error)

    async def _on_error(self, run: Run, step: str, on_error: str | None, error: str) -> None:
        if on_error == "rollback":
            run.commit()
            await self._rollback(run, None)
        elif on_error:
            self._goto(run, on_error, reason="error", error=error)
        elif run.defn.saga:
            run.emit("saga.compensating", {"step": step, "error": error})
            run.commit()
            await self._finish_saga(run)
        else:
            run.emit("workflow.failed", {"step": step, "error": error})

    async def _compensate(self, run: Run, steps: list[str]) -> None:
        def emit_now(type: str, data: dict[str, Any]) -> None:
            run.emit(type, data)
            if type.startswith("compensation."):
                run.commit()  # a resumed saga skips what is already undone

        for step in reversed(steps):
            st = run.defn.states.get(step)
            if not isinstance(st, TaskState) or st.compensate is None:
                continue
            if run.view["compensations"].get(step) == "done":
                continue
            spec = st.compensate
            raw = resolve(spec.input, run.view["ctx"])

            async def undo(tool: str = spec.tool, raw: Any = raw, t: Any = spec.timeout) -> Any:
                return await self.runner.one(tool, raw, emit=run.emit, time_box=t,
                                             granted=run.defn.permissions)

            await compensate([Compensation(step, undo)], clock=self.clock, rng=self.rng,
                             emit=emit_now, policy=spec.retry or COMPENSATION_RETRY)

    async def _finish_saga(self, run: Run) -> None:
        await self._compensate(run, list(run.view["done"]))
        failed = sorted(s for s, r in run.view["compensations"].items() if r == "failed")
        run.emit("workflow.compensated", {"error": run.view["error"], "not_undone": failed})
        run.commit()

    async def _rollback(self, run: Run, checkpoint: str | None) -> None:
        cps = run.view["checkpoints"]
        chosen = [c for c in cps if checkpoint is None or c["step"] == checkpoint]
        if not chosen:
            raise WorkflowError(f"workflow {run.ident!r} has no checkpoint "
                                f"{checkpoint or ''}".rstrip())
        cp = chosen[-1]
        if run.view["status"] != "rolling_back":
            run.emit("rollback.started", {"checkpoint": cp["step"]})
            run.commit()
        await self._compensate(run, run.view["done"][cp["done"]:])
        st = run.defn.states[cp["step"]]
        assert isinstance(st, TaskState)
        run.emit("rollback.completed", {"checkpoint": cp["step"], "state": st.next})
        run.commit()

    def _enter_wait(self, run: Run, name: str, st: WaitState) -> None:
        if not any(t.get("state") == name for t in run.view["timers"].values()):
            now = self.clock.now()
            for i, tm in enumerate(st.timers):
                run.emit("timer.set", {"timer": f"{name}.timer{i}", "state": name,
                                       "kind": "timer", "due": now + tm.after,
                                       "target": tm.target})
            for i, sla in enumerate(st.sla):
                run.emit("timer.set", {"timer": f"{name}.sla{i}", "state": name, "kind": "sla",
                                       "due": now + sla.after, "level": i})
        run.emit("workflow.waiting", {"state": name})

    async def _signal(self, run: Run, signal: str, data: dict[str, Any]) -> SignalResult:
        v = run.view
        if v["status"] == "paused" and signal in ("resume", "abort"):
            if signal == "resume":
                run.emit("workflow.resumed", {"state": v["state"]})
            else:
                run.emit("workflow.failed", {"step": v["state"], "error": "aborted by signal"})
            run.commit()
            await self._advance(run)
            return SignalResult(True, v["status"], v["state"])
        st = run.defn.states[v["state"]] if v["state"] else None
        if v["status"] != "waiting" or not isinstance(st, WaitState):
            why = f"workflow is {v['status']} in state {v['state']!r}, not waiting for signals"
            if v["status"] == "paused":
                why += " (send resume or abort)"
            return self._reject(run, signal, why)
        run.emit("signal.received", {"signal": signal, "data": data})
        run.commit()
        failed: list[str] = []
        for t in st.on:
            if not _matches(t.signal, signal):
                continue
            if t.guard is None or truthy(parse(t.guard), v["ctx"]):
                self._goto(run, t.target, signal=signal)
                run.commit()
                await self._advance(run)
                return SignalResult(True, v["status"], v["state"])
            failed.append(t.guard)
        why = (f"guard failed: {' / '.join(failed)}" if failed
               else f"no transition for {signal!r} in state {v['state']!r}")
        return self._reject(run, signal, why)

    def _reject(self, run: Run, signal: str, why: str) -> SignalResult:
        run.emit("transition.rejected", {"state": run.view["state"], "signal": signal,
                                         "reason": why})
        run.commit()
        return SignalResult(False, run.view["status"], run.view["state"], why)

    async def _fire(self, run: Run, tid: str) -> None:
        timer = run.view["timers"].get(tid)
        if timer is None:
            return  # fired or cancelled meanwhile
        run.emit("timer.fired", {"timer": tid, "kind": timer["kind"]})
        run.commit()
        st = run.defn.states[timer["state"]]
        target = timer.get("target")
        if timer["kind"] == "sla" and isinstance(st, WaitState):
            level = st.sla[timer["level"]]
            try:
                res = await self.runner.run([level.escalate.tool],
                                            resolve(level.escalate.input, run.view["ctx"]),
                                            emit=run.emit, retry_spec=level.escalate.retry,
                                            granted=run.defn.permissions, who=_who(run))
                run.emit("sla.escalated", {"level": timer["level"], "state": timer["state"],
                                           "tool": res.tool, "output": res.output})
            except OrchestrationError as exc:
                run.emit("sla.escalated", {"level": timer["level"], "state": timer["state"],
                                           "error": describe(exc)})
            target = level.target
        if target and run.view["state"] == timer["state"]:
            self._goto(run, target, timer=tid)
        run.commit()
        await self._advance(run)


def _who(run: Run) -> dict[str, Any]:
    """What policy rules may know about who is acting: the workflow and its caller."""
    data = run.view["ctx"].get("input", {})
    roles = data.get("roles", [])
    return {
        "agent": run.defn.name,
        "caller": {"id": data.get("caller"), "roles": roles if isinstance(roles, list) else []},
    }
