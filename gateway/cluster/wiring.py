"""The live bus in the app: ``attach_cluster`` starts the bridge with the app and stops it
with it, serves ``GET /api/cluster`` and adds the bus's figures to ``/metrics``.

    GET /api/cluster   {"status": "off"} without VOXGATE_BUS_URL; else this node's id, the
                       bus's status (connected | down | starting), events published,
                       received, dropped and queued, and the other nodes it hears
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.cluster.bridge import ClusterBus
from gateway.runtime import Runtime


def default_node_id() -> str:
    """The host's name and a short random part: two processes on one host differ."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


class BusCollector(Collector):
    """The bridge's figures, read when Prometheus scrapes."""

    def __init__(self, cluster: ClusterBus) -> None:
        self._cluster = cluster

    def collect(self) -> Iterator[Metric]:
        c = self._cluster
        yield GaugeMetricFamily("voxgate_bus_connected",
                                "1 while the live bus is connected, 0 while it is down",
                                value=1 if c.status == "connected" else 0)
        yield GaugeMetricFamily("voxgate_bus_queued", "Events waiting to be published",
                                value=c.queued())
        yield GaugeMetricFamily("voxgate_bus_peers", "Other nodes heard on the live bus",
                                value=len(c.peers.describe()))
        for name, doc in (("published", "Events published"), ("received", "Events received "
                          "from other nodes"), ("dropped", "Events dropped (queue full or "
                          "the bus down)"), ("refused", "Bus messages refused as malformed")):
            yield CounterMetricFamily(f"voxgate_bus_events_{name}", doc + " since start",
                                      value=c.counts[name])


def attach_cluster(app: FastAPI, runtime: Runtime, admin: Any) -> ClusterBus | None:
    """With ``settings.bus_url``, a bridge started and stopped with the app; None without."""
    settings = runtime.settings
    cluster = (ClusterBus(runtime.bus, settings.bus_url, settings.node_id or default_node_id())
               if settings.bus_url else None)
    app.state.cluster = cluster

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if cluster is not None:
            cluster.start()
        try:
            yield
        finally:
            if cluster is not None:
                cluster.stop()

    router = APIRouter(tags=["cluster"], lifespan=lifespan)

    @router.get("/api/cluster", dependencies=[admin])
    async def cluster_state() -> dict[str, Any]:
        return {"status": "off"} if cluster is None else cluster.describe()

    app.include_router(router)
    if cluster is not None:
        app.state.metrics.registry.register(BusCollector(cluster))
    return cluster
