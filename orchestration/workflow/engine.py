"""The workflow engine: runs definitions as event-sourced state machines.

The engine never keeps state that is not in the log. A run's state is its view, folded
from its events by ``views.fold_workflow``, and every decision is written as events
before the engine acts on it: a step's ``step.started`` is durable before the tool is
called; its ``step.completed`` and the next ``workflow.transition`` follow together. So
after a crash a run continues from the state the log shows and never re-runs a step whose
completion was recorded (a step caught in flight runs again: tools that change the world
take an idempotency key, and the log says which steps were in flight).

Two kinds of run (``runs.RunHandle``):

- back-office instances, on their own stream ``wf:<id>`` (``start``, ``signal``,
  ``tick``, ``resume``...). Appends carry the version the engine last saw, so two
  processes advancing one instance cannot both win: the second gets
  ``ConcurrentWriteError`` and nothing of it is written;
- call-bound runs (``call_run.CallRun``): a voice agent's conversation, whose events go
  to the call's stream. The host starts one with ``begin``, asks ``match`` whether a
  caller's turn answers the state it waits in (writing nothing), moves it on with
  ``answer``, and hears what it says through the run's ``say`` listener as each text is
  produced. A call resumed in a fresh process calls ``carry_on``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestration.clock import Clock, SystemClock
from orchestration.errors import OrchestrationError
from orchestration.expr import parse, render, resolve, truthy
from orchestration.log.store import ConcurrentWriteError, EventStore, NewEvent
from orchestration.log.vault import Sealing
from orchestration.log.views import TERMINAL
from orchestration.patterns.breaker import Breakers
from orchestration.patterns.policy import Policy
from orchestration.patterns.retry import RetryBudget
from orchestration.patterns.runner import ToolRunner, describe
from orchestration.patterns.tools import ToolRegistry
from orchestration.workflow.definition import WaitState, WorkflowDef
from orchestration.workflow.input_schema import InputInvalid, validate_input
from orchestration.workflow.instance import load_run
from orchestration.workflow.leases import Leases
from orchestration.workflow.loader import DefinitionError, check_tools
from orchestration.workflow.runs import RunHandle, StoreRun, Turn
from orchestration.workflow.state_kinds import Transition
from orchestration.workflow.steps import EngineSteps, WorkflowError

__all__ = ["Engine", "InputInvalid", "SignalResult", "WorkflowError"]

ACTIVE = frozenset({"running", "compensating", "rolling_back"})


@dataclass(frozen=True, slots=True)
class SignalResult:
    accepted: bool
    status: str
    state: str | None
    reason: str = ""


def _matches(pattern: str, signal: str) -> bool:
    return signal.startswith(pattern[:-1]) if pattern.endswith("*") else signal == pattern


def _answers(t: Transition, turn: Turn, ctx: Mapping[str, Any]) -> bool:
    """Does a caller's turn take transition ``t``? Every condition it gives must hold."""
    if t.intents and turn.intent not in t.intents:
        return False
    if t.changed and not set(t.changed) & set(turn.changed):
        return False
    return t.guard is None or truthy(parse(t.guard), ctx)


