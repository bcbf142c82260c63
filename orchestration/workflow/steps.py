"""The engine's inner loop: how each kind of state runs, for any ``RunHandle``.

Every decision is an event before it is acted on. A move is one ``workflow.transition``
event (with the entered state's ``set`` values as ``vars.set`` / ``slots.changed``); a
task's ``step.started`` is made durable (``run.durable()``) before its tool is called,
and its ``step.completed`` is emitted with the move that follows. ``Engine`` (engine.py)
adds the public operations on top.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from orchestration.clock import Clock
from orchestration.errors import OrchestrationError
from orchestration.expr import evaluate, parse, render, resolve, truthy
from orchestration.patterns.fanout import BranchOutcome, fan_out, needed
from orchestration.patterns.runner import ToolRunner, describe
from orchestration.patterns.saga import COMPENSATION_RETRY, Compensation, compensate
from orchestration.workflow.definition import (
    ChoiceState,
    EndState,
    ParallelState,
    SayState,
    TaskState,
    ToolCall,
    WaitState,
)
from orchestration.workflow.runs import RunHandle

# states run in a row without waiting: more is a loop in the definition, not work
MAX_STATES = 500


class WorkflowError(OrchestrationError):
    """A request the engine cannot carry out (unknown workflow or instance, ...)."""


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1e3, 2)


class EngineSteps:
    runner: ToolRunner
    clock: Clock
    rng: random.Random

    def _runner(self, run: RunHandle) -> ToolRunner:
        return run.runner or self.runner

    async def _advance(self, run: RunHandle) -> None:
        """Run states until the run waits, pauses or ends."""
        for _ in range(MAX_STATES):
            v = run.view
            if v["status"] == "compensating":
                await self._finish_saga(run)
            elif v["status"] == "rolling_back":
                await self._rollback(run, v["rollback_to"])
            v = run.view
            if v["status"] != "running":
                return
            await self._step(run, v["state"])
            run.commit()
        run.emit("workflow.failed", {"step": run.view["state"], "error": f"more than "
                                     f"{MAX_STATES} states in a row without waiting"})
        run.commit()

    async def _step(self, run: RunHandle, name: str) -> None:
        st = run.defn.states[name]
        if isinstance(st, TaskState):
            await self._task(run, name, st)
        elif isinstance(st, ParallelState):
            await self._parallel(run, name, st)
        elif isinstance(st, ChoiceState):
            ctx = run.context()
            rule = next((r for r in st.rules if truthy(parse(r.guard), ctx)), None)
            if rule is not None:
                self._goto(run, rule.target, "rule")
            else:
                self._goto(run, st.default or "", "default")
        elif isinstance(st, WaitState):
            self._enter_wait(run, name, st)
        elif isinstance(st, SayState):
            run.say(render(st.say, run.context()))
            self._goto(run, st.next, "next")
        else:
            self._end(run, st)

    def _goto(self, run: RunHandle, target: str, via: str, **why: Any) -> None:
        """Move to ``target``: cancel the left state's timers, record the move, and set
        the entered state's ``set`` values (evaluated once, on entering)."""
        left = run.view["state"]
        for tid, t in run.view["timers"].items():
            if t.get("state") == left:
                run.emit("timer.cancelled", {"timer": tid})
        run.emit("workflow.transition", {"run": run.ident, "workflow": run.defn.name,
                                         "from": left, "to": target, "via": via, **why})
        sets = run.defn.states[target].set
        if not sets:
            return
        ctx = run.context()
        values = {name: evaluate(parse(expr), ctx) for name, expr in sets.items()}
        plain = {k: v for k, v in values.items() if not k.startswith("slots.")}
        slots = {k.removeprefix("slots."): v for k, v in values.items() if k.startswith("slots.")}
        if plain:
            run.emit("vars.set", {"vars": plain})
        if slots:
            run.emit("slots.changed", {"slots": slots})

    def _end(self, run: RunHandle, st: EndState) -> None:
        ctx = run.context()
        if st.remember is not None:
            data = resolve(st.remember.data, ctx)
            run.remember(st.remember.kind, render(st.remember.text, ctx),
                         data if isinstance(data, Mapping) else {})
        if st.say:
            run.say(render(st.say, ctx))
        done: dict[str, Any] = {"status": st.status, "output": resolve(st.output, ctx)}
        if st.reason:
            done["reason"] = st.reason
        run.emit("workflow.completed", done)

    def _enter_wait(self, run: RunHandle, name: str, st: WaitState) -> None:
        ctx = run.context()
        if st.slot and st.next and ctx.get("slots", {}).get(st.slot) is not None:
            self._goto(run, st.next, "slot", slot=st.slot)  # known already: nothing to ask
            return
        if not any(t.get("state") == name for t in run.view["timers"].values()):
            now = self.clock.now()
            for i, tm in enumerate(st.timers):
                run.emit("timer.set", {"timer": f"{name}.timer{i}", "state": name,
                                       "kind": "timer", "due": now + tm.after,
                                       "target": tm.target})
            for i, sla in enumerate(st.sla):
                run.emit("timer.set", {"timer": f"{name}.sla{i}", "state": name, "kind": "sla",
                                       "due": now + sla.after, "level": i})
        if st.say:
            run.say(render(st.say, ctx))
        run.emit("workflow.waiting", {"state": name})

    async def _task(self, run: RunHandle, name: str, st: TaskState) -> None:
        raw = resolve(st.input, run.context())
        run.emit("step.started", {"step": name, "tool": st.tools[0]})
        run.commit()
        await run.durable()  # a resumed run knows this step may have run
        started = time.perf_counter()
        try:
            res = await self._runner(run).run(
                st.tools, raw if isinstance(raw, Mapping) else {}, emit=run.emit,
                fallbacks=st.fallbacks, retry_spec=st.retry, time_box=st.timeout,
                granted=run.defn.permissions, who=run.who())
        except OrchestrationError as exc:
            run.emit("step.failed", {"step": name, "tool": st.tools[0], "error": describe(exc),
                                     "transient": bool(getattr(exc, "transient", False)),
                                     "ms": _ms(started)})
            await self._on_error(run, name, st.on_error, describe(exc))
            return
        run.emit("step.completed", {"step": name, "tool": res.tool, "fallback": res.fallback,
                                    "output": res.output, "ms": _ms(started)})
        if st.checkpoint:
            run.emit("checkpoint.saved", {"step": name})
        self._goto(run, st.next or "", "ok")

    def _branch(self, run: RunHandle, spec: ToolCall,
                ctx: Mapping[str, Any]) -> Callable[[], Any]:
        async def go() -> dict[str, Any]:
            res = await self._runner(run).run(
                [spec.tool], resolve(spec.input, ctx), emit=run.emit, retry_spec=spec.retry,
                time_box=spec.timeout, granted=run.defn.permissions, who=run.who())
            return res.output
        return go

    def _calls(self, run: RunHandle, name: str,
               st: ParallelState) -> dict[str, tuple[ToolCall, Mapping[str, Any]]] | None:
        ctx = run.context()
        if not (st.for_each and st.each):
            return {b: (spec, ctx) for b, spec in st.branches.items()}
        items = evaluate(parse(st.for_each), ctx)
        if not isinstance(items, list):
            return None
        return {str(i): (st.each, {**ctx, "item": it}) for i, it in enumerate(items)}

    async def _parallel(self, run: RunHandle, name: str, st: ParallelState) -> None:
        calls = self._calls(run, name, st)
        if calls is None:
            run.emit("step.failed", {"step": name, "error": "for_each is not a list"})
            await self._on_error(run, name, st.on_error, "for_each is not a list")
            return
        done = run.view["branches"].get(name, {})
        run.emit("step.started", {"step": name, "branches": len(calls), "done": len(done)})
        run.commit()
        await run.durable()

        def on_done(o: BranchOutcome) -> None:
            if o.ok:
                run.emit("branch.completed", {"step": name, "branch": o.name, "output": o.output})
            else:
                run.emit("branch.failed", {"step": name, "branch": o.name, "error": o.error})
            run.commit()  # each branch is durable: a resumed fan-out skips it

        pending = {b: self._branch(run, *c) for b, c in calls.items() if b not in done}
        await fan_out(pending, limit=st.max_concurrency, policy=st.policy, quorum=st.quorum,
                      on_done=on_done)
        outcomes = run.view["branches"].get(name, {})
        ok = sum(1 for o in outcomes.values() if o["ok"])
        need = needed(st.policy, len(calls), st.quorum)
        output = {"ok": ok >= need, "policy": st.policy, "succeeded": ok,
                  "failed": len(outcomes) - ok, "branches": outcomes}
        if ok >= need:
            run.emit("step.completed", {"step": name, "output": output})
            self._goto(run, st.next or "", "ok")
        else:
            error = f"{ok} of {len(calls)} branches succeeded, policy {st.policy} needs {need}"
            run.emit("step.failed", {"step": name, "error": error, "output": output})
            await self._on_error(run, name, st.on_error, error)

    async def _on_error(self, run: RunHandle, step: str, on_error: str | None,
                        error: str) -> None:
        """A failed step: roll back, or (a saga) undo the done steps and go on to
        ``on_error`` if it names a state, or go to ``on_error``, or fail the run."""
        if on_error == "rollback":
            run.commit()
            await self._rollback(run, None)
        elif run.defn.saga:
            then = {"then": on_error} if on_error else {}
            run.emit("saga.compensating", {"step": step, "error": error, **then})
            run.commit()
            await self._finish_saga(run)
        elif on_error:
            self._goto(run, on_error, "error", error=error)
        else:
            run.emit("workflow.failed", {"step": step, "error": error})

    async def _compensate(self, run: RunHandle, steps: list[str]) -> None:
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
            raw = resolve(spec.input, run.context())

            async def undo(tool: str = spec.tool, raw: Any = raw, t: Any = spec.timeout) -> Any:
                return await self._runner(run).one(tool, raw, emit=run.emit, time_box=t,
                                                   granted=run.defn.permissions)

            await compensate([Compensation(step, undo)], clock=self.clock, rng=self.rng,
                             emit=emit_now, policy=spec.retry or COMPENSATION_RETRY)

    async def _finish_saga(self, run: RunHandle) -> None:
        await self._compensate(run, list(run.view["done"]))
        then = run.view.get("then")
        if then:
            self._goto(run, then, "compensated")
        else:
            failed = sorted(s for s, r in run.view["compensations"].items() if r == "failed")
            run.emit("workflow.compensated", {"error": run.view["error"], "not_undone": failed})
        run.commit()

    async def _rollback(self, run: RunHandle, checkpoint: str | None) -> None:
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
