"""Every shipped workflow runs offline, end to end, on the real orchestrator and log."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.evaluation.checks import tokens_used
from orchestration.clock import FakeClock
from orchestration.patterns.llm import LlmConfig, TextModel, read_usage
from orchestration.service import Orchestrator

DAY = 86400.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_767_225_600.0)  # 2026-01-01T00:00:00Z


@pytest.fixture
def orch(tmp_path: Path, clock: FakeClock) -> Iterator[Orchestrator]:
    o = Orchestrator(tmp_path, clock=clock, rng=random.Random(3))
    yield o
    assert o.replay().ok  # whatever a test did, the views match a replay of the log
    o.close()


def test_the_catalog_has_every_workflow_of_the_issue(orch: Orchestrator) -> None:
    assert [w["name"] for w in orch.workflows()] == [
        "customer_onboarding", "data_quality", "document_drafting", "gtm_planning",
        "incident_response", "kb_qa", "lead_qualification", "localization", "policy_update",
        "proposal_generation", "proposal_workflow", "reporting_analytics", "summarization",
        "support_triage", "support_workflow", "ticket_triage"]
    drawn = orch.workflow("incident_response")
    assert drawn["mermaid"].startswith("stateDiagram-v2") and drawn["graph"]["saga"] is True


async def test_gtm_planning_reworks_after_a_failed_compliance_review(orch: Orchestrator) -> None:
    ok = await orch.start("gtm_planning", {"product": "voxgate"})
    assert ok["status"] == "succeeded" and ok["output"]["method"] == "local:draft"
    bad = await orch.start("gtm_planning", {"product": "voxgate", "claim": "Guaranteed ROI"})
    assert bad["status"] == "waiting" and bad["state"] == "rework"
    assert bad["ctx"]["steps"]["compliance"]["issues"] == ["banned claim: 'guaranteed'"]
    assert (await orch.signal(bad["id"], "abandon")).status == "failed"
    assert orch.status(bad["id"])["output"]["issues"] == ["banned claim: 'guaranteed'"]


@pytest.mark.parametrize(("lead", "verdict"), [
    ("acme", "qualified"), ("initech", "disqualified"), ("nobody", "unknown lead")])
async def test_lead_qualification_routes_on_scores(orch: Orchestrator, lead: str,
                                                   verdict: str) -> None:
    view = await orch.start("lead_qualification", {"lead_id": lead})
    assert view["output"]["verdict"] == verdict


async def test_lead_review_needs_a_sales_manager(orch: Orchestrator) -> None:
    view = await orch.start("lead_qualification", {"lead_id": "umbrella"})
    assert view["state"] == "review"
    intern = await orch.signal(view["id"], "decision", {"role": "intern", "approve": True})
    assert not intern.accepted and intern.reason.startswith("guard failed")
    manager = await orch.signal(view["id"], "decision", {"role": "sales_manager",
                                                         "approve": True})
    assert manager.accepted and orch.status(view["id"])["output"]["verdict"] == "qualified"


async def test_proposal_generation_gathers_concurrently_and_waits_for_approval(
        orch: Orchestrator, clock: FakeClock) -> None:
    view = await orch.start("proposal_generation", {"lead_id": "acme", "discount_pct": 20})
    assert view["state"] == "approval"
    assert view["branches"]["gather"]["price"]["output"]["needs_approval"] is True
    assert (await orch.signal(view["id"], "approve", {"role": "approver"})).status == "succeeded"
    other = await orch.start("proposal_generation", {"lead_id": "acme"})
    clock.advance(7 * DAY)
    await orch.tick()
    assert orch.status(other["id"])["output"] == {"reason": "approval timed out"}


async def test_customer_onboarding_reminds_then_escalates(orch: Orchestrator,
                                                          clock: FakeClock) -> None:
    view = await orch.start("customer_onboarding", {"company": "Acme", "contact": "a@x"})
    assert view["status"] == "waiting" and orch.systems.accounts["Acme"]["status"] == "created"
    clock.advance(DAY)
    await orch.tick()
    assert orch.systems.notifications[-1]["kind"] == "reminder"
    clock.advance(2 * DAY)
    await orch.tick()
    assert orch.status(view["id"])["state"] == "escalated"
    assert any(n["kind"] == "escalation" and n["to"] == "success-manager@local"
               for n in orch.systems.notifications)
    await orch.signal(view["id"], "customer.activated")
    assert orch.status(view["id"])["output"] == {"status": "active"}


TICKETS = ["I was charged twice on my invoice, please refund",
           "The API is down and calls fail, this is urgent",
           "I cannot reset my password", "Production outage, data loss suspected"]


async def test_support_triage_and_ticket_triage(orch: Orchestrator) -> None:
    triage = await orch.start("support_triage", {"tickets": TICKETS})
    assert triage["output"]["counts"]["labels"] == {"billing": 1, "technical": 2, "account": 1}
    assert triage["output"]["first_queue"] == "finance"
    tickets = await orch.start("ticket_triage", {"tickets": TICKETS})
    assert tickets["output"]["escalated"] is True and tickets["output"]["counts"]["urgent"] == 2
    calm = await orch.start("ticket_triage", {"tickets": TICKETS[:1]})
    assert calm["output"]["escalated"] is False


async def test_incident_response_is_a_saga(orch: Orchestrator) -> None:
    fine = await orch.start("incident_response")
    assert fine["status"] == "succeeded" and orch.systems.hosts["web-1"] == "isolated"
    orch.systems.hosts["web-1"] = "serving"
    broken = await orch.start("incident_response", {"still_broken": True})
    assert broken["status"] == "compensated"
    assert broken["compensations"] == {"rollback": "done", "isolate": "done", "open": "done"}
    undo = [a["action"] for a in orch.systems.audit[-3:]]
    assert undo == ["ops.redeploy", "ops.restore_host", "incident.close"]
    assert orch.systems.deploys["api"] == "v42" and orch.systems.hosts["web-1"] == "serving"


async def test_data_quality_is_scheduled_retries_and_alerts(
        orch: Orchestrator, clock: FakeClock) -> None:
    view = await orch.start("data_quality", {"dataset": "customers", "unavailable_times": 2})
    assert view["output"] == {"error_rate": 0.5, "alerted": True}
    assert view["counts"]["retry.scheduled"] == 2
    assert await orch.tick() == {"timers_fired": 0, "scheduled_started": []}  # arms it
    armed = orch.store.view("sched:data_quality")
    assert armed is not None and armed["due"] == 1_767_229_200.0  # the next full hour, UTC
    clock.advance(3600)
    started = (await orch.tick())["scheduled_started"]
    assert started == ["data_quality-1767229200"]
    assert orch.status(started[0])["status"] == "succeeded"


async def test_reporting_keeps_partial_results_under_quorum(orch: Orchestrator) -> None:
    view = await orch.start("reporting_analytics", {"broken_source": "support"})
    assert view["status"] == "succeeded"
    assert view["output"]["report"]["missing"] == ["support"]
    assert view["branches"]["pull"]["support"]["ok"] is False


async def test_document_drafting_summarization_localization(orch: Orchestrator) -> None:
    doc = await orch.start("document_drafting", {"topic": "Voice onboarding",
                                                 "notes": "Keep it short and friendly."})
    assert doc["status"] == "succeeded" and "-- final --" in doc["output"]["document"]
    text = " ".join(f"Sentence {i} talks about voice agents and call routing." for i in range(20))
    summary = await orch.start("summarization", {"text": text})
    assert summary["status"] == "succeeded" and summary["output"]["method"] == "local:merge"
    de = await orch.start("localization", {"text": "Your voice agent answers every call.",
                                           "lang": "de"})
    assert de["output"]["text"] == "Ihr Sprachagent beantwortet jeden Anruf."
    assert de["output"]["missing_terms"] == []


@pytest.mark.parametrize(("roles", "offline", "routed"), [
    (["kb.internal"], [], "internal"), ([], [], "public"),
    (["kb.internal"], ["internal"], "public"), ([], ["public", "internal"], "handoff")])
async def test_kb_qa_routes_by_permission_and_availability(
        orch: Orchestrator, roles: list[str], offline: list[str], routed: str) -> None:
    question = "How do I escalate a severity incident?" if roles else "How do I reset my password?"
    view = await orch.start("kb_qa", {"question": question, "roles": roles, "offline": offline})
    assert routed in view["done"] or (routed == "handoff" and view["state"] == "handoff")


async def test_detailed_proposal_support_and_policy_workflows(orch: Orchestrator) -> None:
    brief = "The system must answer calls in German. It should hand off to agents."
    prop = await orch.start("proposal_workflow", {"lead_id": "acme", "brief": brief})
    assert prop["state"] == "approval"
    assert (await orch.signal(prop["id"], "approve", {"role": "approver"})).status == "succeeded"
    assert len(orch.status(prop["id"])["output"]["requirements"]) == 2
    sup = await orch.start("support_workflow", {"ticket": "I cannot reset my password"})
    assert sup["ctx"]["steps"]["assign"]["agent"] == "helpdesk-agent-1"
    await orch.signal(sup["id"], "customer.confirmed")
    assert orch.status(sup["id"])["output"]["label"] == "account"
    pol = await orch.start("policy_update", {"policy_id": "remote-work",
                                             "changes": "Staff may work remotely."})
    assert (await orch.signal(pol["id"], "slot.first_signoff", {"value": "ann"})).accepted
    same = await orch.signal(pol["id"], "signoff", {"by": "ann"})
    assert not same.accepted  # one person cannot sign off twice
    assert (await orch.signal(pol["id"], "signoff", {"by": "bob"})).status == "succeeded"
    assert "remote-work" in orch.systems.published


async def test_text_steps_use_a_configured_model_and_say_so(tmp_path: Path,
                                                            clock: FakeClock) -> None:
    def fake_openai(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/chat/completions"
        return httpx.Response(200, json={"choices": [{"message": {"content": "Short."}}],
                                         "usage": {"prompt_tokens": 40, "completion_tokens": 2}})

    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    for handler, method in ((fake_openai, "llm:tiny"), (down, "local:merge")):
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        model = TextModel(LlmConfig("http://llm.local/v1", "tiny"), client)
        o = Orchestrator(tmp_path / method, clock=clock, model=model)
        view = await o.start("summarization", {"text": "One. Two. Three. Four."})
        summary: Any = view["ctx"]["steps"]["merge"]
        assert summary["method"] == method
        if method.startswith("local"):
            assert "HTTPStatusError" in summary["note"]
            assert summary["usage"] is None
        else:  # the step's cost: what the harness counts as tokens (orchestration/eval_*)
            assert summary["usage"] == {"prompt_tokens": 40, "completion_tokens": 2,
                                        "total_tokens": 42}
            assert tokens_used([{"output": summary}]) == 42
        o.close()
        await client.aclose()


async def test_cron_schedules_survive_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    first = Orchestrator(tmp_path, clock=clock)
    await first.tick()  # arms data_quality for the next full hour
    first.close()
    clock.advance(3 * 3600)  # nothing ran for three hours
    again = Orchestrator(tmp_path, clock=clock)
    assert (await again.tick())["scheduled_started"] == ["data_quality-1767229200"]
    assert (await again.tick())["scheduled_started"] == []  # missed runs collapse into one
    armed = again.store.view("sched:data_quality")
    assert armed is not None and armed["due"] == 1_767_240_000.0 and armed["fired"] == 1
    again.close()


@pytest.mark.parametrize(("body", "usage"), [
    ({"usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}},
     {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}),
    ({"usage": {"completion_tokens": 3}}, {"completion_tokens": 3, "total_tokens": 3}),
    ({"usage": {"prompt_tokens": "7", "completion_tokens": -1, "total_tokens": True}}, None),
    ({"usage": None}, None),
    ({}, None),
    ([], None),
])
def test_token_usage_is_read_defensively(body: object, usage: dict[str, int] | None) -> None:
    assert read_usage(body) == usage
