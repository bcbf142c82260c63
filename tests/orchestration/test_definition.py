"""Definitions are rejected at load time, naming the file and the path inside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from orchestration.patterns.tools import ToolRegistry
from orchestration.workflow.definition import WorkflowDef
from orchestration.workflow.diagram import to_graph, to_mermaid
from orchestration.workflow.loader import DefinitionError, from_dict, load_file, load_text

GOOD = """
name: booking
start: ask
permissions: [calendar.write]
states:
  ask:
    on:
      - signal: intent.book
        guard: "slots.date != null"
        target: book
      - signal: dtmf
        guard: "signal.data.digit == '0'"
        target: operator
    timers:
      - {after: 2m, target: operator}
  book: {tool: calendar.book, input: {date: $slots.date}, next: decide}
  decide:
    rules: [{guard: "steps.book.ok", target: done}]
    default: operator
  operator: {kind: end, status: failed}
  done: {kind: end, output: {date: $slots.date}}
"""


class _In(BaseModel):
    date: str


class _Out(BaseModel):
    ok: bool


def registry() -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool("calendar.book", permissions=["calendar.write"])
    def book(inp: _In) -> _Out:
        return _Out(ok=True)

    return reg


def problems(text: str, reg: ToolRegistry | None = None) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionError) as err:
        load_text(text, "flows/x.yaml", reg)
    assert err.value.source == "flows/x.yaml"
    return err.value.problems


def test_a_good_definition_loads_and_draws() -> None:
    wf = load_text(GOOD, "booking.yaml", registry())
    assert list(wf.states) == ["ask", "book", "decide", "operator", "done"]
    assert wf.states["ask"].kind == "wait" and wf.states["decide"].kind == "choice"
    mermaid = to_mermaid(wf)
    assert mermaid.splitlines()[:2] == ["stateDiagram-v2", "    [*] --> ask"]
    assert '    ask --> book : intent.book [slots.date != null]' in mermaid
    assert "    done --> [*]" in mermaid
    graph = to_graph(wf)
    assert {n["id"]: n["kind"] for n in graph["nodes"]}["decide"] == "choice"
    assert {"from": "ask", "to": "operator", "label": "after 120s", "kind": "timer"} in graph[
        "edges"]


def test_unknown_targets_unreachable_and_trap_states() -> None:
    found = problems("""
name: x
start: a
states:
  a: {tool: calendar.book, next: nowhere}
  b: {kind: end}
""")
    assert found == [("states.a.next", "unknown target state 'nowhere'")]
    found = problems("""
name: x
start: a
states:
  a: {tool: t, next: loop}
  loop: {on: [{signal: s, target: a}]}
  done: {kind: end}
""")
    assert found == [
        ("states.done", "unreachable from the start state"),
        ("states.a", "trap state: no end state can be reached from it"),
        ("states.loop", "trap state: no end state can be reached from it"),
    ]


def test_steps_without_a_tool_bad_guards_and_bad_cron() -> None:
    found = problems("""
name: x
start: a
schedule: {cron: "every tuesday"}
states:
  a: {kind: task, next: w}
  w: {on: [{signal: s, guard: "slots.x >", target: d}]}
  d: {kind: end}
""")
    assert found == [
        ("states.a.tool", "a task needs a tool (or a chain of tools)"),
        ("schedule.cron", "not a cron expression: 'every tuesday'"),
        ("states.w.on[0].guard", "bad expression: unexpected end of expression, expected a value"),
    ]


def test_field_errors_carry_their_path() -> None:
    found = problems("""
name: Bad-Name
start: a
states:
  a: {tool: t, next: d, retry: {max_attempts: 0, base: "3 parsecs"}}
  d: {kind: end, colour: red}
