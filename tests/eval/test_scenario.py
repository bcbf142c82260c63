"""Suites are checked when loaded: every problem named with its file and path, before any
call is placed; the shipped suites all load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.evaluation.load import load_suite, load_suites, parse_suite
from gateway.evaluation.scenario import SuiteError, VoiceSuite, WorkflowSuite, variant_params

EVALS = Path(__file__).parents[2] / "evals"


def voice(**extra: Any) -> dict[str, Any]:
    suite: dict[str, Any] = {
        "suite": "s", "kind": "voice", "tiers": {"rt": {"latency_p95_ms": 2000}},
        "scenarios": [{"name": "a", "tier": "rt", "turns": [{"say": "Hello."}]}]}
    suite.update(extra)
    return suite


def problems(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(SuiteError) as info:
        parse_suite(data, "x.yaml")
    return info.value.problems


def test_every_shipped_suite_loads() -> None:
    suites = load_suites([EVALS])
    assert {s.suite for s in suites} == {
        "catalog", "ops", "scheduling", "smoke", "support", "workspace"}
    for s in suites:
        assert s.scenarios and all(sc.tier in s.tiers for sc in s.scenarios)


def test_shorthand_turns_make_one_call_and_paths_are_relative(tmp_path: Path) -> None:
    (tmp_path / "hi.wav").write_bytes(b"RIFF")
    (tmp_path / "status.yaml").write_text("{}")
    data = voice(agents={"factory": "agents", "overrides": {"ops": {"status_file":
                                                                    "./status.yaml"}}})
    data["scenarios"][0]["turns"].append({"audio": "hi.wav", "transcript": "hi"})
    suite = parse_suite(data, "x.yaml", tmp_path)
    assert isinstance(suite, VoiceSuite)
    (call,) = suite.scenarios[0].calls
    assert call.turns[1].audio == tmp_path / "hi.wav"
    assert call.turns[0].expected_transcript == "Hello."
    assert suite.agents.overrides["ops"]["status_file"] == str(tmp_path / "status.yaml")


def test_every_problem_is_named_with_its_path() -> None:
    data = voice(variants=["clean", "noise_loud"])
    data["scenarios"] = [
        {"name": "a", "tier": "rt", "turns": [{"say": "hi", "dtmf": "1"}]},
        {"name": "b", "tier": "rt", "turns": [{"say": "hi"}], "bogus": 1},
    ]
    assert problems(data) == [
        ("scenarios[0].calls[0].turns[0]",
         "a turn needs exactly one of say, audio, dtmf, silence_ms (got say, dtmf)"),
        ("scenarios[1].bogus", "Extra inputs are not permitted"),
    ]


def test_cross_checks_tiers_names_and_variants() -> None:
    data = voice(variants=["telephone", "noise_loud", "telephone"])
    data["scenarios"] = [{"name": "a", "tier": "nope", "turns": [{"say": "x"}]},
                         {"name": "a", "tier": "rt", "turns": [{"dtmf": "0"}]}]
    assert problems(data) == [
        ("scenarios", "duplicate scenario name 'a'"),
        ("scenarios[0].tier", "unknown tier 'nope' (the suite defines rt)"),
        ("variants[1]", "unknown variant 'noise_loud' "
                        "(clean, telephone, noise_<snr>db, speed_<factor>)"),
        ("variants", "must include clean (the reference for consistency)"),
        ("variants", "a variant is listed twice"),
    ]


def test_missing_files_and_kinds() -> None:
    data = voice()
    data["scenarios"][0]["turns"] = [{"audio": "nowhere.wav"}]
    assert problems(data)[0][1].startswith("no such file: ")
    assert problems({"suite": "s", "kind": "phone"}) == [
        ("kind", "must be voice or workflow, got 'phone'")]
    assert problems([1, 2]) == [("(top)", "a suite must be a mapping")]


def test_workflow_script_steps() -> None:
    data: dict[str, Any] = {"suite": "w", "kind": "workflow", "tiers": {"bo": {}}, "scenarios": [
        {"name": "a", "tier": "bo", "workflow": "kb_qa",
         "script": [{"signal": "x", "advance": "1d"}, {"advance": "2h"}]}]}
    assert problems(data) == [("scenarios[0].script[0]",
                               "a script step is either a signal or an advance")]
    data["scenarios"][0]["script"] = [{"advance": "2h"}]
    suite = parse_suite(data)
    assert isinstance(suite, WorkflowSuite) and suite.scenarios[0].script[0].advance == 7200


def test_files_not_yaml_and_tier_conflicts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("suite: [unclosed\n")
    with pytest.raises(SuiteError, match=r"bad.yaml: \(top\): not YAML"):
        load_suite(bad)
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text("suite: one\nkind: voice\ntiers: {rt: {latency_p95_ms: 1}}\n"
                   "scenarios: [{name: a, tier: rt, turns: [{say: hi}]}]\n")
    two.write_text(one.read_text().replace("one", "two").replace("1}", "2}"))
    with pytest.raises(SuiteError, match=r"tiers\.rt: differs from the same tier in"):
        load_suites([one, two])


def test_variant_names() -> None:
    assert variant_params("noise_20db") == ("noise", 20.0)
    assert variant_params("speed_1.15") == ("speed", 1.15)
    assert variant_params("telephone") == ("telephone", None)
    with pytest.raises(ValueError, match="unknown variant"):
        variant_params("louder")


@pytest.mark.slow
async def test_the_harness_gateway_knows_itself(tmp_path: Path) -> None:
    # the harness builds the voice agents before the app: without the gateway's own
    # readings plugged in, "how is the gateway doing?" had no answer in an eval run
    from gateway.evaluation.gateway import build_app_parts
    from gateway.evaluation.scenario import Agents
    from voice.ports import CallInfo, Say, UserTurn

    app, close = build_app_parts(tmp_path, Agents(factory="agents"), None)
    try:
        agent = app.state.runtime.agent_factory(CallInfo("s1", "twilio", "+15005550006"))
        said = [a.text async for a in agent.respond(UserTurn("How is the gateway doing?", 900, 1))
                if isinstance(a, Say)]
    finally:
        close()
    assert "The gateway is starting. Its speech models are still loading." in " ".join(said)
