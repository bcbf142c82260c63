"""Business tools of the catalog, working offline on ``sample_data``.

Each is small and deterministic; the ones that touch a "system" (accounts, incidents,
hosts, publications) change ``LocalSystems`` and have an undo tool for sagas. A few can
be told to fail (``fail``, ``unavailable_times``) so the workflows' retry, quorum and
compensation paths can be shown and tested without a real outage.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from orchestration.catalog import textops
from orchestration.catalog.sample_data import DATASETS, KB, LEADS, METRICS, PRICES, LocalSystems
from orchestration.patterns.tools import ToolError, ToolRegistry, TransientToolError

BANNED = ["guaranteed", "risk-free", "best in the world", "100%", "no risk"]
LEGAL_FLAGS = ["unlimited liability", "perpetual license", "no warranty"]


class Obj(BaseModel):
    """A free-form record: the catalog's glue between steps."""

    model_config = {"extra": "allow"}


class LeadIn(BaseModel):
    lead_id: str = Field(pattern=r"^[a-z0-9_-]{1,40}$")


class Lead(BaseModel):
    found: bool
    lead_id: str
    company: str = ""
    employees: int = 0
    budget: int = 0
    visits: int = 0
    demo_requested: bool = False
    overdue_invoices: int = 0
    contact: str = ""


class Score(BaseModel):
    fit: int
    intent: int
    risk: int


class TextIn(BaseModel):
    text: str


class Review(BaseModel):
    ok: bool
    issues: list[str]


class Quote(BaseModel):
    plan: str
    seats: int
    discount_pct: float
    total: float
    needs_approval: bool


class QuoteIn(BaseModel):
    plan: str = "team"
    seats: int = Field(10, ge=1, le=100_000)
    discount_pct: float = Field(0, ge=0, le=100)


class SourcesIn(BaseModel):
    offline: list[str] = Field(default_factory=list)


class Sources(BaseModel):
    public: bool
    internal: bool


class SearchIn(BaseModel):
    query: str
    source: str = "public"


class Hits(BaseModel):
    hits: list[dict[str, str]]
    text: str
    count: int


class Message(BaseModel):
    to: str
    message: str
    kind: str = "info"


class Sent(BaseModel):
    id: int
    to: str
    kind: str


class Named(BaseModel):
    name: str
    detail: str = ""
    fail: bool = False


class Done(BaseModel):
    ok: bool = True
    name: str
    detail: str = ""


class DataIn(BaseModel):
    source: str
    unavailable_times: int = Field(0, ge=0, le=10)
    fail: bool = False


def register(reg: ToolRegistry, sys: LocalSystems) -> None:
    _sales_tools(reg)
    _knowledge_tools(reg)
    _system_tools(reg, sys)
    _data_tools(reg)


