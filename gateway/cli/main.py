"""The ``voxgate`` command line."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated, Literal

import typer

from gateway.cli.options import AdminToken, TwilioAuthToken, WidgetToken, settings_or_exit

app = typer.Typer(no_args_is_help=True, add_completion=False, help="voxgate voice agent gateway")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML settings file")] = None,
) -> None:
    """Run the gateway (HTTP, WebSockets, the demo agent). SIGTERM drains: new calls are
    refused, live calls hear a goodbye, then the process exits 0 (docs/voice.md)."""
    import uvicorn

    from gateway.app import create_app
    from gateway.drain import DrainingServer
    from gateway.observability.logs import configure_logging

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = settings_or_exit(config, overrides)
    configure_logging(settings.log_level)
    app = create_app(settings)
    server_config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # a backstop: the handlers enforce their own, smaller limits with clear errors
        ws_max_size=1 << 20,
        log_config=None,  # uvicorn's records go through our JSON handler too
        # X-Forwarded-For is the app's to trust (settings.trusted_proxies): uvicorn would
        # otherwise believe any local process that sends one
        proxy_headers=False,
        # after the drain, connections still open (dashboards) get this long to close
        timeout_graceful_shutdown=5,
    )
    server = DrainingServer(server_config, app.state.runtime)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C: uvicorn re-raises SIGINT
        server.run()
    if not server.started:
        raise typer.Exit(3)  # uvicorn's STARTUP_FAILURE: the port is taken, the app failed


@app.command()
def call(
    wav: Annotated[Path, typer.Argument(help="caller audio (WAV, any rate, mono or stereo)")],
    protocol: Annotated[str, typer.Option(help="twilio or browser")] = "twilio",
    url: Annotated[str, typer.Option(help="gateway base URL")] = "http://127.0.0.1:8000",
    out: Annotated[Path, typer.Option(help="where to save the agent's audio")] = Path(
        "agent.wav"
    ),
    tail: Annotated[float, typer.Option(help="seconds to wait after the last agent audio")] = 6.0,
    token: WidgetToken = None,
    admin_token: AdminToken = None,
    twilio_auth_token: TwilioAuthToken = None,
) -> None:
    """Stream a WAV to the gateway in real time like a caller; print both sides."""
    from gateway.evaluation.client import CallError, format_transcript, run_call

    if protocol not in ("twilio", "browser"):
        raise typer.BadParameter("protocol must be twilio or browser")
    if not wav.is_file():
        raise typer.BadParameter(f"no such file: {wav}")
    proto: Literal["twilio", "browser"] = "twilio" if protocol == "twilio" else "browser"
    try:
        result = asyncio.run(
            run_call(
                wav,
                proto,
                url,
                tail_s=tail,
                save_agent_audio=out,
                token=token,
                admin_token=admin_token,
                twilio_auth_token=twilio_auth_token,
            )
        )
    except CallError as exc:
        typer.echo(f"call failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(format_transcript(result))
    typer.echo(f"agent audio saved to {out}")


def _mount_orchestration() -> None:
    from gateway.cli.workflow import replay_command, workflow_app

    app.add_typer(workflow_app, name="workflow", help="run and inspect workflows")
    app.command("replay", help="rebuild derived views from the event log and check them")(
        replay_command
    )


_mount_orchestration()


def _mount_eval() -> None:
    from gateway.cli.evaluate import eval_command

    app.command("eval", help="run evaluation suites; exit 1 if a threshold fails")(eval_command)


_mount_eval()


def _mount_livekit() -> None:
    from gateway.cli.livekit import livekit_worker_command

    app.command("livekit-worker", help="run a LiveKit agent worker (docs/deployment.md)")(
        livekit_worker_command
    )


_mount_livekit()


def _mount_cluster() -> None:
    from gateway.cli.cluster import cluster_command

    app.command("cluster", help="PostgreSQL, NATS, replicas and HAProxy on this machine, to "
                "try a multi-node deployment (docs/deployment.md)")(cluster_command)


_mount_cluster()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