""")
    assert ("name", "String should match pattern '^[a-z][a-z0-9_]*$'") in found
    assert ("states.a.retry.max_attempts", "Input should be greater than or equal to 1") in found
    assert any(p == "states.a.retry.base" and "not a duration" in m for p, m in found)
    assert ("states.d.colour", "Extra inputs are not permitted") in found


def test_unknown_tools_and_missing_permissions_with_a_registry() -> None:
    text = GOOD.replace("permissions: [calendar.write]", "permissions: []").replace(
        "next: decide", "next: decide, fallbacks: [calendar.pencil]")
    assert problems(text, registry()) == [
        ("states.book.tool", "tool 'calendar.book' needs permissions ['calendar.write'] that "
                             "the workflow does not grant"),
        ("states.book.fallbacks[0]", "unknown tool 'calendar.pencil'"),
    ]


def test_yaml_and_file_errors(tmp_path: Path) -> None:
    assert problems("name: [")[0][0] == "line 1, column 8"
    assert problems("- just a list") == [("(top)", "a workflow definition must be a mapping")]
    with pytest.raises(DefinitionError, match=r"nope\.yaml: \(file\)"):
        load_file(tmp_path / "nope.yaml")


def test_python_definitions_are_checked_when_built() -> None:
    with pytest.raises(DefinitionError, match=r"states\.b: unreachable"):
        from_dict({"name": "p", "start": "a", "states": {
            "a": {"kind": "end"}, "b": {"kind": "end"}}})
    with pytest.raises(ValueError, match="choice needs a default"):
        WorkflowDef.model_validate({"name": "p", "start": "a", "states": {
            "a": {"kind": "choice", "rules": [{"guard": "input.x", "target": "b"}]},
            "b": {"kind": "end"}}})


def test_an_engine_refuses_python_definitions_whose_tools_it_lacks() -> None:
    from orchestration.log.store import MemoryEventStore
    from orchestration.log.views import project
    from orchestration.workflow.engine import Engine

    wf = WorkflowDef.model_validate({"name": "p", "start": "a", "states": {
        "a": {"tool": "calendar.book", "next": "b"}, "b": {"kind": "end"}}})
    with pytest.raises(DefinitionError) as err:
        Engine(MemoryEventStore(project), registry(), [wf])
    assert err.value.problems == [
        ("states.a.tool", "tool 'calendar.book' needs permissions ['calendar.write'] that the "
                          "workflow does not grant")]


CONVERSATION = """
name: chat
intents: [book]
slots: [date]
start: hello
states:
  hello: {say: "Hello.", next: when, set: {greeted: "true"}}
  when: {slot: date, say: "Which day?", next: confirm}
  confirm:
    say: "{spoken.date}, shall I book it?"
    on:
      - {changed: [date], target: confirm}
      - {intent: [affirm], guard: "vars.greeted", target: done}
    else: human
  done: {say: "Booked."}
  human: {status: escalated, reason: "caller unsure"}
"""


def test_conversation_states_infer_their_kinds_and_draw() -> None:
    wf = load_text(CONVERSATION, "chat.yaml")
    assert [s.kind for s in wf.states.values()] == ["say", "wait", "wait", "end", "end"]
    assert wf.conversational and wf.intents == ["book"] and wf.slots == ["date"]
    edges = {(e["from"], e["to"]): (e["kind"], e["label"]) for e in to_graph(wf)["edges"]}
    assert edges[("hello", "when")] == ("next", "next")
    assert edges[("when", "confirm")] == ("slot", "date known")
    assert edges[("confirm", "done")] == ("turn", "affirm [vars.greeted]")
    assert edges[("confirm", "confirm")] == ("turn", "changed date")
    assert edges[("confirm", "human")] == ("else", "else")
    assert "    when : when (asks for date)" in to_mermaid(wf)
    assert not load_text(GOOD, "booking.yaml", registry()).conversational


def test_conversation_states_are_checked() -> None:
    found = problems("""
name: x
start: a
states:
  a: {kind: wait, slot: date, say: "{spoken.date", else: b}
  b: {kind: wait, say: "Why {turn.foo ==}?", next: c, on: [{signal: s, intent: yes, target: c}]}
  c: {kind: wait, on: [{target: d}], set: {"vars.x": "1", "slots.y": "2 +"}}
  d: {kind: say, say: "bye", next: nowhere}
""")
    assert found == [
        ("states.a.next", "a wait with a slot needs next: where to go once the slot is known"),
        ("states.b.next", "next on a wait needs a slot to wait for"),
        ("states.b.on[0]", "a transition matches a signal or a caller's turn (intent, "
                           "changed), not both"),
        ("states.c.set.vars.x", "set a variable name or slots.<name>"),
        ("states.c.on[0]", "a transition needs a signal, an intent, changed slots or a guard "
                           "(else: for any other turn)"),
        ("states.d.next", "unknown target state 'nowhere'"),
        ("states.b.say", "bad expression: unexpected end of expression, expected a value"),
        ("states.c.set.slots.y", "bad expression: unexpected character '+' at 2"),
    ]
