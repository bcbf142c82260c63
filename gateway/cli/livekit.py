"""``voxgate livekit-worker``: run a LiveKit agent worker (gateway/livekit/worker.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer


def livekit_worker_command(
    url: Annotated[str, typer.Option(help="LiveKit server URL (ws:// or wss://)",
                                     envvar="LIVEKIT_URL")],
    api_key: Annotated[str, typer.Option(help="LiveKit API key", envvar="LIVEKIT_API_KEY")],
    api_secret: Annotated[str, typer.Option(help="LiveKit API secret",
                                            envvar="LIVEKIT_API_SECRET")],
    capacity: Annotated[int | None, typer.Option(
        min=1, help="live calls at most (default: the gateway's max_sessions); the load "
        "reported to the server is live calls / capacity")] = None,
    name: Annotated[str | None, typer.Option(
        help="this worker's name, shown to the room as the agent's voxgate.worker "
        "attribute (default: host-pid)")] = None,
    agent_name: Annotated[str, typer.Option(
        help="take only explicit dispatches of this agent name (default: every new room)",
        envvar="LIVEKIT_AGENT_NAME")] = "",
    drain_timeout: Annotated[int, typer.Option(
        min=1, help="on SIGTERM, seconds live calls may go on before they hear goodbye")] = 60,
    redispatch: Annotated[bool, typer.Option(
        help="watch the rooms and dispatch a new agent, resuming from the event log, to a "
        "room whose worker died")] = True,
    config: Annotated[Path | None, typer.Option(help="YAML settings file")] = None,
) -> None:
    """Register with a LiveKit server as an agent worker and answer its rooms with voxgate's
    own call sessions. SIGTERM drains: no new calls, live ones finish, then exit 0."""
    from gateway.cli.options import settings_or_exit
    from gateway.livekit.worker import VoxgateWorker, WorkerOptions, make_runtime
    from gateway.observability.logs import configure_logging

    if not url.startswith(("ws://", "wss://", "http://", "https://")):
        raise typer.BadParameter(f"not a LiveKit URL: {url!r} (ws://host:7880)", param_hint="--url")
    settings = settings_or_exit(config, {})
    configure_logging(settings.log_level)
    options = WorkerOptions(url=url, api_key=api_key, api_secret=api_secret,
                            capacity=capacity or settings.max_sessions,
                            agent_name=agent_name, drain_timeout_s=drain_timeout,
                            redispatch=redispatch)
    if name:
        options.name = name
    worker = VoxgateWorker(options, make_runtime(settings))
    asyncio.run(worker.run())
