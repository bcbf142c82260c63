"""Checks every declared state machine gets when it is defined (workflows, agent flows)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def graph_problems(
    start: str,
    succ: Mapping[str, Sequence[str]],
    finals: Iterable[str],
    trap: str = "trap state: no end state can be reached from it",
) -> list[tuple[str, str]]:
    """Unreachable states (from ``start``) and trap states (no final state reachable)."""
    found: list[tuple[str, str]] = []
    seen, todo = {start}, [start]
    while todo:
        for t in succ[todo.pop()]:
            if t not in seen:
                seen.add(t)
                todo.append(t)
    for name in succ:
        if name not in seen:
            found.append((f"states.{name}", "unreachable from the start state"))
    alive = set(finals)
    changed = True
    while changed:
        changed = False
        for n, targets in succ.items():
            if n not in alive and any(t in alive for t in targets):
                alive.add(n)
                changed = True
    for name in succ:
        if name in seen and name not in alive:
            found.append((f"states.{name}", trap))
    return found
