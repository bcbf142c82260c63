"""The shipped catalog: its tools (offline, on local data) and its YAML workflows."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from orchestration.catalog import text as catalog_text
from orchestration.catalog import tools as catalog_tools
from orchestration.catalog.sample_data import LocalSystems
from orchestration.patterns.bulkhead import Bulkhead
from orchestration.patterns.llm import LlmConfig, TextModel
from orchestration.patterns.tools import ToolRegistry
from orchestration.workflow.definition import WorkflowDef
from orchestration.workflow.loader import CATALOG, load_dir


def build_registry(
    model: TextModel | None = None, systems: LocalSystems | None = None,
    bulkheads: Mapping[str, Bulkhead] | None = None,
) -> ToolRegistry:
    """Every catalog tool; text tools use ``model`` (default: from the environment)."""
    reg = ToolRegistry(bulkheads)
    catalog_text.register(reg, model or TextModel(LlmConfig.from_env()))
    catalog_tools.register(reg, systems or LocalSystems())
    return reg


def load_catalog(registry: ToolRegistry, directory: Path = CATALOG) -> dict[str, WorkflowDef]:
    return load_dir(directory, registry)
