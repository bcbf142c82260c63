"""Loading evaluation suites: YAML files -> checked ``VoiceSuite`` / ``WorkflowSuite``
(gateway/evaluation/scenario.py). Every problem is collected and named with its file and
its path inside it; relative audio and agents-config paths are resolved against the
suite's folder and must exist; suites loaded together must agree on shared tiers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.evaluation.scenario import (
    Call,
    Suite,
    SuiteError,
    Tier,
    Turn,
    VoiceScenario,
    VoiceSuite,
    WorkflowSuite,
)
from orchestration.workflow.loader import _Loader as YamlLoader


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top)"


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for err in exc.errors():
        msg = str(err["msg"]).removeprefix("Value error, ")
        path = _loc(tuple(err["loc"]))
        for line in msg.split("\n"):
            m = re.match(r"^([\w.\[\]-]+): (.*)$", line)
            if m and path == "(top)":
                found.append((m.group(1), m.group(2)))
            else:
                found.append((path, line))
    return found


def _relative_paths(value: Any, base: Path) -> Any:
    if isinstance(value, dict):
        return {k: _relative_paths(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative_paths(v, base) for v in value]
    if isinstance(value, str) and value.startswith(("./", "../")):
        return str((base / value).resolve())
    return value


def _resolve_paths(suite: Suite, base: Path) -> Suite:
    """Audio files and agents configs are relative to the suite file; check they exist."""
    if isinstance(suite, WorkflowSuite):
        return suite
    problems: list[tuple[str, str]] = []
    agents = suite.agents
    if agents.config is not None:
        config = agents.config if agents.config.is_absolute() else base / agents.config
        if not config.is_file():
            problems.append(("agents.config", f"no such file: {config}"))
        agents = agents.model_copy(update={"config": config})
    if agents.overrides:
        agents = agents.model_copy(update={"overrides": _relative_paths(agents.overrides, base)})
    scenarios: list[VoiceScenario] = []
    for i, scenario in enumerate(suite.scenarios):
        calls: list[Call] = []
        for j, call in enumerate(scenario.calls):
            turns: list[Turn] = []
            for k, turn in enumerate(call.turns):
                if turn.audio is not None:
                    audio = turn.audio if turn.audio.is_absolute() else base / turn.audio
                    if not audio.is_file():
                        where = f"scenarios[{i}].calls[{j}].turns[{k}].audio"
                        problems.append((where, f"no such file: {audio}"))
                    turn = turn.model_copy(update={"audio": audio})
                turns.append(turn)
            calls.append(call.model_copy(update={"turns": turns}))
        scenarios.append(scenario.model_copy(update={"calls": calls}))
    if problems:
        raise SuiteError(str(suite.source), problems)
    return suite.model_copy(update={"agents": agents, "scenarios": scenarios})


def parse_suite(data: Any, source: str | Path = "<memory>", base: Path | None = None) -> Suite:
    """A suite from parsed YAML; ``base`` is where relative paths start (the file's folder)."""
    name = str(source)
    if not isinstance(data, dict):
        raise SuiteError(name, [("(top)", "a suite must be a mapping")])
    model: type[VoiceSuite] | type[WorkflowSuite]
    if data.get("kind") == "voice":
        model = VoiceSuite
    elif data.get("kind") == "workflow":
        model = WorkflowSuite
    else:
        raise SuiteError(name, [("kind", f"must be voice or workflow, got {data.get('kind')!r}")])
    try:
        suite = model.model_validate({**data, "source": Path(name)})
    except ValidationError as exc:
        raise SuiteError(name, _problems(exc)) from None
    return _resolve_paths(suite, base or Path.cwd())


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(str(path), [("(top)", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        data = yaml.load(text, Loader=YamlLoader)  # a SafeLoader: no object tags
    except yaml.YAMLError as exc:
        raise SuiteError(str(path), [("(top)", f"not YAML: {exc}")]) from None
    return parse_suite(data, path, path.parent)


def load_suites(paths: list[Path]) -> list[Suite]:
    """Every file (a folder: its ``*.yaml``), all checked before any runs; tier names
    shared by two suites must have the same thresholds."""
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.glob("*.yaml")) if p.is_dir() else [p])
    if not files:
        raise SuiteError(", ".join(map(str, paths)), [("(top)", "no suite files found")])
    suites: list[Suite] = []
    errors: list[SuiteError] = []
    for f in files:
        try:
            suites.append(load_suite(f))
        except SuiteError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        problems = [(f"{e.source}: {p}", m) for e in errors for p, m in e.problems]
        raise SuiteError(f"{len(errors)} of {len(files)} suite files", problems)
    seen: dict[str, tuple[str, Tier]] = {}
    names: dict[str, str] = {}
    for s in suites:
        if s.suite in names:
            raise SuiteError(str(s.source), [("suite", f"name {s.suite!r} is also used by "
                                                       f"{names[s.suite]}")])
        names[s.suite] = str(s.source)
        for tier, limits in s.tiers.items():
            if tier in seen and seen[tier][1] != limits:
                raise SuiteError(str(s.source), [(
                    f"tiers.{tier}", f"differs from the same tier in {seen[tier][0]}")])
            seen.setdefault(tier, (str(s.source), limits))
    return suites
