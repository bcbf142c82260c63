"""Derived views: the current state of each workflow, call, schedule and breaker.

``project(view, event)`` folds one event into the view of its stream. It is the only code
that turns events into state: the engine keeps its live state with it, the stores keep the
stored views with it, and replay rebuilds them with it, so "replay gives the live state"
holds by construction (and is property-tested). It may change ``view`` in place and must
be deterministic: everything it needs comes from the event, never from a clock.

Stream ids name their kind: ``wf:<id>`` workflows, ``call:<session>`` voice calls,
``sched:<workflow>`` cron schedules, ``breaker:<tool>`` circuit breakers.
"""

from __future__ import annotations

import json
from typing import Any

from orchestration.store import StoredEvent, View

TERMINAL = frozenset({"succeeded", "failed", "compensated", "cancelled"})


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
        return _count(_workflow(view, event, ident), event)
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


def _workflow(view: View | None, event: StoredEvent, ident: str) -> View:
    v = new_workflow_view(ident) if view is None else view
    d = event.data
    t = event.type
    if t == "workflow.started":
        v["name"] = d["name"]
        v["ctx"]["input"] = d.get("input", {})
        v["status"] = "running"
        v["started_ts"] = event.ts
    elif t == "state.entered":
        v["state"] = d["state"]
        v["branches"].pop(d["state"], None)  # a state entered again fans out afresh
        if v["status"] not in TERMINAL:
            v["status"] = "running"
    elif t == "workflow.resumed":
        v["status"] = "running"
    elif t == "saga.compensating":
        v["status"] = "compensating"
        v["error"] = d.get("error")
    elif t == "rollback.started":
        v["status"] = "rolling_back"
        v["rollback_to"] = d["checkpoint"]
    elif t == "workflow.waiting":
        v["status"] = "waiting"
    elif t == "step.started":
        v["running"][d["step"]] = d.get("attempt", 1)
    elif t == "step.completed":
        v["ctx"]["steps"][d["step"]] = d.get("output")
        v["running"].pop(d["step"], None)
        v["compensations"].pop(d["step"], None)  # done again: its undo is owed again
        if d["step"] not in v["done"]:
            v["done"].append(d["step"])
    elif t == "step.failed":
        v["running"].pop(d["step"], None)
        v["error"] = d.get("error")
    elif t in ("branch.completed", "branch.failed"):
        branches = v["branches"].setdefault(d["step"], {})
        if t == "branch.completed":
            branches[d["branch"]] = {"ok": True, "output": d.get("output")}
        else:
            branches[d["branch"]] = {"ok": False, "error": d.get("error")}
    elif t == "checkpoint.saved":
        v["checkpoints"].append(
            {"step": d["step"], "done": len(v["done"]), "ctx": _copy(v["ctx"])}
        )
    elif t == "rollback.completed":
        _rollback(v, d["checkpoint"])
        v["state"] = d.get("state", v["state"])
        v["status"] = "paused"
        v.pop("rollback_to", None)
    elif t == "workflow.paused":
        v["status"] = "paused"
    elif t == "compensation.completed":
        v["compensations"][d["step"]] = "done"
    elif t == "compensation.failed":
        v["compensations"][d["step"]] = "failed"
    elif t == "signal.received":
        name = d["signal"]
        v["ctx"]["signal"] = {"name": name, "data": d.get("data", {})}
        if name.startswith("slot."):
            v["ctx"]["slots"][name[5:]] = d.get("data", {}).get("value")
    elif t == "vars.set":
        v["ctx"]["vars"].update(d.get("vars", {}))
    elif t == "transition.rejected":
        v["rejected"] += 1
        v["last_rejection"] = dict(d)
    elif t == "timer.set":
        v["timers"][d["timer"]] = {k: d[k] for k in d if k != "timer"}
    elif t in ("timer.fired", "timer.cancelled"):
        v["timers"].pop(d["timer"], None)
    elif t == "sla.escalated":
        v["escalations"] += 1
    elif t == "workflow.completed":
        v["status"] = d.get("status", "succeeded")
        v["output"] = d.get("output")
        v["timers"] = {}
    elif t == "workflow.failed":
        v["status"] = "failed"
        v["error"] = d.get("error")
        v["timers"] = {}
    elif t == "workflow.compensated":
        v["status"] = "compensated"
        v["timers"] = {}
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


def _call(view: View | None, event: StoredEvent, ident: str) -> View:
    v: View = view if view is not None else {
        "kind": "call", "id": ident, "status": "active", "started_ts": event.ts,
    }
    v["last_type"] = event.type
    if event.type.endswith("ended") or event.type in ("call.hangup", "session.closed"):
        v["status"] = "ended"
    return v


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
