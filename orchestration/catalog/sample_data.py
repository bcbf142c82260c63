"""The local data the catalog's tools work on: a small CRM, knowledge base, glossary,
price list and metric sources, so every catalog workflow runs offline and repeatably.
``LocalSystems`` holds the mutable parts (accounts, incidents, notifications) per process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LEADS: dict[str, dict[str, Any]] = {
    "acme": {"company": "Acme Corp", "employees": 1200, "industry": "logistics",
             "region": "eu", "budget": 250_000, "visits": 14, "demo_requested": True,
             "overdue_invoices": 0, "contact": "ops@acme.example"},
    "globex": {"company": "Globex", "employees": 80, "industry": "retail", "region": "us",
               "budget": 20_000, "visits": 3, "demo_requested": False, "overdue_invoices": 0,
               "contact": "it@globex.example"},
    "umbrella": {"company": "Umbrella Health", "employees": 600, "industry": "health",
                 "region": "eu", "budget": 60_000, "visits": 4, "demo_requested": False,
                 "overdue_invoices": 0, "contact": "ops@umbrella.example"},
    "initech": {"company": "Initech", "employees": 400, "industry": "finance", "region": "us",
                "budget": 120_000, "visits": 9, "demo_requested": True, "overdue_invoices": 3,
                "contact": "cto@initech.example"},
}

KB: list[dict[str, Any]] = [
    {"id": "kb1", "source": "public", "title": "Resetting your password",
     "text": "To reset your password open Settings, choose Security and press Reset. "
             "A reset link is sent by email and expires after 30 minutes."},
    {"id": "kb2", "source": "public", "title": "Billing cycles",
     "text": "Invoices are issued on the first day of each month. Refunds for billing errors "
             "are processed within five business days."},
    {"id": "kb3", "source": "internal", "title": "Escalation runbook",
     "text": "Severity one incidents page the on-call engineer at once. The incident "
             "commander opens a bridge and posts updates every 30 minutes."},
    {"id": "kb4", "source": "internal", "title": "Discount policy",
     "text": "Sales may grant up to 15 percent discount. Larger discounts need approval "
             "from the finance director."},
    {"id": "kb5", "source": "public", "title": "Voice agent setup",
     "text": "Connect your phone number in the dashboard, pick a voice, and test the call "
             "flow. The voice agent can transfer callers to a human at any time."},
]

PRICES: dict[str, float] = {"starter": 49.0, "team": 199.0, "enterprise": 999.0}

GLOSSARY: dict[str, dict[str, str]] = {
    # required term translations, checked by the localization workflow
    "de": {"voice agent": "Sprachagent", "call": "Anruf", "dashboard": "Dashboard",
           "invoice": "Rechnung"},
    "fr": {"voice agent": "agent vocal", "call": "appel", "dashboard": "tableau de bord",
           "invoice": "facture"},
}

DICTIONARY: dict[str, dict[str, str]] = {
    "de": {"the": "der", "your": "Ihr", "voice": "Sprach", "agent": "agent", "call": "Anruf",
           "calls": "Anrufe", "answers": "beantwortet", "every": "jeden", "and": "und",
           "invoice": "Rechnung", "is": "ist", "ready": "bereit", "dashboard": "Dashboard",
           "in": "im", "open": "öffnen", "new": "neu"},
    "fr": {"the": "le", "your": "votre", "voice": "vocal", "agent": "agent", "call": "appel",
           "calls": "appels", "answers": "répond", "every": "chaque", "and": "et",
           "invoice": "facture", "is": "est", "ready": "prête", "dashboard": "tableau de bord",
           "in": "dans", "open": "ouvrir", "new": "nouveau"},
}

METRICS: dict[str, dict[str, float]] = {
    "sales": {"revenue": 182_000.0, "deals": 41.0},
    "support": {"tickets": 312.0, "csat": 4.4},
    "marketing": {"leads": 960.0, "spend": 38_500.0},
}

DATASETS: dict[str, list[dict[str, Any]]] = {
    "customers": [
        {"id": 1, "email": "a@example.com", "country": "DE"},
        {"id": 2, "email": "", "country": "FR"},
        {"id": 3, "email": "c@example.com", "country": None},
        {"id": 4, "email": "d@example.com", "country": "US"},
    ],
}


@dataclass
class LocalSystems:
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    hosts: dict[str, str] = field(default_factory=lambda: {"web-1": "serving", "web-2": "serving"})
    deploys: dict[str, str] = field(default_factory=lambda: {"api": "v42"})
    notifications: list[dict[str, Any]] = field(default_factory=list)
    published: dict[str, str] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)
