"""Workflows as diagrams: Mermaid ``stateDiagram-v2`` text and a JSON graph.

One export for every definition, back-office workflows and the voice agents' flows alike.
The JSON graph is what the dashboard draws: ``nodes`` (id, kind, label, tools, ...) and
``edges`` (from, to, label, kind in ok/next/error/signal/turn/else/slot/timer/sla/rule/
default).
"""

from __future__ import annotations

from typing import Any

from orchestration.workflow.definition import (
    AnyState,
    ChoiceState,
    EndState,
    ParallelState,
    SayState,
    TaskState,
    WaitState,
    WorkflowDef,
    edges,
)


def _edge_kind(st: AnyState, path: str) -> str:
    head = path.split(".", 1)[0].split("[", 1)[0]
    if head == "on" and isinstance(st, WaitState):
        return "turn" if st.on[int(path[3:path.index("]")])].on_turn else "signal"
    if head == "next" and isinstance(st, WaitState):
        return "slot"
    if head == "next" and isinstance(st, SayState):
        return "next"
    return {"next": "ok", "on_error": "error", "timers": "timer", "sla": "sla", "rules": "rule",
            "default": "default", "else": "else"}[head]


def _label(name: str, st: AnyState) -> str:
    if isinstance(st, TaskState):
        return f"{name}: {' -> '.join(st.tools)}"
    if isinstance(st, ParallelState):
        n = f"each of {st.for_each}" if st.for_each else f"{len(st.branches)} branches"
        return f"{name}: fan-out {n} ({st.policy})"
    if isinstance(st, WaitState) and st.slot:
        return f"{name}: asks for {st.slot}"
    if isinstance(st, EndState):
        return f"{name}: {st.status}" + (f" ({st.reason})" if st.reason else "")
    return name


def _node(name: str, st: AnyState) -> dict[str, Any]:
    node: dict[str, Any] = {"id": name, "kind": st.kind, "label": _label(name, st)}
    if isinstance(st, TaskState):
        node.update(tools=st.tools, checkpoint=st.checkpoint,
                    compensate=st.compensate.tool if st.compensate else None)
    elif isinstance(st, ParallelState):
        node.update(policy=st.policy, max_concurrency=st.max_concurrency,
                    branches=sorted(st.branches))
    elif isinstance(st, WaitState):
        node.update(say=st.say, slot=st.slot)
    elif isinstance(st, SayState):
        node.update(say=st.say)
    elif isinstance(st, EndState):
        node.update(status=st.status, say=st.say,
                    remember=st.remember.kind if st.remember else None)
    return node


def to_graph(wf: WorkflowDef) -> dict[str, Any]:
    nodes = [_node(name, st) for name, st in wf.states.items()]
    edge_list = [
        {"from": name, "to": target, "label": label, "kind": _edge_kind(st, path)}
        for name, st in wf.states.items()
        for path, target, label in edges(st)
    ]
    return {"name": wf.name, "description": wf.description, "start": wf.start, "saga": wf.saga,
            "schedule": wf.schedule.cron if wf.schedule else None, "intents": wf.intents,
            "nodes": nodes, "edges": edge_list}


def _safe(text: str) -> str:
    return text.replace(":", " -").replace("\n", " ").replace(";", ",")


def to_mermaid(wf: WorkflowDef) -> str:
    lines = ["stateDiagram-v2", f"    [*] --> {wf.start}"]
    for name, st in wf.states.items():
        if isinstance(st, TaskState | ParallelState):
            lines.append(f"    {name} : {_safe(_label(name, st))}")
        elif isinstance(st, ChoiceState):
            lines.append(f"    state {name} <<choice>>")
        elif isinstance(st, WaitState):
            what = f"asks for {st.slot}" if st.slot else "waits"
            lines.append(f"    {name} : {name} ({what})")
    for name, st in wf.states.items():
        for _, target, label in edges(st):
            lines.append(f"    {name} --> {target} : {_safe(label)}")
        if isinstance(st, EndState):
            lines.append(f"    {name} --> [*]")
    return "\n".join(lines) + "\n"
