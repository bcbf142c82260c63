"""The root exception of the gateway.

Everything the gateway raises on purpose (a malformed message from Twilio or a browser,
a call the client could not place) derives from ``GatewayError``, so a connection handler
can end one session cleanly without mistaking bad input for a bug in voxgate.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error raised on purpose by the gateway."""
