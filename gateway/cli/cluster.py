"""``voxgate cluster``: a multi-node deployment on this machine, for a person to try
(gateway/servers/local_cluster.py): PostgreSQL, NATS, N replicas, HAProxy on one port."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer


def cluster_command(
    replicas: Annotated[int, typer.Option(min=1, max=8, help="gateway replicas")] = 2,
    port: Annotated[int, typer.Option(min=1, max=65535, help="the one port in front")] = 8000,
    data_dir: Annotated[Path, typer.Option(help="the replicas' folders")] = Path(
        ".voxgate/cluster"),
    livekit: Annotated[bool, typer.Option(
        help="also a LiveKit server and a livekit-worker per replica (when `make livekit` "
        "has built the server)")] = True,
) -> None:
    """Start PostgreSQL, the NATS bus, LiveKit and its workers, the replicas and HAProxy;
    print where they are (one JSON line); stop them all on Ctrl+C or SIGTERM."""
    from gateway.servers.local_cluster import LocalCluster

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    typer.echo(f"starting PostgreSQL, NATS, {'LiveKit, ' if livekit else ''}{replicas} "
               "replicas and HAProxy ...", err=True)
    try:
        cluster = LocalCluster(data_dir, replicas=replicas, port=port,
                               with_livekit=livekit).start()
    except (RuntimeError, TimeoutError) as exc:
        typer.echo(f"voxgate cluster: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        typer.echo(json.dumps({"ready": cluster.describe()}), nl=True)
        typer.echo(f"voxgate cluster ready on {cluster.url} (Ctrl+C stops it)", err=True)
        reported: set[str] = set()
        while not stop.wait(1.0):
            for name in set(cluster.dead()) - reported:
                reported.add(name)
                typer.echo(f"voxgate cluster: {name} exited; HAProxy sends its calls to "
                           "the others", err=True)
    finally:
        cluster.stop()
        typer.echo("voxgate cluster stopped", err=True)
