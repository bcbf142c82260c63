"""Command-line options shared by ``voxgate call`` and ``voxgate eval``: the secrets a
production gateway asks of a caller (docs/security.md); and the settings every command
that runs calls loads (``serve``, ``livekit-worker``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from gateway.config import Settings

WidgetToken = Annotated[str | None, typer.Option(
    "--token", help="widget token for browser calls (POST /api/tokens)",
    envvar="VOXGATE_CALL_TOKEN")]
AdminToken = Annotated[str | None, typer.Option(
    "--admin-token", help="admin token: the event stream with the transcripts",
    envvar="VOXGATE_ADMIN_TOKEN")]
TwilioAuthToken = Annotated[str | None, typer.Option(
    "--twilio-auth-token", help="sign Twilio streams as Twilio does (a production gateway "
    "checks X-Twilio-Signature)", envvar="VOXGATE_TWILIO_AUTH_TOKEN")]


def settings_or_exit(config: Path | None, overrides: dict[str, object]) -> Settings:
    """The settings, or exit 2 naming each bad one and its environment variable."""
    import yaml
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from gateway.config import load_settings

    try:
        return load_settings(config, **overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            env = "VOXGATE_" + "__".join(str(part).upper() for part in error["loc"])
            shown = repr(error.get("input"))[:60]
            lines.append(f"  {where} ({env}): {error['msg']}; got {shown}")
        typer.echo("invalid settings:\n" + "\n".join(lines), err=True)
    except (SettingsError, FileNotFoundError, yaml.YAMLError) as exc:
        typer.echo(f"invalid settings: {exc}", err=True)
    raise typer.Exit(2)
