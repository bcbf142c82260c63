"""The root exception of the voice subsystem.

Everything the voice pipeline raises on purpose (a missing model, text that cannot be
spoken, audio that cannot be transcribed) derives from ``VoiceError``, so the gateway can
end one call's turn cleanly without confusing it with a programming error.
"""

from __future__ import annotations


class VoiceError(Exception):
    """Root of every error raised on purpose by the voice subsystem."""
