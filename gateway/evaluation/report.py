"""What an evaluation found: one ``RunRecord`` per run, folded into a report with gates.

A run is one scenario played once (a voice scenario in one audio variant, or a workflow
scenario) -- ``repeat`` runs of each. ``summarize`` turns the records into the report
the terminal, ``--json`` and ``--html`` show: figures per suite, tier, variant and
scenario, and every gate (a figure against its threshold) with whether it held.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.evaluation.checks import percentile, ratio
from gateway.evaluation.scenario import Suite, Tier


@dataclass
class RunRecord:
    suite: str
    scenario: str
    tier: str
    variant: str = "clean"
    repeat: int = 0
    error: str | None = None  # the run could not be completed (call failed, bad workflow)
    latencies_ms: list[float] = field(default_factory=list)  # per turn, or the run's
    duration_s: float = 0.0
    cpu_s: float | None = None
    tokens: int = 0
    wer_errors: int = 0
    wer_words: int = 0
    intents_expected: int = 0
    intents_correct: int = 0
    slots_expected: int = 0
    slots_correct: int = 0
    required: int = 0  # completeness: required steps, events, tools, replies, turns
    done: int = 0
    outcome: list[str] = field(default_factory=list)  # expectations that did not hold
    audit: list[str] = field(default_factory=list)
    policy: list[str] = field(default_factory=list)
    denials: int = 0
    signature: str = ""  # what happened, for consistency across runs
    transcripts: list[tuple[str, str]] = field(default_factory=list)  # (expected, heard)
    ids: list[str] = field(default_factory=list)  # session or run ids, to find it in the log

    @property
    def ok(self) -> bool:
        return self.error is None and not (self.outcome or self.audit or self.policy)

    def problems(self) -> list[str]:
        out = [f"error: {self.error}"] if self.error else []
        out += [f"outcome: {p}" for p in self.outcome]
        out += [f"audit: {p}" for p in self.audit]
        out += [f"policy: {p}" for p in self.policy]
        return out


def signature(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _round(x: float | None, n: int = 4) -> float | None:
    return None if x is None else round(x, n)


def _gate(name: str, value: float | None, limit: float | None, upper: bool) -> dict[str, Any]:
    """A figure against a limit (``upper``: must not exceed it). No limit: reported only;
    a limit but no figure (nothing measured): fails, since nothing was proven."""
    if limit is None:
        ok: bool | None = None
    elif value is None:
        ok = False
    else:
        ok = value <= limit if upper else value >= limit
    return {"name": name, "value": _round(value), "limit": limit,
            "op": "<=" if upper else ">=", "ok": ok}


def _accuracy(runs: Sequence[RunRecord]) -> dict[str, float | None]:
    words = sum(r.wer_words for r in runs)
    return {
        "wer": _round(ratio(sum(r.wer_errors for r in runs), words)),
        "intent_accuracy": _round(ratio(sum(r.intents_correct for r in runs),
                                        sum(r.intents_expected for r in runs))),
        "slot_accuracy": _round(ratio(sum(r.slots_correct for r in runs),
                                      sum(r.slots_expected for r in runs))),
        "outcome": _round(ratio(sum(not r.outcome and r.error is None for r in runs), len(runs))),
        "completeness": _round(ratio(sum(r.done for r in runs), sum(r.required for r in runs))
                               if any(r.required for r in runs) else
                               ratio(sum(r.error is None for r in runs), len(runs))),
    }


def _consistency(runs: Sequence[RunRecord]) -> dict[str, Any]:
    """Per scenario: the share of its runs with its most common outcome signature; and per
    variant, the share of runs agreeing with the clean runs' most common signature."""
    by_scenario: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for r in runs:
        by_scenario[(r.suite, r.scenario)].append(r)
    scenario_share: dict[str, float] = {}
    agree: dict[str, list[bool]] = defaultdict(list)
    for (suite, name), group in by_scenario.items():
        common, count = Counter(r.signature for r in group).most_common(1)[0]
        scenario_share[f"{suite}/{name}"] = count / len(group)
        clean = [r.signature for r in group if r.variant == "clean"]
        reference = Counter(clean).most_common(1)[0][0] if clean else common
        for r in group:
            agree[r.variant].append(r.signature == reference)
    shares = list(scenario_share.values())
    return {
        "overall": _round(sum(shares) / len(shares)) if shares else None,
        "min": _round(min(shares)) if shares else None,
        "per_scenario": {k: _round(v) for k, v in scenario_share.items()},
        "per_variant": {v: _round(sum(a) / len(a)) for v, a in agree.items()},
    }


def _latency(runs: Sequence[RunRecord]) -> dict[str, Any]:
    values = [ms for r in runs for ms in r.latencies_ms]
    cpu = [r.cpu_s for r in runs if r.cpu_s is not None]
    return {
        "n": len(values),
        "latency_p50_ms": _round(percentile(values, 50), 1),
        "latency_p95_ms": _round(percentile(values, 95), 1),
        "latency_max_ms": _round(max(values), 1) if values else None,
        "cpu_s_per_call": _round(sum(cpu) / len(cpu), 3) if cpu else None,
        "tokens_per_call": _round(sum(r.tokens for r in runs) / len(runs), 1) if runs else None,
        "calls": len(runs),
    }


