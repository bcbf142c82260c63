"""Piper TTS: audio shape, a round trip through whisper, sentence splitting, normalization."""

from __future__ import annotations

import pytest

from gateway.evaluation.speech import corpus_wer
from orchestration.patterns.bulkhead import Bulkhead
from voice.audio import SAMPLE_RATE, level, resample
from voice.config import TtsConfig
from voice.errors import VoiceError
from voice.stt import WhisperSTT
from voice.tts import PiperTTS, TtsError, normalize_text, split_sentences


def _seconds(pcm: bytes, rate: int) -> float:
    return len(pcm) / 2 / rate


@pytest.mark.slow
def test_audio_has_the_native_rate_and_a_plausible_length(piper_joe: PiperTTS) -> None:
    assert piper_joe.sample_rate == 22_050
    pcm = piper_joe.synthesize_sync("Your table for two is booked for seven thirty tonight.")
    assert len(pcm) % 2 == 0
    # ten words at a conversational 2-4 words per second
    assert 2.0 < _seconds(pcm, piper_joe.sample_rate) < 5.5
    assert level(pcm) > 0.05


@pytest.mark.slow
def test_length_scale_slows_the_voice_down() -> None:
    text = "Thank you for calling, how can I help you today?"
    # no phrase cache: every run must be a synthesis of its own
    normal = PiperTTS(TtsConfig(cache_bytes=0), Bulkhead("test-tts-normal", 1, 0))
    slow = PiperTTS(TtsConfig(length_scale=1.5, cache_bytes=0), Bulkhead("test-tts-slow", 1, 0))
    # piper draws phoneme durations at random (noise_w), so compare totals over a few runs;
    # 1.5x longer phonemes give ~1.3x longer audio (pauses and padding do not scale)
    slow_bytes = sum(len(slow.synthesize_sync(text)) for _ in range(5))
    normal_bytes = sum(len(normal.synthesize_sync(text)) for _ in range(5))
    assert 1.15 < slow_bytes / normal_bytes < 1.5


ROUND_TRIP = [
    "Thank you for calling, how can I help you today?",
    "Your appointment is confirmed for Tuesday morning.",
    "Please hold while I check the schedule.",
    "I have booked a table for four people.",
    "The doctor will call you back tomorrow.",
]


@pytest.mark.slow
async def test_round_trip_through_whisper(piper_joe: PiperTTS, whisper_tiny: WhisperSTT) -> None:
    pairs = []
    for text in ROUND_TRIP:
        audio = await piper_joe.synthesize(text)
        transcript = await whisper_tiny.transcribe(resample(audio, 22_050, SAMPLE_RATE))
        pairs.append((text, transcript.text))
    assert corpus_wer(pairs) < 0.10, pairs


@pytest.mark.slow
async def test_normalized_money_and_times_come_back_as_words(
    piper_joe: PiperTTS, whisper_tiny: WhisperSTT
) -> None:
    audio = piper_joe.synthesize_sync("That costs $12.50 and we open at 9:00 am.")
    heard = whisper_tiny.transcribe_sync(resample(audio, 22_050, SAMPLE_RATE)).text.lower()
    assert "dollars" in heard or "$12.50" in heard
    assert "point" not in heard and "zero" not in heard


@pytest.mark.parametrize("text", ["", "   ", "...", "?!", "😀", "**"])
def test_nothing_to_say_is_a_tts_error(piper_joe: PiperTTS, text: str) -> None:
    with pytest.raises(TtsError, match="nothing to say"):
        piper_joe.synthesize_sync(text)
    assert issubclass(TtsError, VoiceError)


@pytest.mark.parametrize(
    ("text", "first_chunk_chars", "expected"),
    [
        ("Hello! How are you? I am fine.", 60, ["Hello!", "How are you?", "I am fine."]),
        (
            "Dr. Smith will see you at 3 p.m. on Monday. Bring your card.",
            60,
            ["Dr. Smith will see you at 3 p.m. on Monday.", "Bring your card."],
        ),
        ("Call me at 3 p.m. Then we talk.", 60, ["Call me at 3 p.m.", "Then we talk."]),
        (
            "It is 3.5 miles, e.g. a short drive. Right?",
            60,
            ["It is 3.5 miles, e.g. a short drive.", "Right?"],
        ),
        ("Ask J. Smith or Mrs. Lee. They know.", 60, ["Ask J. Smith or Mrs. Lee.", "They know."]),
        ("We met in the U.S. and Canada. Nice.", 60, ["We met in the U.S. and Canada.", "Nice."]),
        ("The answer is no. Sorry.", 60, ["The answer is no.", "Sorry."]),
        ("See No. 5 on the list.", 60, ["See No. 5 on the list."]),
        ('"Really?" she asked. Yes.', 60, ['"Really?" she asked.', "Yes."]),
        ("Well... I think so.", 60, ["Well...", "I think so."]),
        ("Fruit, bread, etc. Anything else?", 60, ["Fruit, bread, etc.", "Anything else?"]),
        ("Pick one:\n- tea\n- coffee", 60, ["Pick one:", "- tea", "- coffee"]),
        ("   One   sentence   only  ", 60, ["One sentence only"]),
        ("", 60, []),
        ("... !", 60, []),
        # a long first sentence is cut at its first clause after three words
        (
            "Sure, I can definitely help you with that appointment, just give me a second. Ok.",
            60,
            [
                "Sure, I can definitely help you with that appointment,",
                "just give me a second.",
                "Ok.",
            ],
        ),
        (
            "Absolutely; I have found three open slots for you next week on Tuesday.",
            60,
            ["Absolutely; I have found three open slots for you next week on Tuesday."],
        ),
        (
            "Let me check that for you — it should only take a moment or two.",
            40,
            ["Let me check that for you —", "it should only take a moment or two."],
        ),
        (
            "The total for your order is 1,250 dollars, including delivery and tax.",
            40,
            ["The total for your order is 1,250 dollars,", "including delivery and tax."],
        ),
        # short enough: no split
        ("Sure, I can help, no problem.", 60, ["Sure, I can help, no problem."]),
        # only the first sentence is ever cut
        (
            "Okay. Second sentence, which is long enough to split, stays whole.",
            10,
            ["Okay.", "Second sentence, which is long enough to split, stays whole."],
        ),
    ],
)
def test_split_sentences(text: str, first_chunk_chars: int, expected: list[str]) -> None:
    assert split_sentences(text, first_chunk_chars) == expected


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        (
            "It costs $5.50, or $1, or $0.99.",
            "It costs 5 dollars and 50 cents, or 1 dollar, or 99 cents.",
        ),
        ("A $1,200 deposit.", "A 1200 dollars deposit."),
        ("Open 10:00 to 9:05 pm.", "Open 10 to 9 oh 5 pm."),
        ("Call 555-123-4567 now.", "Call 5 5 5, 1 2 3, 4 5 6 7 now."),
        ("Call (555) 123-4567.", "Call 5 5 5, 1 2 3, 4 5 6 7."),
        ("**Great** news 🎉 for _you_!", "Great news for you!"),
        ("## Summary", "Summary"),
        ("Dr. Smith vs. Mr. Jones", "Doctor Smith versus Mister Jones"),
        ("We are here 24/7.", "We are here twenty-four seven."),
        ("It is 3 PM, 25°C and 50% off.", "It is 3 PM, 25°C and 50% off."),  # espeak reads these
        ("Keep snake_case_names.", "Keep snake_case_names."),
    ],
)
def test_normalize_text(text: str, spoken: str) -> None:
    assert normalize_text(text) == spoken
