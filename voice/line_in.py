"""Caller audio from a telephone stream (G.711 mu-law at 8 kHz, 20 ms a message) into the
session's 20 ms PCM16 16 kHz frames, with a noise gate for the silence between turns.

A phone line sends 50 messages a second whether the caller talks or not, and a node holds
hundreds of lines. Decoding, resampling and classifying a frame nobody is speaking in was
about a quarter of what a silent line cost (docs/deployment.md, "Idle streams per
process"). So a 20 ms message with every sample under the VAD's energy floor (less a
margin), while no speech is in progress, goes to the session as a frame of zeros marked
``quiet``: not decoded, not resampled, not shown to the classifier. The floor already
made every such frame unvoiced. On a digitally silent line the session hears exactly
what it would without the gate; on a line with hiss under the gate the classifier sees
zeros instead, which can move a speech start by a frame (docs/voice.md), and the preroll
kept before an onset and a recording hold zeros there. Everything else (speech, the
pauses inside it, any frame above the gate) takes the full path unchanged.

The resampler keeps a few samples of history: before the first frame after a gated run
(and before the stream's first) it is given a frame of silence, so its output is what it
would have made of a line that really carried zeros there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from voice.audio import (
    FRAME_BYTES,
    SAMPLE_RATE,
    FrameAssembler,
    StreamResampler,
    frame_bytes,
    ulaw_codes_under,
    ulaw_decode,
)

LINE_RATE = 8000
LINE_FRAME_BYTES = frame_bytes(LINE_RATE) // 2  # one 20 ms mu-law frame: what Twilio sends
# a gated frame has every sample this far under the VAD's floor (so its RMS is too, and
# resampling cannot lift it over): a frame near the floor takes the full path
GATE_MARGIN_DB = 1.0
SILENT_FRAME = bytes(FRAME_BYTES)
_SILENT_LINE = bytes(frame_bytes(LINE_RATE))  # 20 ms of PCM16 zeros at 8 kHz


class FrameSink(Protocol):
    """What the line feeds: a ``CallSession``."""

    def feed(self, frame: bytes, quiet: bool = False) -> None: ...


class LineIn:
    """``LineIn(session, floor_db, silent).push(payload)`` for each media message;
    ``silent()`` says no utterance is in progress (``session.listener.silent``)."""

    def __init__(self, sink: FrameSink, floor_db: float, silent: Callable[[], bool]) -> None:
        self._sink = sink
        self._silent = silent
        self._quiet_codes = ulaw_codes_under(10 ** ((floor_db - GATE_MARGIN_DB) / 20))
        self._resampler = StreamResampler(LINE_RATE, SAMPLE_RATE)
        # the resampler holds its first few samples back; given a frame of silence first,
        # each 20 ms message then makes exactly one 20 ms frame (and the gate's frames
        # stay on the same grid as the rest)
        self._resampler.process(_SILENT_LINE)
        self._frames = FrameAssembler(FRAME_BYTES)
        self._gated = False  # the last message went through the gate
        self.gated_frames = 0  # counted, for tests and benchmarks

    def push(self, payload: bytes) -> None:
        if self._can_gate(payload) and not payload.translate(None, self._quiet_codes):
            self._gated = True
            self.gated_frames += 1
            self._sink.feed(SILENT_FRAME, quiet=True)
            return
        if self._gated:
            self._gated = False
            self._resampler.process(_SILENT_LINE)  # history: the zeros the gate stood for
        for frame in self._frames.push(self._resampler.process(ulaw_decode(payload))):
            self._sink.feed(frame)

    def _can_gate(self, payload: bytes) -> bool:
        # only a whole frame on the frame grid, and only between utterances
        return (len(payload) == LINE_FRAME_BYTES and not self._frames.pending()
                and self._silent())
