"""Settings for the per-call voice pipeline. Every default is explained in docs/voice.md."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class VadConfig(BaseModel):
    engine: Literal["webrtc", "silero"] = "webrtc"
    # 0 (least) .. 3 (most aggressive at calling audio non-speech). 3 keeps telephone
    # line noise and breathing out of turns; it still catches the quiet ends of words.
    aggressiveness: int = Field(3, ge=0, le=3)
    silero_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    # voiced time needed before speech counts as started; hides webrtcvad's ~100 ms of
    # misfires at the start of a stream and single clicks, yet keeps barge-in quick
    start_ms: int = Field(60, ge=20, le=1000)
    # the window in which start_ms of voiced frames must fall
    start_window_ms: int = Field(100, ge=20, le=2000)
    # audio kept from before the confirmed onset so the first phoneme reaches STT
    preroll_ms: int = Field(300, ge=0, le=2000)
    # unvoiced time after speech that counts as a pause (speculative STT starts here)
    pause_ms: int = Field(100, ge=20, le=2000)
    # frames quieter than this (RMS, dBFS) are never speech, whatever the classifier says
    energy_floor_db: float = Field(-55.0, ge=-90.0, le=0.0)
    # ignore the VAD for this long at the start of a stream (webrtcvad adapts its noise
    # floor in the first frames and flags them as speech)
    warmup_ms: int = Field(120, ge=0, le=2000)


class TurnConfig(BaseModel):
    # end of turn: silence needed when the transcript reads as a finished sentence ...
    end_silence_ms: int = Field(320, ge=60, le=5000)
    # ... and when it does not (trailing "and", "um", a comma), or no transcript yet
    end_silence_max_ms: int = Field(600, ge=100, le=10000)
    # does a transcript's final punctuation say whether the caller finished? None: yes
    # for whisper, no for Moonshine (it ends many finished turns with a comma)
    trust_punctuation: bool | None = None
    # barge-in: speech shorter than this while the agent talked, or without words, is a
    # backchannel or noise, and the agent resumes its reply
    backchannel_max_ms: int = Field(600, ge=0, le=5000)
    backchannel_words: list[str] = Field(
        default_factory=lambda: [
            "mm", "mmhmm", "mhm", "hmm", "uh", "um", "uhhuh", "ah", "oh", "yeah", "yep",
            "okay", "ok", "right", "sure",
        ]
    )
    barge_in: bool = True
    # answering early (voice.early): after this much silence, a transcript that reads as
    # finished goes to the agent (if it takes early turns) while the rest of end_silence_ms
    # is waited out; its reply is held until the turn ends with the same words (one that
    # does not read finished: as long before end_silence_max_ms). 100, the pause that
    # starts the speculative transcript: the agent gets the turn as soon as its transcript
    # is ready (docs/voice-models.md). 0: off
    early_reply_ms: int = Field(100, ge=0, le=5000)
    # a caller who carries on within this long after their turn ended was pausing inside
    # a sentence: the reply stops and both pieces go to the agent as one turn
    merge_window_ms: int = Field(600, ge=0, le=5000)
    # silence handling after the agent finished speaking
    reprompt_after_s: float = Field(7.0, gt=0)
    max_reprompts: int = Field(2, ge=0, le=10)
    reprompt_text: str = "Are you still there?"
    goodbye_text: str = "I haven't heard anything, so I'll hang up now. Goodbye!"
    # what the caller hears when their turn could not be transcribed (STT raised) ...
    stt_error_text: str = "Sorry, I didn't catch that. Could you say it again?"
    # ... when a sentence of the reply could not be synthesised (said with audio made
    # when the voice was loaded, so it is heard even if synthesis fails every time) ...
    tts_error_text: str = "Sorry, something went wrong on my side. Could you say that again?"
    # ... and when the agent answered a turn with nothing at all
    no_reply_text: str = "Sorry, could you say that again?"
    # longest single user turn; longer speech is cut into turns of this size
    max_turn_s: float = Field(30.0, gt=1, le=120)


# what a caller answers most ("stt.crosscheck_trusted")
USUAL_ANSWERS = (
    "yes", "yeah", "yep", "no", "nope", "okay", "ok", "sure", "great", "perfect", "thanks",
    "thank you", "goodbye", "bye", "bye bye", "that's right", "correct", "yes please",
    "no thanks", "no thank you", "thank you goodbye", "that's all", "that's it")


class SttConfig(BaseModel):
    # Moonshine base: its cost follows the audio's length, whisper's pays a 30 s window
    # (~4x slower on a call's turns, docs/voice-models.md); "tiny.en" or "base" for whisper
    # (voice/moonshine.py, voice/stt.py). compute_type and beam_size are whisper's.
    model: Literal["tiny.en", "base", "moonshine-base"] = "moonshine-base"
    compute_type: str = "int8"
    beam_size: int = Field(1, ge=1, le=10)
    cpu_threads: int = Field(2, ge=1, le=64)
    # transcriptions that may run at once, process-wide; more wait in the queue
    workers: int = Field(1, ge=1, le=16)
    queue: int = Field(16, ge=0, le=1000)
    # waiting jobs run as one batch of up to this many (voice/stt_jobs.py)
    max_batch: int = Field(1, ge=1, le=16)
    # no speculative transcript at a pause while this many jobs (any call's) wait: the
    # turn's end is then judged on silence alone and its final transcript goes first
    speculate_max_queue: int = Field(2, ge=0, le=1000)
    # Moonshine's short turns it is unsure of (mean token log-probability under this, or
    # no words at all) are heard again by whisper tiny.en with the agents' prompt: it
    # wrote "To buy." for "Goodbye." at -0.72, where 90 % of its right short transcripts
    # score over -0.37 (docs/voice-models.md); None turns it off
    fallback_below_logprob: float | None = Field(-0.6, le=0.0)
    fallback_max_ms: int = Field(1500, ge=0, le=30_000)
    # a turn Moonshine's own evidence calls non-speech yet writes this many words for, of
    # any length, is heard by whisper too (espeak-ng's accents: "9 preporter torque to
    # cluster mass support staff" was dropped as noise); 0 turns it off
    fallback_dismissed_words: int = Field(3, ge=0, le=100)
    # ... and every other short turn is heard by both while there is spare time: the
    # transcript with the higher mean token log-probability wins. Moonshine is sure of
    # "The bay." for a third of piper's "Goodbye."s, where whisper writes "Goodbye." with
    # a higher score (docs/voice-models.md)
    crosscheck_short: bool = True
    crosscheck_max_ms: int = Field(1000, ge=0, le=30_000)
    # ... but for the usual answers (USUAL_ANSWERS to turn it on): what Moonshine
    # confidently writes as one or more of these ("Okay, bye.") is taken as is. Off by
    # default: a "Yes." then ends 320 ms into the silence instead of 460-560, but a caller
    # who pauses after "Yes," or "Okay," and goes on is cut off (docs/voice-models.md)
    crosscheck_trusted: tuple[str, ...] = ()
    # ... and while the recogniser was busy less than this share of the last two seconds
    # (a queue empty at one instant says little when many callers talk)
    crosscheck_max_busy: float = Field(0.5, ge=0.0, le=1.0)

    @property
    def moonshine(self) -> bool:
        """Moonshine rather than whisper: no prompt, punctuation not trusted."""
        return self.model.startswith("moonshine")


class TtsConfig(BaseModel):
    length_scale: float = Field(1.0, gt=0.2, lt=3.0)
    workers: int = Field(1, ge=1, le=16)
    queue: int = Field(32, ge=0, le=1000)
    # split the first sentence of a reply at a clause boundary when it is longer than
    # this many characters, so the first audio is ready sooner ...
    first_chunk_chars: int = Field(0, ge=0, le=1000)
    # ... at the first clause boundary after at least this many words: "Sorry, | I can't
    # reach the calendar." The opening word ("Sorry,", "Okay,", "Hello,") is then a line
    # of its own that many replies share, kept in the cache below (docs/voice-models.md)
    first_chunk_words: int = Field(1, ge=1, le=50)
    # piper starts most utterances with 10-40 ms of near silence; cut it (keeping 10 ms)
    # so the caller hears the first word as soon as the audio arrives
    trim_leading_silence: bool = True
    # audio of lines said again and again (reprompts, "Is there anything else I can help
    # with?"), kept per process up to this many bytes (22.05 kHz PCM16: ~44 KB a second);
    # 0 keeps none. Lines longer than cache_max_chars are never kept
    cache_bytes: int = Field(8_000_000, ge=0)
    cache_max_chars: int = Field(120, ge=1)


class VoiceConfig(BaseModel):
    vad: VadConfig = Field(default_factory=VadConfig)
    turn: TurnConfig = Field(default_factory=TurnConfig)
    stt: SttConfig = Field(default_factory=SttConfig)
    tts: TtsConfig = Field(default_factory=TtsConfig)
