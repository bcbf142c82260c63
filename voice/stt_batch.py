"""Several utterances through whisper at once: one encoder call and one decoder call for a
batch of (up to 30 s) utterances, from different calls, each with its own prompt.

faster-whisper's ``BatchedInferencePipeline`` batches the chunks of one long recording
(it cuts them with its own VAD and shares one prompt); ours are separate finished turns,
so this drives CTranslate2 directly the way ``WhisperModel.transcribe`` does for one
window, with the options ``voice.stt`` uses: greedy at temperature 0, no timestamps, the
agent's prompt as the previous text, ``max_new_tokens`` bounded by the audio length (the
longest of the batch: CTranslate2 takes one ``max_length`` per call). A batch of one gives
the same tokens as ``WhisperModel.transcribe`` (tests/voice/test_stt_jobs.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_ctranslate2_storage, get_suppressed_tokens

WINDOW_S = 30  # whisper's window: longer utterances go through WhisperModel.transcribe


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str  # "" when whisper emitted end-of-text at once
    no_speech_prob: float
    avg_logprob: float


def max_new_tokens(audio_ms: int) -> int:
    """Fast speech is ~4 words (~6 tokens) a second; allow twice that, so a hallucination
    loop on noise cannot decode 448 tokens."""
    return min(440, 16 + 12 * (audio_ms // 1000 + 1))


def decode_batch(model: WhisperModel, audios: list[np.ndarray], prompts: list[str | None],
                 beam_size: int) -> list[Decoded]:
    """Whisper's reading of each float32 16 kHz ``audio`` (each at most ``WINDOW_S``)."""
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual,
                          task="transcribe", language="en")
    half = model.max_length // 2 - 1
    token_prompts = []
    for prompt in prompts:
        previous = tokenizer.encode(" " + prompt.strip()) if prompt else []
        token_prompts.append(model.get_prompt(tokenizer, previous[-half:],
                                              without_timestamps=True))
    # CTranslate2 wants <|startoftranscript|> at the same place in every prompt of a
    # batch: prompts of one length go together (the calls of one agent share theirs)
    groups: dict[int, list[int]] = {}
    for i, tokens in enumerate(token_prompts):
        groups.setdefault(len(tokens), []).append(i)
    decoded: dict[int, Decoded] = {}
    for members in groups.values():
        found = _generate(model, tokenizer, [audios[i] for i in members],
                          [token_prompts[i] for i in members], beam_size)
        decoded.update(zip(members, found, strict=True))
    return [decoded[i] for i in range(len(audios))]


def _generate(model: WhisperModel, tokenizer: Tokenizer, audios: list[np.ndarray],
              prompts: list[list[int]], beam_size: int) -> list[Decoded]:
    features = np.stack([_features(model, audio) for audio in audios])
    encoded = model.model.encode(get_ctranslate2_storage(features), to_cpu=False)
    max_length = max(len(p) + max_new_tokens(len(a) * 1000 // 16000)
                     for p, a in zip(prompts, audios, strict=True))
    results = model.model.generate(
        encoded, prompts, beam_size=beam_size, patience=1, length_penalty=1,
        repetition_penalty=1, no_repeat_ngram_size=0,
        max_length=min(max_length, model.max_length), return_scores=True,
        return_no_speech_prob=True, suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        max_initial_timestamp_index=round(1.0 / model.time_precision),
    )
    decoded = []
    for result in results:
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        decoded.append(Decoded(tokenizer.decode(tokens), result.no_speech_prob, avg_logprob))
    return decoded


def _features(model: WhisperModel, audio: np.ndarray) -> np.ndarray:
    """The log-mel window of one utterance, padded to 30 s as whisper was trained."""
    features = model.feature_extractor(audio)
    padded: np.ndarray = pad_or_trim(features[:, : features.shape[-1] - 1])
    return padded