def _sales_tools(reg: ToolRegistry) -> None:
    @reg.tool("crm.lookup", permissions=["crm.read"], description="Find a lead in the CRM")
    def crm_lookup(inp: LeadIn) -> Lead:
        lead = LEADS.get(inp.lead_id)
        if lead is None:
            return Lead(found=False, lead_id=inp.lead_id)
        return Lead(found=True, lead_id=inp.lead_id, **{k: v for k, v in lead.items()
                                                        if k in Lead.model_fields})

    @reg.tool("lead.score", description="Score fit, intent and risk from 0 to 100")
    def lead_score(inp: Lead) -> Score:
        fit = min(100, inp.employees // 20 + inp.budget // 5000)
        intent = min(100, inp.visits * 5 + (40 if inp.demo_requested else 0))
        risk = min(100, inp.overdue_invoices * 25 + (30 if not inp.found else 0))
        return Score(fit=fit, intent=intent, risk=risk)

    @reg.tool("market.research", description="Segments and competitors for a product")
    def research(inp: Obj) -> Obj:
        product = str(getattr(inp, "product", "voice agents"))
        return Obj(product=product, segments=["logistics", "retail", "finance"],
                   competitors=["CallBot", "VoiceDesk"],
                   insight=f"Mid-size logistics firms lose calls at peak hours; {product} "
                           "answers every call and hands off to people.")

    @reg.tool("compliance.review", description="Flag banned marketing claims")
    def compliance(inp: TextIn) -> Review:
        found = [b for b in BANNED if b in inp.text.lower()]
        return Review(ok=not found, issues=[f"banned claim: {b!r}" for b in found])

    @reg.tool("legal.review", description="Flag risky contract terms")
    def legal(inp: TextIn) -> Review:
        found = [f for f in LEGAL_FLAGS if f in inp.text.lower()]
        return Review(ok=not found, issues=[f"risky term: {f!r}" for f in found])

    @reg.tool("pricing.quote", description="Quote a plan; discounts over 15% need approval")
    def quote(inp: QuoteIn) -> Quote:
        if inp.plan not in PRICES:
            raise ToolError("pricing.quote", f"unknown plan {inp.plan!r}")
        total = round(PRICES[inp.plan] * inp.seats * (1 - inp.discount_pct / 100), 2)
        return Quote(plan=inp.plan, seats=inp.seats, discount_pct=inp.discount_pct,
                     total=total, needs_approval=inp.discount_pct > 15)


def _knowledge_tools(reg: ToolRegistry) -> None:
    """The knowledge base and the support desk that answers from it."""
    @reg.tool("kb.sources", description="Which knowledge sources are reachable now")
    def sources(inp: SourcesIn) -> Sources:
        return Sources(public="public" not in inp.offline, internal="internal" not in inp.offline)

    @reg.tool("kb.search", description="Search the public knowledge base")
    def kb_search(inp: SearchIn) -> Hits:
        return _search(inp.query, "public")

    @reg.tool("kb.search_internal", permissions=["kb.internal"],
              description="Search the internal knowledge base")
    def kb_internal(inp: SearchIn) -> Hits:
        return _search(inp.query, "internal")

    @reg.tool("support.route", description="Pick a queue for a classified ticket")
    def route(inp: Obj) -> Obj:
        label = str(getattr(inp, "label", "general"))
        urgent = bool(getattr(inp, "urgent", False))
        queue = {"billing": "finance", "technical": "engineering", "account": "helpdesk",
                 "sales": "sales"}.get(label, "helpdesk")
        return Obj(queue=queue, priority="p1" if urgent else "p3")

    @reg.tool("support.assign", description="Assign the next agent of a queue")
    def assign(inp: Obj) -> Obj:
        queue = str(getattr(inp, "queue", "helpdesk"))
        return Obj(queue=queue, agent=f"{queue}-agent-1")

    @reg.tool("support.resolve", description="Answer from the knowledge base")
    def resolve(inp: SearchIn) -> Hits:
        return _search(inp.query, "public")


def _search(query: str, source: str) -> Hits:
    terms = {w for w in textops.words(query) if len(w) > 3}
    scored = sorted(
        ((len(terms & set(textops.words(a["title"] + " " + a["text"]))), a)
         for a in KB if a["source"] == source), key=lambda x: (-x[0], x[1]["id"]))
    hits = [{"id": a["id"], "title": a["title"], "text": a["text"]}
            for n, a in scored if n > 0][:2]
    return Hits(hits=hits, text=" ".join(h["text"] for h in hits), count=len(hits))


def _system_tools(reg: ToolRegistry, sys: LocalSystems) -> None:
    """The tools that change a "system" (accounts, notifications, incidents, hosts,
    deployments, publications, the audit trail); each action has its undo for sagas."""
    @reg.tool("onboarding.create_account", permissions=["accounts.write"])
    def create_account(inp: Named) -> Done:
        sys.accounts[inp.name] = {"status": "created", "contact": inp.detail}
        return Done(name=inp.name, detail="account created")

    @reg.tool("notify.send", permissions=["notify"], description="Send a notification")
    def send(inp: Message) -> Sent:
        sys.notifications.append(inp.model_dump())
        return Sent(id=len(sys.notifications), to=inp.to, kind=inp.kind)

    @reg.tool("notify.escalate", permissions=["notify"], description="Escalate to a manager")
    def escalate(inp: Message) -> Sent:
        sys.notifications.append({**inp.model_dump(), "kind": "escalation"})
        return Sent(id=len(sys.notifications), to=inp.to, kind="escalation")

    for name, doc in (("incident.open", "Open an incident"), ("incident.close", "Close it"),
                      ("ops.isolate_host", "Take a host out of rotation"),
                      ("ops.restore_host", "Put a host back"),
                      ("ops.rollback_deploy", "Roll a service back one version"),
                      ("ops.redeploy", "Redeploy the version that was live"),
                      ("policy.publish", "Publish a policy"),
                      ("policy.unpublish", "Withdraw a published policy")):
        reg.register_fn(name, _system_action(sys, name), Named, Done, doc,
                        permissions=["ops"] if name.startswith(("ops.", "incident.")) else [])

    @reg.tool("ops.verify", description="Health check; fails when told the service is broken")
    def verify(inp: Named) -> Done:
        if inp.fail:
            raise ToolError("ops.verify", f"{inp.name} still unhealthy after remediation")
        return Done(name=inp.name, detail="healthy")

    @reg.tool("audit.record", description="Append to the audit trail")
    def audit(inp: Named) -> Done:
        sys.audit.append(inp.model_dump())
        return Done(name=inp.name, detail=f"audit entry {len(sys.audit)}")


def _data_tools(reg: ToolRegistry) -> None:
    """Data quality, metrics and reports; sources can be told to be unavailable a few
    times, so retries show."""
    flaky: dict[str, int] = {}

    def unavailable(key: str, times: int) -> bool:
        seen = flaky.get(key, 0)
        flaky[key] = seen + 1
        return seen < times

    @reg.tool("dq.check", description="Data-quality check: share of rows with missing fields")
    def dq_check(inp: DataIn) -> Obj:
        if unavailable(f"dq:{inp.source}", inp.unavailable_times):
            raise TransientToolError("dq.check", f"dataset {inp.source!r} is unavailable")
        rows = DATASETS.get(inp.source)
        if rows is None:
            raise ToolError("dq.check", f"unknown dataset {inp.source!r}")
        bad = [r["id"] for r in rows if any(v in (None, "") for v in r.values())]
        return Obj(dataset=inp.source, rows=len(rows), bad_rows=bad,
                   error_rate=round(len(bad) / len(rows), 3))

    @reg.tool("data.pull", description="Pull a metrics source")
    def pull(inp: DataIn) -> Obj:
        if inp.fail or inp.source not in METRICS:
            raise ToolError("data.pull", f"source {inp.source!r} failed")
        if unavailable(f"pull:{inp.source}", inp.unavailable_times):
            raise TransientToolError("data.pull", f"source {inp.source!r} timed out")
        return Obj(source=inp.source, **METRICS[inp.source])

    @reg.tool("report.aggregate", description="Merge the pulled metrics")
    def aggregate(inp: Obj) -> Obj:
        branches: dict[str, Any] = dict(getattr(inp, "branches", {}) or {})
        merged: dict[str, Any] = {}
        missing = []
        for name, b in sorted(branches.items()):
            if b.get("ok"):
                merged.update({k: v for k, v in b["output"].items() if k != "source"})
            else:
                missing.append(name)
        return Obj(metrics=merged, missing=missing, sources=len(branches) - len(missing))

    @reg.tool("report.validate", description="Sanity checks on aggregated metrics")
    def validate(inp: Obj) -> Review:
        metrics: dict[str, Any] = dict(getattr(inp, "metrics", {}) or {})
        issues = [f"{k} is negative" for k, v in metrics.items() if v < 0]
        if not metrics:
            issues.append("no metrics")
        return Review(ok=not issues, issues=issues)

    @reg.tool("tickets.prioritize", description="Count classified tickets by label and urgency")
    def prioritize(inp: Obj) -> Obj:
        branches: dict[str, Any] = dict(getattr(inp, "branches", {}) or {})
        labels: dict[str, int] = {}
        urgent = 0
        for b in branches.values():
            if b.get("ok"):
                labels[b["output"]["label"]] = labels.get(b["output"]["label"], 0) + 1
                urgent += int(b["output"]["urgent"])
        return Obj(labels=labels, urgent=urgent, total=len(branches))


def _system_action(sys: LocalSystems, name: str) -> Any:
    def act(inp: Named) -> Done:
        if name == "incident.open":
            sys.incidents[inp.name] = {"status": "open", "detail": inp.detail}
        elif name == "incident.close":
            sys.incidents.setdefault(inp.name, {})["status"] = "closed"
        elif name == "ops.isolate_host":
            sys.hosts[inp.name] = "isolated"
        elif name == "ops.restore_host":
            sys.hosts[inp.name] = "serving"
        elif name == "ops.rollback_deploy":
            sys.deploys[inp.name] = "v41"
        elif name == "ops.redeploy":
            sys.deploys[inp.name] = "v42"
        elif name == "policy.publish":
            sys.published[inp.name] = inp.detail
        elif name == "policy.unpublish":
            sys.published.pop(inp.name, None)
        sys.audit.append({"action": name, "target": inp.name})
        return Done(name=inp.name, detail=name)

    return act
