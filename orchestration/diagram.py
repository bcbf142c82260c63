"""Workflows as diagrams: Mermaid ``stateDiagram-v2`` text and a JSON graph.

The JSON graph is what the dashboard draws: ``nodes`` (id, kind, label, tool) and
``edges`` (from, to, label, kind in ok/error/signal/timer/sla/rule/default/start/end).
"""

from __future__ import annotations

from typing import Any

from orchestration.definition import (
    ChoiceState,
    EndState,
    ParallelState,
    TaskState,
    WaitState,
    WorkflowDef,
    edges,
)


def _edge_kind(path: str) -> str:
    head = path.split(".", 1)[0].split("[", 1)[0]
    return {"next": "ok", "on_error": "error", "on": "signal", "timers": "timer", "sla": "sla",
            "rules": "rule", "default": "default"}[head]


def _label(name: str, st: Any) -> str:
    if isinstance(st, TaskState):
        return f"{name}: {' -> '.join(st.tools)}"
    if isinstance(st, ParallelState):
        n = f"each of {st.for_each}" if st.for_each else f"{len(st.branches)} branches"
        return f"{name}: fan-out {n} ({st.policy})"
    if isinstance(st, EndState):
        return f"{name}: {st.status}"
    return name


def to_graph(wf: WorkflowDef) -> dict[str, Any]:
    nodes = []
    for name, st in wf.states.items():
        node: dict[str, Any] = {"id": name, "kind": st.kind, "label": _label(name, st)}
        if isinstance(st, TaskState):
            node.update(tools=st.tools, checkpoint=st.checkpoint,
                        compensate=st.compensate.tool if st.compensate else None)
        elif isinstance(st, ParallelState):
            node.update(policy=st.policy, max_concurrency=st.max_concurrency,
                        branches=sorted(st.branches))
        elif isinstance(st, EndState):
            node.update(status=st.status)
        nodes.append(node)
    edge_list = [
        {"from": name, "to": target, "label": label, "kind": _edge_kind(path)}
        for name, st in wf.states.items()
        for path, target, label in edges(st)
    ]
    return {"name": wf.name, "description": wf.description, "start": wf.start, "saga": wf.saga,
            "schedule": wf.schedule.cron if wf.schedule else None, "nodes": nodes,
            "edges": edge_list}


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
            lines.append(f"    {name} : {name} (waits for signals)")
    for name, st in wf.states.items():
        for _, target, label in edges(st):
            lines.append(f"    {name} --> {target} : {_safe(label)}")
        if isinstance(st, EndState):
            lines.append(f"    {name} --> [*]")
    return "\n".join(lines) + "\n"
