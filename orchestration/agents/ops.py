"""Ops monitoring: status of configured services, last-known fallback, threshold alerts.

A service's status comes from, in this order: a readings ``provider`` the host plugs in
(the gateway plugs in ``gateway``: its own pools, event log, calls and models), an HTTP
health ``url``, the ``status_file`` (JSON or YAML mapping service -> ``{status,
<metric>: number, ...}``), else the sample file shipped with the package, whose answers
are spoken as sample data ("In the sample data, payments is up."). See ops_readings.py.

A health URL answering 2xx is ``up`` (its JSON body may say ``status`` and carry metrics
such as ``latency_ms``); 5xx is ``down``. A probe that gets no answer (refused, time-out,
unreadable file, a failing provider) is a failed probe, not a status: ``ops.probe``
raises a transient error and the flow's fallback ``ops.cached`` answers with the last
known status and its age. Every successful real probe is stored (``ops_status``, in
``agents.db`` or, with ``VOXGATE_DATABASE_URL``, in PostgreSQL for every replica), so the
fallback survives restarts; sample readings are never stored and never raise alerts, so
they cannot pass for a real service's last known status.

Alert rules (``ops.rules``) compare a metric (or ``status``) with a threshold after
every successful probe; a rule that fires is recorded (``ops_alerts``) and returned in
the tool output, and the flow runner puts it on the call's bus as ``ops.alert`` and the
agent announces it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestration.agents.ops_readings import (
    SAMPLE_STATUS,
    Reading,
    ReadingsProvider,
    ReadingUnavailable,
    from_file,
    from_provider,
    numeric,
    status_word,
)
from orchestration.log.tables import Tables, open_tables
from orchestration.patterns.tools import ToolError, ToolRegistry, TransientToolError


class ServiceConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    aliases: list[str] = Field(default_factory=list)
    url: str | None = None
    # the name of a readings provider the host plugs in (the gateway plugs in "gateway")
    provider: str | None = None
    spoken: str | None = None  # how to say its name ("the C I pipeline")

    @model_validator(mode="after")
    def _one_source(self) -> ServiceConfig:
        if self.url is not None and self.provider is not None:
            raise ValueError("a service takes its status from a url or a provider, not both")
        return self


class AlertRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    service: str = "*"
    metric: str  # a metric of the health answer, or "status"
    op: Literal[">", ">=", "<", "<=", "==", "!="] = ">"
    value: float | str
    severity: Literal["warning", "critical"] = "warning"
    unit: str = ""


class OpsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    status_file: Path | None = None
    probe_timeout_s: float = Field(2.0, gt=0)
    rules: list[AlertRule] = Field(default_factory=list)


class StatusOut(BaseModel):
    service: str
    status: str
    source: Literal["live", "cached", "sample"]
    age_s: float = 0.0
    metrics: dict[str, float] = Field(default_factory=dict)
    spoken: str
    alerts: list[dict[str, Any]] = Field(default_factory=list)
    alerts_spoken: str = ""


class ServiceIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    service: str


class NoIn(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SummaryOut(BaseModel):
    spoken: str
    down: list[str]
    alerts: list[dict[str, Any]] = Field(default_factory=list)
    alerts_spoken: str = ""


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)} seconds ago"
    if seconds < 5400:
        return f"{round(seconds / 60)} minutes ago"
    return f"{round(seconds / 3600)} hours ago"


def _fires(rule: AlertRule, value: Any) -> bool:
    if value is None:
        return False
    if rule.op in ("==", "!="):
        return (str(value) == str(rule.value)) == (rule.op == "==")
    try:
        a, b = float(value), float(rule.value)
    except (TypeError, ValueError):
        return False
    return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[rule.op]


class OpsMonitor:
    def __init__(self, config: OpsConfig, db_path: Path | str | Tables,
                 clock: Callable[[], float] = time.time,
                 client: httpx.AsyncClient | None = None,
                 readings: Mapping[str, ReadingsProvider] | None = None,
                 sample_file: Path = SAMPLE_STATUS) -> None:
        self.config = config
        self.clock = clock
        self.client = client
        self.readings: dict[str, ReadingsProvider] = dict(readings or {})
        self.sample_file = sample_file
        self._t = open_tables(db_path)
        self._t.ensure(
            "CREATE TABLE IF NOT EXISTS ops_status (service TEXT PRIMARY KEY, status TEXT, "
            "metrics TEXT, ts REAL); CREATE TABLE IF NOT EXISTS ops_alerts (id INTEGER PRIMARY "
            "KEY, service TEXT, metric TEXT, value TEXT, threshold TEXT, severity TEXT, "
            "message TEXT, ts REAL);")

    def plug(self, name: str, provider: ReadingsProvider) -> None:
        """Plug in the readings provider that services with ``provider: name`` use."""
        self.readings[name] = provider

    def name(self, service: str) -> str:
        cfg = self.config.services.get(service)
        return cfg.spoken if cfg and cfg.spoken else service

    async def _get(self, service: str, url: str) -> Reading:
        client = self.client or httpx.AsyncClient(timeout=self.config.probe_timeout_s)
        try:
            resp = await client.get(url, timeout=self.config.probe_timeout_s)
        except httpx.HTTPError as exc:
            raise TransientToolError("ops.probe", f"{service}: no answer ({exc!r})") from None
        finally:
            if self.client is None:
                await client.aclose()
        status = "up" if resp.is_success else "down"
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            return Reading(status_word(body.get("status", status)), numeric(body))
        return Reading(status)

    async def _fetch(self, service: str) -> tuple[Reading, Literal["live", "sample"]]:
        cfg = self.config.services.get(service)
        if cfg is None:
            raise ToolError("ops.probe", f"unknown service {service!r}")
        try:
            if cfg.provider is not None:
                provider = self.readings.get(cfg.provider)
                if provider is None:
                    raise ToolError("ops.probe", f"{service}: no readings provider "
                                                 f"{cfg.provider!r} is plugged in")
                return from_provider(provider, service), "live"
            if cfg.url is not None:
                return await self._get(service, cfg.url), "live"
            if self.config.status_file is not None:
                return from_file(self.config.status_file, service), "live"
            return from_file(self.sample_file, service), "sample"
        except ReadingUnavailable as exc:
            raise TransientToolError("ops.probe", str(exc)) from None

    def _store(self, service: str, status: str, metrics: dict[str, float]) -> None:
        self._t.change(
            "INSERT INTO ops_status (service, status, metrics, ts) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (service) DO UPDATE SET status = excluded.status, "
            "metrics = excluded.metrics, ts = excluded.ts",
            (service, status, json.dumps(metrics), self.clock()))

    def _alerts(self, service: str, status: str, metrics: dict[str, float]) -> list[dict[str, Any]]:
        fired = []
        for rule in self.config.rules:
            if rule.service not in ("*", service):
                continue
            value: Any = status if rule.metric == "status" else metrics.get(rule.metric)
            if not _fires(rule, value):
                continue
            label = rule.metric.replace("_ms", "").replace("_", " ")
            if rule.metric == "status":
                message = f"{self.name(service)} is {status}"
            else:
                shown = f"{value:g}" if isinstance(value, float) else str(value)
                limit = f"{rule.value:g}" if isinstance(rule.value, float) else str(rule.value)
                unit = f" {rule.unit}" if rule.unit else ""
                message = (f"{self.name(service)} {label} is {shown}{unit}, over the "
                           f"threshold of {limit}{unit}" if rule.op in (">", ">=") else
                           f"{self.name(service)} {label} is {shown}{unit}, under the "
                           f"threshold of {limit}{unit}")
            alert = {"service": service, "metric": rule.metric, "value": value,
                     "threshold": rule.value, "severity": rule.severity, "message": message}
            self._t.change(
                "INSERT INTO ops_alerts (service, metric, value, threshold, severity, "
                "message, ts) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (service, rule.metric, str(value), str(rule.value), rule.severity, message,
                 self.clock()))
            fired.append(alert)
        return fired

    async def probe(self, service: str) -> StatusOut:
        reading, source = await self._fetch(service)
        metrics = dict(reading.metrics)
        if source == "sample":
            return StatusOut(service=service, status=reading.status, source=source,
                             metrics=metrics, spoken=f"In the sample data, "
                                                     f"{self.name(service)} is {reading.status}.")
        self._store(service, reading.status, metrics)
        alerts = self._alerts(service, reading.status, metrics)
        detail = f" {reading.detail}" if reading.detail else ""
        return StatusOut(service=service, status=reading.status, source=source,
                         metrics=metrics, spoken=f"{self.name(service)} is {reading.status}."
                                                 f"{detail}", alerts=alerts,
                         alerts_spoken=" ".join(f"Alert: {a['message']}." for a in alerts))

    def cached(self, service: str) -> StatusOut:
        rows = self._t.rows("SELECT status, metrics, ts FROM ops_status WHERE service=%s",
                            (service,))
        row = rows[0] if rows else None
        if row is None:
            raise ToolError("ops.cached", f"no status known for {service!r}")
        age = max(0.0, self.clock() - float(row[2]))
        return StatusOut(
            service=service, status=row[0], source="cached", age_s=round(age, 1),
            metrics=json.loads(row[1]),
            spoken=(f"I could not reach {self.name(service)} just now. Its last known status, "
                    f"{_age(age)}, was {row[0]}."))

    async def summary(self) -> SummaryOut:
        names = list(self.config.services)

        async def one(name: str) -> StatusOut:
            try:
                return await self.probe(name)
            except ToolError:  # transient (no answer) or not readable here at all
                try:
                    return self.cached(name)
                except ToolError:
                    return StatusOut(service=name, status="unknown", source="cached",
                                     spoken=f"{self.name(name)} is unknown.")

        results = await asyncio.gather(*(one(n) for n in names))
        down = [r for r in results if r.status != "up"]
        alerts = [a for r in results for a in r.alerts]
        up_sample = sum(r.source == "sample" for r in results if r.status == "up")
        # its own sentence: a short first sentence is heard sooner (it is synthesised alone)
        sample = f" {up_sample} of them are in the sample data." if up_sample else ""
        if not down:
            spoken = f"All {len(results)} services are up.{sample}"
        else:
            spoken = " ".join(r.spoken for r in down)
            spoken += f" The other {len(results) - len(down)} services are up.{sample}"
        return SummaryOut(spoken=spoken, down=[r.service for r in down], alerts=alerts,
                          alerts_spoken=" ".join(f"Alert: {a['message']}." for a in alerts))

    def recorded_alerts(self) -> list[dict[str, Any]]:
        rows = self._t.rows("SELECT service, metric, value, severity, message, ts FROM "
                            "ops_alerts ORDER BY id")
        keys = ("service", "metric", "value", "severity", "message", "ts")
        return [dict(zip(keys, r, strict=True)) for r in rows]


def register(registry: ToolRegistry, monitor: OpsMonitor) -> None:
    box = monitor.config.probe_timeout_s + 1

    @registry.tool("ops.probe", permissions=["ops.read"], timeout=box)
    async def probe(inp: ServiceIn) -> StatusOut:
        """Probe one service now (health URL or status file); alerts from the rules."""
        return await monitor.probe(inp.service)

    @registry.tool("ops.cached", permissions=["ops.read"], timeout=1)
    def cached(inp: ServiceIn) -> StatusOut:
        """The last known status of a service and its age."""
        return monitor.cached(inp.service)

    @registry.tool("ops.summary", permissions=["ops.read"],
                   timeout=monitor.config.probe_timeout_s + 2)
    async def summary(inp: NoIn) -> SummaryOut:
        """Probe every service (last known status for those that do not answer)."""
        return await monitor.summary()
