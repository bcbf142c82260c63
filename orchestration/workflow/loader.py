"""Loading workflow definitions from YAML, with errors that name the file and the path.

Everything wrong with a definition is reported as a ``DefinitionError`` listing each
problem as ``<file>: <path inside it>: <message>`` -- pydantic's field errors, the graph
checks of ``definition.problems`` and, when a registry is given, tools that are not
registered or need permissions the workflow was not granted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from orchestration.errors import OrchestrationError
from orchestration.patterns.tools import ToolRegistry
from orchestration.workflow.definition import (
    KINDS,
    ParallelState,
    TaskState,
    WaitState,
    WorkflowDef,
    problems,
)

CATALOG = Path(__file__).parents[1] / "catalog"


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: ``on``, ``off``, ``yes``, ``no`` stay strings (``on:`` is a key)."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


class DefinitionError(OrchestrationError):
    def __init__(self, source: str, found: Iterable[tuple[str, str]]) -> None:
        self.source = source
        self.problems = list(found)
        lines = "\n".join(f"  {source}: {path}: {msg}" for path, msg in self.problems)
        super().__init__(f"invalid workflow definition {source}:\n{lines}")


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in KINDS and out.startswith("states."):
            continue  # pydantic's discriminator tag, not a key in the file
        else:
            out += ("." if out else "") + str(part)
    return out or "(top)"


def _split(msg: str) -> list[tuple[str, str]]:
    # model-level problems arrive as one string, a "path: message" per line
    parts = [p.strip() for p in msg.removeprefix("Value error, ").split("\n")]
    out = []
    for p in parts:
        m = re.match(r"^([\w.\[\]-]+): (.*)$", p)
        out.append((m.group(1), m.group(2)) if m else ("(top)", p))
    return out


def from_dict(data: Any, source: str = "<python>",
              registry: ToolRegistry | None = None) -> WorkflowDef:
    if not isinstance(data, dict):
        raise DefinitionError(source, [("(top)", "a workflow definition must be a mapping")])
    try:
        wf = WorkflowDef.model_validate(data)
    except ValidationError as exc:
        found: list[tuple[str, str]] = []
        for err in exc.errors():
            if not err["loc"]:
                found += _split(err["msg"])
            else:
                found.append((_loc(err["loc"]), err["msg"]))
        raise DefinitionError(source, found) from None
    if registry is not None:
        bad = check_tools(wf, registry)
        if bad:
            raise DefinitionError(source, bad)
    return wf


def check_tools(wf: WorkflowDef, registry: ToolRegistry) -> list[tuple[str, str]]:
    """Every tool a workflow names exists, and the workflow was granted its permissions."""
    found: list[tuple[str, str]] = []
    granted = set(wf.permissions)

    def check(path: str, name: str) -> None:
        if name not in registry:
            found.append((path, f"unknown tool {name!r}"))
            return
        missing = registry.get(name).permissions - granted
        if missing:
            found.append((path, f"tool {name!r} needs permissions {sorted(missing)} that the "
                          "workflow does not grant"))

    for sname, st in wf.states.items():
        base = f"states.{sname}"
        if isinstance(st, TaskState):
            if st.tool:
                check(f"{base}.tool", st.tool)
            for i, t in enumerate(st.chain):
                check(f"{base}.chain[{i}]", t)
            for i, t in enumerate(st.fallbacks):
                check(f"{base}.fallbacks[{i}]", t)
            if st.compensate:
                check(f"{base}.compensate.tool", st.compensate.tool)
        elif isinstance(st, ParallelState):
            for b, call in st.branches.items():
                check(f"{base}.branches.{b}.tool", call.tool)
            if st.each:
                check(f"{base}.each.tool", st.each.tool)
        elif isinstance(st, WaitState):
            for i, lvl in enumerate(st.sla):
                check(f"{base}.sla[{i}].escalate.tool", lvl.escalate.tool)
    return found


def load_text(text: str, source: str, registry: ToolRegistry | None = None) -> WorkflowDef:
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader: no object tags
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(top)"
        raise DefinitionError(source, [(where, f"not valid YAML: {exc}")]) from None
    return from_dict(data, source, registry)


def load_file(path: str | Path, registry: ToolRegistry | None = None) -> WorkflowDef:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(str(path), [("(file)", str(exc))]) from None
    return load_text(text, str(path), registry)


def load_dir(directory: str | Path = CATALOG,
             registry: ToolRegistry | None = None) -> dict[str, WorkflowDef]:
    """Load every ``*.yaml`` in a directory; a workflow's name must be unique."""
    out: dict[str, WorkflowDef] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        wf = load_file(path, registry)
        if wf.name in out:
            raise DefinitionError(str(path), [("name", f"workflow {wf.name!r} is defined twice")])
        out[wf.name] = wf
    return out


__all__ = ["CATALOG", "DefinitionError", "check_tools", "from_dict", "load_dir", "load_file",
           "load_text", "problems"]
