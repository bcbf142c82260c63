"""Prometheus metrics, kept by an observer of the event bus.

Nothing in the call path updates a metric: every figure here is derived from the events
the pipeline emits anyway (``turn.latency``, ``stt.final``, ``tool.failed``...), so the
metrics can never disagree with the event log. Pool gauges (bulkheads) are read at scrape
time. The event log's own health (backlog, failed writes, dropped events) comes from its
writer, which cannot report through the log it is failing to write. ``GET /metrics``
serves the text format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orchestration.log.events import Event, EventBus
from orchestration.log.store import StoredEvent
from orchestration.patterns.bulkhead import Bulkhead

_STEP_OUTCOME = {"step.completed": "succeeded", "step.failed": "failed"}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0)
_FAST_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
_BREAKER_STATES = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}


class _PoolCollector(Collector):
    """Bulkhead queue depths and rejections, read when Prometheus scrapes."""

    def __init__(self, pools: Callable[[], Iterable[Bulkhead]]) -> None:
        self._pools = pools

    def collect(self) -> Iterator[Metric]:
        active = GaugeMetricFamily("voxgate_bulkhead_active", "Jobs running", labels=["pool"])
        queued = GaugeMetricFamily("voxgate_bulkhead_queued", "Jobs waiting", labels=["pool"])
        rejected = GaugeMetricFamily(
            "voxgate_bulkhead_rejected", "Jobs rejected since start", labels=["pool"]
        )
        for pool in self._pools():
            active.add_metric([pool.name], pool.active)
            queued.add_metric([pool.name], pool.queued)
            rejected.add_metric([pool.name], pool.rejected)
        yield from (active, queued, rejected)


class _RefusalCollector(Collector):
    """Calls, tokens and demo pages the edge limits refused, read when Prometheus scrapes
    (a refusal has no session and no event: a flood of them must not fill the log)."""

    def __init__(self, refusals: Callable[[], Mapping[str, int]]) -> None:
        self._refusals = refusals

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "voxgate_limit_refusals", "Attempts refused by an edge limit since start",
            labels=["limit"],
        )
        for limit, count in sorted(self._refusals().items()):
            family.add_metric([limit], count)
        yield family


class Metrics:
    def __init__(
        self,
        pools: Callable[[], Iterable[Bulkhead]] = tuple,
        refusals: Callable[[], Mapping[str, int]] = dict,
    ) -> None:
        self.registry = CollectorRegistry()
        self._call_metrics(self.registry)
        self._orchestration_metrics(self.registry)
        self._log_metrics(self.registry)
        self.registry.register(_PoolCollector(pools))
        self.registry.register(_RefusalCollector(refusals))

    def _call_metrics(self, r: CollectorRegistry) -> None:
        self.calls_active = Gauge("voxgate_calls_active", "Calls in progress", registry=r)
        self.calls = Counter("voxgate_calls", "Calls started", ["protocol"], registry=r)
        self.turns = Counter("voxgate_turns", "Caller turns transcribed", registry=r)
        self.response = Histogram(
            "voxgate_response_latency_seconds",
            "Caller's last voiced frame seen -> first agent audio sent (server side)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.barge_in = Histogram(
            "voxgate_barge_in_latency_seconds",
            "Caller speech onset -> agent audio stopped (audio time, server side)",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.barge_ins = Counter("voxgate_barge_ins", "Agent replies interrupted", registry=r)
        self.stt = Histogram(
            "voxgate_stt_latency_seconds", "Whisper time per turn", buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.stt_runs = Counter(
            "voxgate_stt_runs", "Whisper runs of delivered turns: the one whose transcript was "
            "delivered (used) and the speculative ones thrown away (wasted)", ["result"],
            registry=r,
        )
        self.caller_frames = Counter(
            "voxgate_caller_frames", "20 ms frames of caller audio in ended calls: through a "
            "phone line's noise gate (gated) or decoded and classified (full)", ["path"],
            registry=r,
        )
        self.tts = Histogram(
            "voxgate_tts_latency_seconds", "Piper time per sentence", buckets=_FAST_BUCKETS,
            registry=r,
        )

    def _orchestration_metrics(self, r: CollectorRegistry) -> None:
        self.tools = Counter(
            "voxgate_tool_calls", "Tool calls by outcome", ["tool", "outcome"], registry=r
        )
        self.breakers = Gauge(
            "voxgate_circuit_breaker_state", "0 closed, 1 half-open, 2 open", ["name"], registry=r
        )
        self.transitions = Counter(
            "voxgate_workflow_transitions",
            "State transitions: of the voice agents' flows (source=call) and of back-office "
            "workflow runs (source=workflow)",
            ["source"],
            registry=r,
        )
        self.denials = Counter(
            "voxgate_policy_denials", "Actions denied by policy", ["rule"], registry=r
        )
        self.bad_messages = Counter(
            "voxgate_bad_messages", "Malformed messages at the edge", ["protocol"], registry=r
        )

    def _log_metrics(self, r: CollectorRegistry) -> None:
        self.log_append = Histogram(
            "voxgate_event_log_append_seconds",
            "Time to append one batch to the event log",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        # the event log writer's health (orchestration/log/buslog.py reports it, see attach_bus)
        self.log_backlog_size = Gauge(
            "voxgate_event_log_backlog", "Call events emitted and not yet in the event log",
            registry=r,
        )
        self.log_write_failures = Counter(
            "voxgate_event_log_write_failures",
            "Appends to the event log that failed (locked, disk full, ...) and are retried",
            registry=r,
        )
        self.log_drops = Counter(
            "voxgate_event_log_dropped",
            "Call events that will never be in the event log: poison (the log cannot store "
            "it), backlog_full, shutdown (the log was still unwritable)",
            ["reason"],
            registry=r,
        )
        for reason in ("poison", "backlog_full", "shutdown"):
            self.log_drops.labels(reason)  # every reason shows, at 0 until it happens

    def observe(self, event: Event) -> None:
        self._count(event.type, event.data, "call")

    def observe_log(self, events: Iterable[StoredEvent]) -> None:
        """Back-office workflow runs (and their breakers) write to the event log, not the
        bus: count their transitions, tool calls, breakers and denials from the log.
        Calls' own events reach the log through the bus and are counted there."""
        for event in events:
            if not event.stream.startswith(("wf:", "breaker:")):
                continue
            kind, data = event.type, event.data
            # a workflow step names its tool on completion or failure
            if kind in _STEP_OUTCOME and isinstance(data.get("tool"), str):
                self.tools.labels(data["tool"], _STEP_OUTCOME[kind]).inc()
            else:
                self._count(kind, data, "workflow")

    def _count(self, kind: str, data: Mapping[str, Any], source: str) -> None:
        if kind == "session.started":
            self.calls_active.inc()
            self.calls.labels(str(data.get("protocol", "unknown"))).inc()
        elif kind == "session.ended":
            self.calls_active.dec()
            gated = int(data.get("frames_gated", 0))
            self.caller_frames.labels("gated").inc(gated)
            self.caller_frames.labels("full").inc(max(0, int(data.get("frames", 0)) - gated))
        elif kind == "stt.final":
            self.turns.inc()
            if data.get("latency_ms"):
                self.stt.observe(float(data["latency_ms"]) / 1000)
            if "stt_runs" in data:
                self.stt_runs.labels("used").inc(min(1, int(data["stt_runs"])))
                self.stt_runs.labels("wasted").inc(int(data.get("stt_wasted", 0)))
        elif kind == "turn.latency":
            self.response.observe(float(data["total_ms"]) / 1000)
        elif kind == "tts.started":
            self.tts.observe(float(data.get("synth_ms", 0.0)) / 1000)
        elif kind == "tts.interrupted":
            self.barge_ins.inc()
            if "detect_ms" in data:
                self.barge_in.observe(float(data["detect_ms"]) / 1000)
        elif kind in ("tool.succeeded", "tool.failed", "tool.gave_up"):
            self.tools.labels(str(data.get("tool", "?")), kind.split(".", 1)[1]).inc()
        elif kind == "breaker.state":
            state = _BREAKER_STATES.get(str(data.get("state")), -1)
            self.breakers.labels(str(data.get("name", data.get("tool", "?")))).set(state)
        elif kind == "workflow.transition":
            self.transitions.labels(source).inc()
        elif kind == "policy.denied":
            self.denials.labels(str(data.get("rule", data.get("policy", "?")))).inc()
        elif kind == "gateway.bad_message":
            self.bad_messages.labels(str(data.get("protocol", "?"))).inc()

    # the event log writer's observer (orchestration.log.buslog.AppendObserver)

    def log_appended(self, seconds: float, count: int) -> None:
        self.log_append.observe(seconds)

    def log_write_failed(self) -> None:
        self.log_write_failures.inc()

    def log_dropped(self, count: int, reason: str) -> None:
        self.log_drops.labels(reason).inc(count)

    def log_backlog(self, size: int) -> None:
        self.log_backlog_size.set(size)

    def attach(self, bus: EventBus) -> Callable[[], None]:
        return bus.subscribe(self.observe)

    def render(self) -> bytes:
        return generate_latest(self.registry)
