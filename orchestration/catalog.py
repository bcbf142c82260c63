"""The shipped catalog: its tools (offline, on local data) and its YAML workflows."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from orchestration import catalog_text, catalog_tools
from orchestration.bulkhead import Bulkhead
from orchestration.definition import WorkflowDef
from orchestration.llm import LlmConfig, TextModel
from orchestration.loader import CATALOG, load_dir
from orchestration.sample_data import LocalSystems
from orchestration.tools import ToolRegistry


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
