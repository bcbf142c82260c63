"""The agents' configuration: one YAML file (``orchestration/agents/default.yaml`` by
default) naming the intents file, the flow files and every setting, checked as a whole
when it is loaded.

Each flow is a workflow definition (``definition.WorkflowDef``, the one format the
workflow engine runs), loaded with the workflow loader's checks. Beyond each model's own
checks (unknown keys, types, flow graphs), ``check`` verifies
what spans files: every tool a flow calls is registered and granted by the flow's
permissions, every intent a flow or the keypad menu names is an intent of the NLU (or
one of the supervisor's), and no intent is routed to two agents. Problems are listed
together, each with the file and path, as workflow definitions are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestration.agents.nlu.parser import NluConfig
from orchestration.agents.ops import OpsConfig
from orchestration.agents.scheduling import HoursConfig
from orchestration.agents.support import SupportConfig
from orchestration.errors import OrchestrationError
from orchestration.patterns.tools import ToolRegistry
from orchestration.workflow.definition import WaitState, WorkflowDef
from orchestration.workflow.loader import DefinitionError, check_tools, from_dict
from orchestration.workflow.loader import _Loader as YamlLoader

DEFAULT_CONFIG = Path(__file__).parent / "default.yaml"
# handled by the supervisor itself, whatever agent is active
GLOBAL_INTENTS = ("affirm", "deny", "escalate", "goodbye", "tell_name", "help", "repeat",
                  "out_of_scope", "unknown")
MEMORY_TOOLS = ("memory.remember", "memory.recall")


class AgentsConfigError(OrchestrationError):
    def __init__(self, source: str, found: list[tuple[str, str]]) -> None:
        lines = "\n".join(f"  {source}: {path}: {msg}" for path, msg in found)
        super().__init__(f"invalid agents configuration {source}:\n{lines}")
        self.problems = found


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SupervisorConfig(_Model):
    greeting: str = "Hello, how can I help?"
    greeting_returning: str = "Welcome back, {name}. How can I help today?"
    greeting_returning_anonymous: str = "Welcome back. How can I help today?"
    greeting_booking: str = "Your next appointment is {booking}."
    anything_else: str = "Is there anything else I can help with?"
    not_understood: str = "Sorry, I didn't get that."
    help: str = "I can help with support, appointments, notes and system status."
    name_ack: str = "Nice to meet you, {name}."
    goodbye: str = "Thank you for calling. Goodbye!"
    escalation: str = "Let me put you through to a colleague. Please hold."
    # said first when a call carries on from a dropped one (CallInfo.resume_from)
    resumed: str = "Sorry, we were cut off."
    transfer_target: str = "operator"
    max_failures: int = Field(2, ge=1, le=10)
    # a global intent (goodbye, escalate) interrupts a free-text answer only this sure
    interrupt_confidence: float = Field(0.5, ge=0, le=1)
    # a request for another agent leaves a task waiting for an answer this sure ...
    switch_confidence: float = Field(0.6, ge=0, le=1)
    # ... and a free-text answer (a note being dictated) only this sure, or when it is a
    # question, or starts with one of leave_phrases ("never mind", which alone drops it)
    free_text_switch_confidence: float = Field(0.97, ge=0, le=1)
    leave_phrases: list[str] = Field(default_factory=list)
    # ... or opens with a change of mind ("actually, ..."): then switch_confidence will do
    change_phrases: list[str] = Field(default_factory=list)
    # said when a task is left: by "flow.state", else "flow", else "default"
    set_aside: dict[str, str] = Field(default_factory=dict)
    dtmf_menu: dict[str, str] = Field(default_factory=dict)


class LlmAgentConfig(_Model):
    base_url: str | None = None
    model: str = "gpt-4o-mini"
    api_key_env: str = "VOXGATE_LLM_API_KEY"
    timeout_s: float = Field(20.0, gt=0)
    max_tool_rounds: int = Field(4, ge=1, le=10)


class MemoryConfig(_Model):
    path: Path | None = None  # default: <data dir>/memory.db
    search: str = Field("fts", pattern="^(fts|embeddings)$")
    model_dir: Path | None = None


class AgentsConfig(_Model):
    intents_file: Path
    flows: list[Path]
    supervisor: SupervisorConfig = Field(default_factory=SupervisorConfig)
    nlu: NluConfig = Field(default_factory=NluConfig)
    llm: LlmAgentConfig = Field(default_factory=LlmAgentConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    # phrases of the agents' domain given to the recogniser as context ("previous text")
    stt_prompt: str | None = Field(None, max_length=600)
    scheduling: HoursConfig = Field(default_factory=HoursConfig)
    support: SupportConfig = Field(default_factory=SupportConfig)
    ops: OpsConfig = Field(default_factory=OpsConfig)


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(root)"


def _read_yaml(path: Path) -> Any:
    try:
        # YAML 1.2 booleans, as for workflows: "on:" is a key, "off" a word
        return yaml.load(path.read_text(), Loader=YamlLoader)  # a SafeLoader
    except (OSError, yaml.YAMLError) as exc:
        raise AgentsConfigError(str(path), [("(file)", str(exc))]) from None


def load(path: Path | None = None, overrides: dict[str, Any] | None = None
         ) -> tuple[AgentsConfig, list[WorkflowDef], dict[str, Any]]:
    """(config, flows, intents mapping) from a YAML file; ``overrides`` are merged into its
    top-level sections (tests point ``ops.services`` at a loopback server this way)."""
    path = path or DEFAULT_CONFIG
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise AgentsConfigError(str(path), [("(root)", "expected a mapping")])
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    base = path.parent
    for key in ("intents_file",):
        if isinstance(raw.get(key), str):
            raw[key] = str(base / raw[key])
    if isinstance(raw.get("flows"), list):
        raw["flows"] = [str(base / f) for f in raw["flows"]]
    ops = raw.get("ops")
    if isinstance(ops, dict) and isinstance(ops.get("status_file"), str):
        ops["status_file"] = str(base / ops["status_file"])
    try:
        config = AgentsConfig.model_validate(raw)
    except ValidationError as exc:
        raise AgentsConfigError(str(path), [(_loc(e["loc"]), e["msg"]) for e in exc.errors()]
                                ) from None
    flows: list[WorkflowDef] = []
    problems: list[tuple[str, str]] = []
    for flow_path in config.flows:
        data = _read_yaml(flow_path)
        try:
            flows.append(from_dict(data, str(flow_path)))
        except DefinitionError as exc:
            problems += [(f"{flow_path.name}: {where}", msg) for where, msg in exc.problems]
    if problems:
        raise AgentsConfigError(str(path), problems)
    intents_raw = _read_yaml(config.intents_file)
    if not isinstance(intents_raw, dict) or not isinstance(intents_raw.get("intents"), dict):
        raise AgentsConfigError(str(config.intents_file),
                                [("intents", "expected a mapping of intents")])
    return config, flows, intents_raw["intents"]


def check(config: AgentsConfig, flows: list[WorkflowDef], intents: list[str],
          registry: ToolRegistry, source: str = "<agents>") -> None:
    """Cross-file checks; raises ``AgentsConfigError`` listing every problem."""
    found: list[tuple[str, str]] = []
    known = set(intents) | set(GLOBAL_INTENTS)
    owner: dict[str, str] = {}
    for flow in flows:
        where = flow.name
        for intent in flow.intents:
            if intent not in intents:
                found.append((f"{where}.intents", f"unknown intent {intent!r}"))
            elif intent in owner:
                found.append((f"{where}.intents", f"intent {intent!r} is already routed to "
                                                  f"{owner[intent]!r}"))
            else:
                owner[intent] = flow.name
        for name, st in flow.states.items():
            if isinstance(st, WaitState):
                for i, on in enumerate(st.on):
                    for intent in on.intents:
                        if intent not in known:
                            found.append((f"{where}.states.{name}.on[{i}].intent",
                                          f"unknown intent {intent!r}"))
        # the memory tools are declared in ``registry`` (``register_memory_tools``)
        found += [(f"{where}.{path}", msg) for path, msg in check_tools(flow, registry)]
    for digit, intent in config.supervisor.dtmf_menu.items():
        if intent not in known:
            found.append((f"supervisor.dtmf_menu.{digit}", f"unknown intent {intent!r}"))
    states = {f.name: set(f.states) for f in flows}
    for key in config.supervisor.set_aside:
        name, _, state = key.partition(".")
        if key != "default" and (name not in states or (state and state not in states[name])):
            found.append((f"supervisor.set_aside.{key}", "not a flow or flow.state"))
    if found:
        raise AgentsConfigError(source, found)


def opens_with(said: str, phrases: list[str]) -> bool:
    """``said`` (lower case) starts with one of ``phrases`` as whole words."""
    return any(said.startswith(p) and not said[len(p):len(p) + 1].isalnum() for p in phrases)
