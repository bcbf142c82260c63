"""Derived views: the current state of each workflow, call, schedule and breaker.

``project(view, event)`` folds one event into the view of its stream. It is the only code
that turns events into state: the engine keeps its live state with it, the stores keep the
stored views with it, and replay rebuilds them with it, so "replay gives the live state"
holds by construction (and is property-tested). It may change ``view`` in place and must
be deterministic: everything it needs comes from the event, never from a clock.

Stream ids name their kind: ``wf:<id>`` workflows, ``call:<session>`` voice calls,
``sched:<workflow>`` cron schedules, ``breaker:<tool>`` circuit breakers.

A call's view holds its ``conversation`` (``fold_conversation``): the agent in control,
the run of its flow (a workflow view, folded by ``fold_workflow`` exactly as a ``wf:``
stream is), the slots, failures in a row, the caller, the last thing said. A live call
keeps the same fold over the events it emits, so a call rebuilt from the log carries on
from where the live one was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from orchestration.log.store import StoredEvent, View

TERMINAL = frozenset({"succeeded", "failed", "compensated", "cancelled", "escalated"})
Data = Mapping[str, Any]


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _count(view: View, event: StoredEvent) -> View:
    counts = view.setdefault("counts", {})
    counts[event.type] = counts.get(event.type, 0) + 1
    view["events"] = view.get("events", 0) + 1
    view["last_seq"] = event.seq
    view["updated_ts"] = event.ts
    return view


def project(view: View | None, event: StoredEvent) -> View | None:
    kind, _, ident = event.stream.partition(":")
    if kind == "wf":
        v = new_workflow_view(ident) if view is None else view
        return _count(fold_workflow(v, event.type, event.data, event.ts), event)
    if kind == "call":
        return _count(_call(view, event, ident), event)
    if kind == "sched":
        return _count(_schedule(view, event, ident), event)
    if kind == "breaker":
        return _count(_breaker(view, event, ident), event)
    return None


def new_workflow_view(ident: str) -> View:
    return {
        "kind": "workflow",
        "id": ident,
        "name": None,
        "status": "new",
        "state": None,
        "ctx": {"input": {}, "steps": {}, "slots": {}, "signal": None, "vars": {}},
        "done": [],
        "running": {},
        "branches": {},
        "checkpoints": [],
        "timers": {},
        "compensations": {},
        "rejected": 0,
        "escalations": 0,
        "error": None,
        "output": None,
    }


# --- workflows -----------------------------------------------------------------------------


def _started(v: View, d: Data, ts: float) -> None:
    v["name"] = d["name"]
    v["ctx"]["input"] = d.get("input", {})
    v["status"] = "running"
    v["started_ts"] = ts


def _entered(v: View, state: str) -> None:
    v["state"] = state
    v["branches"].pop(state, None)  # a state entered again fans out afresh
    v.pop("then", None)
    if v["status"] not in TERMINAL:
        v["status"] = "running"


def _step_completed(v: View, d: Data, ts: float) -> None:
    v["ctx"]["steps"][d["step"]] = d.get("output")
    v["running"].pop(d["step"], None)
    v["compensations"].pop(d["step"], None)  # done again: its undo is owed again
    if d["step"] not in v["done"]:
        v["done"].append(d["step"])


def _branch(v: View, d: Data, ok: bool) -> None:
    branches = v["branches"].setdefault(d["step"], {})
    branches[d["branch"]] = ({"ok": True, "output": d.get("output")} if ok
                             else {"ok": False, "error": d.get("error")})


def _signal(v: View, d: Data, ts: float) -> None:
    name = d["signal"]
    v["ctx"]["signal"] = {"name": name, "data": d.get("data", {})}
    if name.startswith("slot."):
        v["ctx"]["slots"][name[5:]] = d.get("data", {}).get("value")


def _slots(slots: dict[str, Any], d: Data) -> None:
    for name, value in (d.get("slots") or {}).items():
        if value is None:
            slots.pop(name, None)
        else:
            slots[name] = value


def _rolled_back(v: View, d: Data, ts: float) -> None:
    _rollback(v, d["checkpoint"])
    v["state"] = d.get("state", v["state"])
    v["status"] = "paused"
    v.pop("rollback_to", None)


def _finished(status: str | None) -> Callable[[View, Data, float], None]:
    def finish(v: View, d: Data, ts: float) -> None:
        v["status"] = status or d.get("status", "succeeded")
        if status is None:
            v["output"] = d.get("output")
            if d.get("reason"):
                v["reason"] = d["reason"]
        elif status == "failed":
            v["error"] = d.get("error")
        v["timers"] = {}
    return finish


def _status(status: str) -> Callable[[View, Data, float], None]:
    def set_status(v: View, d: Data, ts: float) -> None:
        v["status"] = status
    return set_status


def _compensating(v: View, d: Data, ts: float) -> None:
    v["status"] = "compensating"
    v["error"] = d.get("error")
    if d.get("then"):
        v["then"] = d["then"]  # where the run goes on once the saga is undone


def _rolling_back(v: View, d: Data, ts: float) -> None:
    v["status"] = "rolling_back"
    v["rollback_to"] = d["checkpoint"]


def _step_started(v: View, d: Data, ts: float) -> None:
    v["running"][d["step"]] = d.get("attempt", 1)


def _step_failed(v: View, d: Data, ts: float) -> None:
    v["running"].pop(d["step"], None)
    v["error"] = d.get("error")


def _checkpoint(v: View, d: Data, ts: float) -> None:
    v["checkpoints"].append({"step": d["step"], "done": len(v["done"]), "ctx": _copy(v["ctx"])})


def _compensation(result: str) -> Callable[[View, Data, float], None]:
    def record(v: View, d: Data, ts: float) -> None:
        v["compensations"][d["step"]] = result
    return record


def _rejected(v: View, d: Data, ts: float) -> None:
    v["rejected"] += 1
    v["last_rejection"] = dict(d)


def _timer_set(v: View, d: Data, ts: float) -> None:
    v["timers"][d["timer"]] = {k: d[k] for k in d if k != "timer"}


def _timer_gone(v: View, d: Data, ts: float) -> None:
    v["timers"].pop(d["timer"], None)


def _escalated(v: View, d: Data, ts: float) -> None:
    v["escalations"] += 1


_WORKFLOW: dict[str, Callable[[View, Data, float], None]] = {
    "workflow.started": _started,
    "workflow.transition": lambda v, d, ts: _entered(v, d["to"]),
    "state.entered": lambda v, d, ts: _entered(v, d["state"]),  # logs written before issue 12
    "workflow.resumed": _status("running"),
    "workflow.waiting": _status("waiting"),
    "workflow.paused": _status("paused"),
    "saga.compensating": _compensating,
    "rollback.started": _rolling_back,
    "step.started": _step_started,
    "step.completed": _step_completed,
    "step.failed": _step_failed,
    "branch.completed": lambda v, d, ts: _branch(v, d, True),
    "branch.failed": lambda v, d, ts: _branch(v, d, False),
    "checkpoint.saved": _checkpoint,
    "rollback.completed": _rolled_back,
    "compensation.completed": _compensation("done"),
    "compensation.failed": _compensation("failed"),
    "signal.received": _signal,
    "vars.set": lambda v, d, ts: v["ctx"]["vars"].update(d.get("vars", {})),
    "slots.changed": lambda v, d, ts: _slots(v["ctx"]["slots"], d),
    "transition.rejected": _rejected,
    "timer.set": _timer_set,
    "timer.fired": _timer_gone,
    "timer.cancelled": _timer_gone,
    "sla.escalated": _escalated,
    "workflow.completed": _finished(None),
    "workflow.failed": _finished("failed"),
    "workflow.compensated": _finished("compensated"),
}


def fold_workflow(v: View, type: str, d: Data, ts: float) -> View:
    """Fold one event of a run into its view (a ``wf:`` stream's, or a call's run)."""
    handler = _WORKFLOW.get(type)
    if handler is not None:
        handler(v, d, ts)
    return v


def _rollback(v: View, checkpoint: str) -> None:
    for i in range(len(v["checkpoints"]) - 1, -1, -1):
        cp = v["checkpoints"][i]
        if cp["step"] == checkpoint:
            v["ctx"] = _copy(cp["ctx"])
            v["done"] = v["done"][: cp["done"]]
            v["checkpoints"] = v["checkpoints"][: i + 1]
            v["branches"] = {}
            v["running"] = {}
            return


# --- calls and their conversation ----------------------------------------------------------


def new_conversation() -> View:
    return {"agent": None, "run": None, "runs": 0, "slots": {}, "failures": 0, "ended": None,
            "caller": {"name": None, "returning": False}, "said": "", "resumed": 0,
            "before": None}


def _run_event(c: View, type: str, d: Data, ts: float) -> None:
    if type == "workflow.started":
        c["run"] = new_workflow_view(str(d["run"]))
        c["runs"] += 1
    run = c["run"]
    if run is not None and run["id"] == d["run"]:
        fold_workflow(run, type, d, ts)


def _failure(c: View, d: Data) -> None:
    c["failures"] = int(d.get("count", 0))


def _turn(c: View, d: Data) -> None:
    c["failures"] = int(d.get("failures", c["failures"]))


def _ended(by: str) -> Callable[[View, Data], None]:
    def end(c: View, d: Data) -> None:
        c["ended"] = {"by": by, "reason": d.get("reason")}
    return end


def _caller(c: View, d: Data) -> None:
    c["caller"] = {"name": d.get("name"), "returning": bool(d.get("returning"))}


def _memory_write(c: View, d: Data) -> None:
    if d.get("kind") == "name":
        c["caller"]["name"] = d.get("text")


def _reply(c: View, d: Data) -> None:
    c["said"] = str(d.get("text", ""))


def _resumed(c: View, d: Data) -> None:
    carried = d.get("conversation")
    if isinstance(carried, dict):
        # a carried-on call's stored view starts where the call it carries on was
        c.update(_copy({k: v for k, v in carried.items() if k != "before"}))
    c["resumed"] += 1
    c["origin"] = c.get("origin") or d.get("from")  # its runs' keys begin with it


# kept through a rollback: run names stay unique in a call (idempotency keys use them)
_KEPT = ("before", "runs", "resumed", "origin")


def _input(c: View, d: Data) -> None:
    """An input starts: keep the state before it, to put back if a later turn replaces
    this one (the caller went on talking, ``agent.rollback``)."""
    c["before"] = {"turn": d.get("turn"),
                   "state": _copy({k: v for k, v in c.items() if k not in _KEPT})}


def _rolled_back_to(c: View, d: Data) -> None:
    before = c.get("before")
    if before is not None and before["turn"] == d.get("superseded"):
        c.update(_copy(before["state"]))


def _reopened(c: View, d: Data) -> None:
    # the caller cut our goodbye or transfer: the call goes on, the question that run
    # left open is not what they last heard
    c["ended"] = None
    c["run"] = None
    c["agent"] = None


_CONVERSATION: dict[str, Callable[[View, Data], None]] = {
    "agent.handoff": lambda c, d: c.update(agent=d.get("to")),
    "slots.changed": lambda c, d: _slots(c["slots"], d),
    "agent.failure": _failure,
    "agent.failures": _failure,  # failures in a row reset or counted (tool failures)
    "agent.turn": _turn,
    "call.escalated": _ended("escalation"),
    "agent.goodbye": _ended("goodbye"),
    "caller.known": _caller,
    "memory.write": _memory_write,
    "agent.reply": _reply,
    "session.resumed": _resumed,
    "agent.input": _input,
    "agent.rollback": _rolled_back_to,
    "agent.reopened": _reopened,
}


def fold_conversation(c: View, type: str, d: Data, ts: float) -> View:
    """Fold one event of a call into its conversation (in place; returns it).

    The slots are the call's, not the run's: a ``slots.changed`` from a run's ``set``
    changes the call's slots. Every other event naming a ``run`` belongs to the run of
    the agent in control and is folded into ``run``.
    """
    handler = _CONVERSATION.get(type)
    if handler is not None:
        handler(c, d)
    elif "run" in d:
        _run_event(c, type, d, ts)
    return c


def _call(view: View | None, event: StoredEvent, ident: str) -> View:
    v: View = view if view is not None else {
        "kind": "call", "id": ident, "status": "active", "started_ts": event.ts,
        "conversation": new_conversation(),
    }
    v["last_type"] = event.type
    if event.type.endswith("ended") or event.type in ("call.hangup", "session.closed"):
        v["status"] = "ended"
    data = event.data
    if "bus_seq" in data:  # the bus's own seq, added by the log writer: not the call's state
        data = {k: val for k, val in data.items() if k != "bus_seq"}
    fold_conversation(v["conversation"], event.type, data, event.ts)
    return v


# --- schedules and breakers ----------------------------------------------------------------


def _schedule(view: View | None, event: StoredEvent, ident: str) -> View:
    v: View = view if view is not None else {
        "kind": "schedule", "id": ident, "due": None, "fired": 0, "last_instance": None,
    }
    if event.type == "schedule.armed":
        v["due"] = event.data["due"]
        v["cron"] = event.data.get("cron")
    elif event.type == "schedule.fired":
        v["fired"] += 1
        v["last_instance"] = event.data.get("instance")
        v["due"] = None
    return v


def _breaker(view: View | None, event: StoredEvent, ident: str) -> View:
    v: View = view if view is not None else {"kind": "breaker", "id": ident, "state": "closed"}
    if event.type == "breaker.state":
        v["state"] = event.data["to"]
    return v
