"""The memory tools of a call: ``memory.remember`` and ``memory.recall``, bound to the
caller's ``MemoryRouter`` (secrets refused, nothing kept for an anonymous line).

They are tools like any other -- declared permissions (``memory.write``,
``memory.read``), typed input and output, the same policy gate and events -- but each
call has its own, so a flow can only reach its own caller's memory:

    registry = ToolRegistry(); register_memory_tools(registry)   # declared, for the checks
    tools = CallTools(registry, router)                          # per call: bound to it
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from memory.router import MemoryRouter
from orchestration.patterns.tools import Tool, ToolError, ToolRegistry, UnknownTool

REMEMBER = "memory.remember"
RECALL = "memory.recall"


class RememberIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: str = "note"
    text: str | None = None


class RememberOut(BaseModel):
    ok: bool
    id: int | None = None
    anonymous: bool
    refused: bool


class RecallIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: str = "note"
    limit: int = 5
    query: str | None = None


class RecallOut(BaseModel):
    ok: bool
    count: int
    items: list[str]
    last: str
    spoken: str


def _tools(router: MemoryRouter | None) -> list[Tool]:
    def unbound(name: str) -> ToolError:
        return ToolError(name, "memory tools are bound to a call (workflow/memory_tools.py)")

    def remember(inp: RememberIn) -> RememberOut:
        if router is None:
            raise unbound(REMEMBER)
        text = (inp.text or "").strip()
        item = router.remember(inp.kind, text) if text else None
        return RememberOut(ok=item is not None, id=item, anonymous=not router.enabled,
                           refused=item is None and bool(text) and router.enabled)

    def recall(inp: RecallIn) -> RecallOut:
        if router is None:
            raise unbound(RECALL)
        texts = [i.text for i in router.recall(inp.kind, inp.limit, inp.query or None)]
        return RecallOut(ok=True, count=len(texts), items=texts,
                         last=texts[0] if texts else "",
                         spoken=" ".join(f"{n}: {t.rstrip('.')}." for n, t in
                                         enumerate(texts, 1)))

    return [
        Tool(REMEMBER, remember, RememberIn, RememberOut, frozenset({"memory.write"}),
             "Keep a note or fact for this caller (never a secret).", timeout=5.0),
        Tool(RECALL, recall, RecallIn, RecallOut, frozenset({"memory.read"}),
             "Read this caller's recent notes or facts.", timeout=5.0),
    ]


def register_memory_tools(registry: ToolRegistry) -> None:
    """Declare the memory tools (for load-time checks and schemas); calling one outside
    a call fails: ``CallTools`` binds them to a caller."""
    for tool in _tools(None):
        registry.register(tool)


class CallTools(ToolRegistry):
    """A call's tools: its own memory tools over the shared registry's."""

    def __init__(self, base: ToolRegistry, router: MemoryRouter) -> None:
        super().__init__(base.bulkheads)
        self.base = base
        for tool in _tools(router):
            self.register(tool)

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or name in self.base

    def get(self, name: str) -> Tool:
        try:
            return super().get(name)
        except UnknownTool:
            return self.base.get(name)

    def names(self) -> list[str]:
        return sorted(set(super().names()) | set(self.base.names()))

    def describe(self) -> list[dict[str, Any]]:
        return [self.get(n).describe() for n in self.names()]
