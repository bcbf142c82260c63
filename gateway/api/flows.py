"""The voice agents' dialogue flows as graphs, for the dashboard's workflow diagram.

    GET /api/flows                 the flows' names and descriptions
    GET /api/flows/{name}          {name, graph, mermaid}; 404 for an unknown flow

A call's ``workflow.transition`` events name the flow (``agent``) and the state it entered
(``to``); the dashboard draws this graph with that state lit. The graph has the shape of
``orchestration.workflow.diagram.to_graph`` (``{name, start, nodes, edges}``), so one drawing
serves both flows and workflows (a flow is a workflow definition).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException

from orchestration.agents.config import load
from orchestration.workflow.definition import WorkflowDef
from orchestration.workflow.diagram import to_graph, to_mermaid


def flows_router(config: Path | None = None) -> APIRouter:
    router = APIRouter(tags=["flows"])

    @functools.cache
    def flows() -> dict[str, WorkflowDef]:
        _, found, _ = load(config)
        return {f.name: f for f in found}

    @router.get("/api/flows")
    async def list_flows() -> list[dict[str, str]]:
        return [{"name": f.name, "description": f.description} for f in flows().values()]

    @router.get("/api/flows/{name}")
    async def get_flow(name: str) -> dict[str, Any]:
        flow = flows().get(name)
        if flow is None:
            raise HTTPException(404, f"unknown flow {name!r}")
        return {"name": name, "graph": to_graph(flow), "mermaid": to_mermaid(flow)}

    return router
