"""Command-line options shared by ``voxgate call`` and ``voxgate eval``: the secrets a
production gateway asks of a caller (docs/security.md)."""

from __future__ import annotations

from typing import Annotated

import typer

WidgetToken = Annotated[str | None, typer.Option(
    "--token", help="widget token for browser calls (POST /api/tokens)",
    envvar="VOXGATE_CALL_TOKEN")]
AdminToken = Annotated[str | None, typer.Option(
    "--admin-token", help="admin token: the event stream with the transcripts",
    envvar="VOXGATE_ADMIN_TOKEN")]
TwilioAuthToken = Annotated[str | None, typer.Option(
    "--twilio-auth-token", help="sign Twilio streams as Twilio does (a production gateway "
    "checks X-Twilio-Signature)", envvar="VOXGATE_TWILIO_AUTH_TOKEN")]
