"""First audio sooner on the TTS side: piper's leading silence trimmed, and lines said
again and again kept in a bounded cache (voice/tts_cache.py). Real piper throughout."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from orchestration.patterns.bulkhead import Bulkhead, BulkheadFull
from voice.config import TtsConfig, VoiceConfig
from voice.replies import kept
from voice.services import VoiceServices
from voice.stt import WhisperSTT
from voice.tts import KEEP_LEAD_MS, PiperTTS, leading_silence_ms, normalize_text
from voice.tts_cache import AudioCache

# each starts with 35-60 ms of near silence in piper's raw output (every run)
LINES = ["Is there anything else I can help with?", "Okay.", "Welcome back."]


@pytest.fixture
def pool() -> Iterator[Bulkhead]:
    bulkhead = Bulkhead("test-tts-first-audio", 1, 0)
    yield bulkhead
    bulkhead.shutdown()


@pytest.mark.parametrize("text", LINES)
def test_leading_silence_is_trimmed_to_a_short_lead_in(piper_joe: PiperTTS, text: str) -> None:
    raw = PiperTTS(TtsConfig(trim_leading_silence=False, cache_bytes=0), piper_joe.pool)
    untrimmed = raw.synthesize_sync(text)
    rate = raw.sample_rate
    assert leading_silence_ms(untrimmed, rate) > KEEP_LEAD_MS  # there was something to cut
    trimmed = piper_joe.synthesize_sync(text)
    assert leading_silence_ms(trimmed, rate) <= KEEP_LEAD_MS


def test_audio_that_is_all_quiet_is_not_trimmed_away() -> None:
    from voice.tts import trim_leading_silence

    quiet = b"\x01\x00" * 22_050
    assert trim_leading_silence(quiet, 22_050) == quiet


def test_a_line_is_kept_the_second_time_and_served_from_the_cache(pool: Bulkhead) -> None:
    tts = PiperTTS(TtsConfig(), pool)
    first = tts.synthesize_sync("Sorry, I didn't get that.")
    assert len(tts.cache) == 0  # a line said once may be a one-off
    second = tts.synthesize_sync("Sorry, I didn't get that.")
    assert len(tts.cache) == 1 and tts.cache.hits == 0
    # piper draws phoneme durations at random: only a cached line comes back identical
    assert tts.synthesize_sync("Sorry,   I didn't get that.") == second
    assert tts.cache.hits == 1
    assert first  # the first one was spoken too


async def test_a_kept_line_skips_a_full_pool(pool: Bulkhead) -> None:
    tts = PiperTTS(TtsConfig(), pool)
    tts.pin("Are you still there?")
    release = threading.Event()
    busy = asyncio.create_task(pool.run_in_thread(release.wait))
    await asyncio.sleep(0.05)
    try:
        with pytest.raises(BulkheadFull):
            await tts.synthesize("A line nobody said before.")
        assert await tts.synthesize("Are you still there?")
    finally:
        release.set()
        await busy


def test_the_key_holds_the_voice_settings(pool: Bulkhead) -> None:
    normal = PiperTTS(TtsConfig(), pool)
    slow = PiperTTS(TtsConfig(length_scale=1.5), pool)
    normal.pin("Thank you for calling. Goodbye!")
    slow.cache = normal.cache  # even one shared cache keeps the two voices apart
    slow.synthesize_sync("Thank you for calling. Goodbye!")
    assert normal.cache.hits == 0


def test_long_lines_and_a_zero_budget_keep_nothing(pool: Bulkhead) -> None:
    tts = PiperTTS(TtsConfig(cache_max_chars=20), pool)
    tts.pin("This sentence is longer than twenty characters.")
    assert len(tts.cache) == 0
    off = PiperTTS(TtsConfig(cache_bytes=0), pool)
    off.pin("Okay.")
    assert len(off.cache) == 0


def test_the_cache_drops_the_least_recently_used_past_its_budget() -> None:
    cache = AudioCache(max_bytes=10, max_chars=100)
    for key in "abc":
        cache.offer(key, key, b"1234", pin=True)
    assert cache.get("a") is None and cache.bytes == 8  # "a" went to make room for "c"
    assert cache.get("b") == b"1234"  # "b" is now the most recently used
    cache.offer("d", "d", b"1234", pin=True)
    assert cache.get("c") is None and cache.get("b") is not None


def test_the_sessions_own_lines_are_kept_at_start_up(
    pool: Bulkhead, whisper_tiny: WhisperSTT
) -> None:
    config = VoiceConfig()
    tts = PiperTTS(config.tts, pool)
    services = VoiceServices(config, whisper_tiny, tts, whisper_tiny.pool, pool)
    services.prepare_lines()
    turn = config.turn
    for line in (turn.reprompt_text, turn.goodbye_text, turn.no_reply_text):
        for sentence in services.split(line, config.tts.first_chunk_chars):
            assert tts.cache.get(tts._key(normalize_text(sentence))) is not None, sentence
    assert kept(tts, turn.tts_error_text) is not None


@pytest.mark.parametrize(
    ("text", "chunks"),
    [
        ("Sorry, I can't reach the calendar right now.",
         ["Sorry,", "I can't reach the calendar right now."]),
        ("Okay, I've kept it. Anything else?", ["Okay,", "I've kept it.", "Anything else?"]),
        # a tail of one word stays with its head; only the first sentence is cut
        ("Welcome back, Sam. How can I help, today?",
         ["Welcome back, Sam.", "How can I help, today?"]),
        ("Is there anything else I can help with?", ["Is there anything else I can help with?"]),
    ],
)
def test_the_first_sentence_is_cut_after_its_opening_clause(
    whisper_tiny: WhisperSTT, piper_joe: PiperTTS, text: str, chunks: list[str]
) -> None:
    config = VoiceConfig()
    services = VoiceServices(config, whisper_tiny, piper_joe, whisper_tiny.pool, piper_joe.pool)
    assert services.split(text, config.tts.first_chunk_chars) == chunks


async def test_an_opening_word_said_before_starts_a_new_line_from_the_cache(
    pool: Bulkhead, whisper_tiny: WhisperSTT
) -> None:
    config = VoiceConfig()
    tts = PiperTTS(config.tts, pool)
    services = VoiceServices(config, whisper_tiny, tts, whisper_tiny.pool, pool)
    for line in ("Sorry, I didn't get that.", "Sorry, we were cut off."):
        for chunk in services.split(line, config.tts.first_chunk_chars):
            await tts.synthesize(chunk)
    first, *_ = services.split("Sorry, I can't reach the calendar right now.",
                               config.tts.first_chunk_chars)
    hits = tts.cache.hits
    await tts.synthesize(first)
    assert tts.cache.hits == hits + 1