class Engine(EngineSteps):
    def __init__(
        self, store: EventStore | None, registry: ToolRegistry,
        definitions: Iterable[WorkflowDef] = (), *,
        clock: Clock | None = None, rng: random.Random | None = None,
        breakers: Breakers | None = None, budget: RetryBudget | None = None,
        ids: Callable[[], str] | None = None, policy: Policy | None = None,
        sealing: Sealing | None = None, leases: Leases | None = None,
    ) -> None:
        """``store``: the log of back-office runs (None for an engine that runs call-bound
        runs only); ``sealing``: mask each back-office event before it is written, keeping
        the originals the run needs in a vault (``instance.py``, ``vault.py``);
        ``leases``: with replicas sharing the log, a run is advanced only by the process
        holding its lease (``leases.py``)."""
        self._store = store
        self.leases = leases
        self.sealing = sealing
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

    @property
    def store(self) -> EventStore:
        if self._store is None:
            raise WorkflowError("this engine has no event log: it runs call-bound runs only")
        return self._store

    def _breaker_event(self, name: str, type: str, data: dict[str, Any]) -> None:
        if self._store is not None:
            self._store.append([NewEvent(f"breaker:{name}", type, data, self.clock.now())])

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

    # --- back-office runs ------------------------------------------------------------

    async def start(
        self, name: str, input: Mapping[str, Any] | None = None, instance_id: str | None = None
    ) -> str:
        defn = self.definition(name)
        if defn.conversational:
            raise WorkflowError(f"workflow {name!r} talks with a caller (say, turns, slots, "
                                "memory): it runs bound to a call")
        data = validate_input(defn, input or {})
        ident = instance_id or self._ids()
        run = StoreRun(defn, ident, self.store, self.clock, sealing=self.sealing)
        async with self._lock(ident):
            self._open(run, data)
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
        """Fire every timer that is due; returns how many this process fired (another
        process on the same log, a replica, may have fired one first: its append wins and
        this one's is refused whole)."""
        now = self.clock.now()
        due = sorted(
            (t["due"], v["id"], tid)
            for v in self.store.views("wf:").values()
            for tid, t in v["timers"].items()
            if t["due"] <= now
        )
        fired = 0
        for _, ident, tid in due:
            async with self._lock(ident):
                try:
                    fired += await self._fire(self._load(ident), tid)
                except ConcurrentWriteError:  # a replica whose lease lapsed fired it first
                    continue
        return fired

    # --- call-bound runs -------------------------------------------------------------

    async def begin(self, run: RunHandle, input: Mapping[str, Any] | None = None) -> None:
        """Start a run bound to a call: its first states run until it waits or ends."""
        self._open(run, validate_input(run.defn, input or {}))
        run.commit()
        await self._advance(run)

    async def carry_on(self, run: RunHandle) -> None:
        """Continue a run rebuilt from the log (a step in flight runs again); a run that
        waits keeps waiting."""
        await self._advance(run)

    def waiting(self, run: RunHandle) -> WaitState | None:
        """The state the run waits in for a caller's turn, if it does."""
        st = run.defn.states.get(run.view["state"] or "")
        return st if run.view["status"] == "waiting" and isinstance(st, WaitState) else None

    def match(self, run: RunHandle, turn: Turn) -> str | None:
        """The state a caller's turn leads to from the one the run waits in, or None if
        the turn does not answer it. Writes nothing."""
        st = self.waiting(run)
        if st is None:
            return None
        run.turn = turn
        ctx = run.context()
        target = next((t.target for t in st.on if t.on_turn and _answers(t, turn, ctx)), None)
        if target is None and st.slot and ctx.get("slots", {}).get(st.slot) is not None:
            target = st.next
        return target if target is not None else st.else_

    async def answer(self, run: RunHandle, turn: Turn, target: str | None = None) -> bool:
        """Move on with a caller's turn (to ``target`` if ``match`` gave it already);
        False, and nothing written, if the turn does not answer the waiting state."""
        target = target or self.match(run, turn)
        if target is None:
            return False
        run.turn = turn
        self._goto(run, target, "turn", intent=turn.intent)
        run.commit()
        await self._advance(run)
        return True

    def prompt(self, run: RunHandle) -> str:
        """The question the run waits on, as it is said now ("" if none)."""
        st = self.waiting(run)
        return render(st.say, run.context()) if st is not None and st.say else ""

    # --- internals -----------------------------------------------------------------

    def _open(self, run: RunHandle, data: dict[str, Any]) -> None:
        run.emit("workflow.started", {"run": run.ident, "name": run.defn.name,
                                      "version": run.defn.version, "input": data})
        self._goto(run, run.defn.start, "start")

    @contextlib.asynccontextmanager
    async def _lock(self, ident: str) -> AsyncIterator[None]:
        async with self._locks.setdefault(ident, asyncio.Lock()):
            if self.leases is None:
                yield
                return
            await self.leases.hold(ident)
            try:
                yield
            finally:
                self.leases.release(ident)

    def _load(self, ident: str) -> StoreRun:
        view = self.state(ident)
        defn = self.definition(view["name"])
        loaded = load_run(defn, ident, self.store, self.clock, view, self.sealing)
        return StoreRun(defn, ident, self.store, self.clock, loaded.view, self.sealing)

    async def _signal(self, run: StoreRun, signal: str, data: dict[str, Any]) -> SignalResult:
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
            if t.signal is None or not _matches(t.signal, signal):
                continue
            if t.guard is None or truthy(parse(t.guard), run.context()):
                self._goto(run, t.target, "signal", signal=signal)
                run.commit()
                await self._advance(run)
                return SignalResult(True, v["status"], v["state"])
            failed.append(t.guard)
        why = (f"guard failed: {' / '.join(failed)}" if failed
               else f"no transition for {signal!r} in state {v['state']!r}")
        return self._reject(run, signal, why)

    def _reject(self, run: StoreRun, signal: str, why: str) -> SignalResult:
        run.emit("transition.rejected", {"state": run.view["state"], "signal": signal,
                                         "reason": why})
        run.commit()
        return SignalResult(False, run.view["status"], run.view["state"], why)

    async def _fire(self, run: StoreRun, tid: str) -> bool:
        timer = run.view["timers"].get(tid)
        if timer is None:
            return False  # fired or cancelled meanwhile (here or by another replica)
        run.emit("timer.fired", {"timer": tid, "kind": timer["kind"]})
        run.commit()
        st = run.defn.states[timer["state"]]
        target: str | None = timer.get("target")
        if timer["kind"] == "sla" and isinstance(st, WaitState):
            target = await self._escalate(run, st, timer)
        if target and run.view["state"] == timer["state"]:
            self._goto(run, target, "timer", timer=tid)
        run.commit()
        await self._advance(run)
        return True

    async def _escalate(self, run: StoreRun, st: WaitState, timer: dict[str, Any]) -> str | None:
        level = st.sla[int(timer["level"])]
        base = {"level": timer["level"], "state": timer["state"]}
        try:
            res = await self.runner.run([level.escalate.tool],
                                        resolve(level.escalate.input, run.context()),
                                        emit=run.emit, retry_spec=level.escalate.retry,
                                        granted=run.defn.permissions, who=run.who())
            run.emit("sla.escalated", {**base, "tool": res.tool, "output": res.output})
        except OrchestrationError as exc:
            run.emit("sla.escalated", {**base, "error": describe(exc)})
        return level.target