def summarize(suites: Sequence[Suite], runs: Sequence[RunRecord],
              meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole report as JSON-ready data; ``ok`` is False if any gate or run failed."""
    tiers: dict[str, Tier] = {}
    for s in suites:
        tiers.update(s.tiers)
    failures: list[str] = []
    suite_rows = [_suite_row(s, runs, failures) for s in suites]
    tier_rows = [_tier_row(name, limits, runs, failures) for name, limits in sorted(tiers.items())]
    for r in runs:
        if not r.ok:
            failures.append(f"run {r.suite}/{r.scenario} [{r.variant} #{r.repeat + 1}]: "
                            + "; ".join(r.problems()))
    return {
        "ok": not failures,
        "meta": meta or {},
        "suites": suite_rows,
        "tiers": tier_rows,
        "scenarios": _scenario_rows(runs),
        "failures": failures,
        "runs": [asdict(r) | {"ok": r.ok} for r in runs],
    }


def _suite_row(s: Suite, runs: Sequence[RunRecord], failures: list[str]) -> dict[str, Any]:
    """One suite's figures and gates; its failed gates are added to ``failures``."""
    mine = [r for r in runs if r.suite == s.suite]
    figures = _accuracy(mine)
    cons = _consistency(mine)
    figures["consistency"] = cons["overall"]
    t = s.thresholds
    gates = [
        _gate("wer", figures["wer"], t.wer_max, upper=True),
        _gate("intent_accuracy", figures["intent_accuracy"], t.intent_accuracy_min, False),
        _gate("slot_accuracy", figures["slot_accuracy"], t.slot_accuracy_min, False),
        _gate("outcome", figures["outcome"], t.outcome_min, False),
        _gate("completeness", figures["completeness"], t.completeness_min, False),
        _gate("consistency", figures["consistency"], t.consistency_min, False),
    ]
    audit = sum(bool(r.audit) for r in mine)
    policy = sum(bool(r.policy) for r in mine)
    errors = sum(r.error is not None for r in mine)
    gates.append({"name": "audit_complete", "value": len(mine) - audit, "limit": len(mine),
                  "op": "==", "ok": audit == 0})
    gates.append({"name": "policy_adherence", "value": len(mine) - policy,
                  "limit": len(mine), "op": "==", "ok": policy == 0})
    gates.append({"name": "runs_completed", "value": len(mine) - errors, "limit": len(mine),
                  "op": "==", "ok": errors == 0})
    failures += [f"suite {s.suite}: {g['name']} {g['value']} (limit {g['op']} {g['limit']})"
                 for g in gates if g["ok"] is False]
    variants = sorted({r.variant for r in mine}, key=lambda v: (v != "clean", v))
    return {
        "suite": s.suite, "kind": s.kind, "source": str(s.source), "runs": len(mine),
        "runs_ok": sum(r.ok for r in mine), "figures": figures, "gates": gates,
        "denials": sum(r.denials for r in mine),
        "variants": {v: {**_accuracy([r for r in mine if r.variant == v]),
                         "consistency_vs_clean": cons["per_variant"].get(v)}
                     for v in variants},
        "consistency": cons,
    }


def _tier_row(name: str, limits: Tier, runs: Sequence[RunRecord], failures: list[str],
              ) -> dict[str, Any]:
    mine = [r for r in runs if r.tier == name]
    figures = _latency(mine)
    gates = [
        _gate("latency_p50_ms", figures["latency_p50_ms"], limits.latency_p50_ms, True),
        _gate("latency_p95_ms", figures["latency_p95_ms"], limits.latency_p95_ms, True),
        _gate("cpu_s_per_call", figures["cpu_s_per_call"], limits.cpu_s_per_call, True),
        _gate("tokens_per_call", figures["tokens_per_call"], limits.tokens_per_call, True),
    ]
    if not mine:
        gates = [g for g in gates if g["limit"] is None]
    failures += [f"tier {name}: {g['name']} {g['value']} (limit {g['op']} {g['limit']})"
                 for g in gates if g["ok"] is False]
    return {"tier": name, **figures, "limits": limits.model_dump(), "gates": gates}


def _scenario_rows(runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    scenario_rows = []
    keyed: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for r in runs:
        keyed[(r.suite, r.scenario)].append(r)
    for (suite, name), group in keyed.items():
        lat = [ms for r in group for ms in r.latencies_ms]
        cpu = [r.cpu_s for r in group if r.cpu_s is not None]
        scenario_rows.append({
            "suite": suite, "scenario": name, "tier": group[0].tier, "runs": len(group),
            "ok": sum(r.ok for r in group),
            "latency_p50_ms": _round(percentile(lat, 50), 1),
            "latency_p95_ms": _round(percentile(lat, 95), 1),
            "cpu_s_per_call": _round(sum(cpu) / len(cpu), 3) if cpu else None,
            "wer": _accuracy(group)["wer"],
            "problems": sorted({p for r in group for p in r.problems()}),
        })
    return scenario_rows
