"""Latency, real-time factor, load time and memory of the voice models, on real speech.

    python -m benchmarks.stt_tts [--runs 3]

* STT: every Asterisk prompt in gateway.evaluation.speech.SHORT_PROMPTS (22 human utterances of
  1-2.7 s), transcribed ``--runs`` times each with tiny.en and base through WhisperSTT
  (the options it ships with), plus tiny.en with beam 5 and with one thread: latency per
  utterance, real-time factor (compute time / audio time) and WER.
* Decoding options: greedy at temperature 0 against faster-whisper's default temperature
  fallback, on the same prompts with white noise at 10 dB SNR and on non-speech (silence,
  noise, clicks, a cough), where the fallback re-decodes.
* TTS: time to first audio for typical agent replies, spoken the way the gateway does
  (split_sentences with the first chunk cut at 60 characters), against the first whole
  sentence and against the whole reply in one call; real-time factor per sentence.
* Silero VAD: compute per 20 ms frame.
* Model load time and resident memory (VmRSS) after loading, each model measured in a
  fresh child process so the figures do not include the others.

Prints a table and writes benchmarks/results/stt_tts.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from gateway.evaluation.speech import SHORT_PROMPTS, corpus_wer, load_prompt
from orchestration.patterns.bulkhead import Bulkhead
from voice.audio import FRAME_BYTES, SAMPLE_RATE, ms_of

RESULTS = Path(__file__).parent / "results"

REPLIES = [
    "Sure, I can help you with that. What day works best for you?",
    "Your appointment is confirmed for Tuesday at three in the afternoon, "
    "and you will get a reminder the day before.",
    "I'm sorry, I didn't catch that. Could you say it again?",
    "Let me check the schedule for next week, it should only take a moment.",
    "Okay. Is there anything else I can do for you today?",
    "Thank you for calling Riverside Dental, this is the automated assistant; how may I help you?",
]


def rss_mb() -> float:
    # psutil is not a dependency; the kernel reports resident memory here
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "p90": round(float(np.percentile(values, 90)), 4),
        "max": round(max(values), 4),
        "n": len(values),
    }


# --- load time and memory, one model per child process ------------------------------------


def child_load(what: str, data_dir: Path) -> dict[str, float]:
    """Runs in a child: load one model, report seconds and VmRSS before/after."""
    before = rss_mb()
    started = time.perf_counter()
    if what in ("tiny.en", "base"):
        from voice.config import SttConfig
        from voice.stt import WhisperSTT

        stt = WhisperSTT(SttConfig(model=what), data_dir, Bulkhead("bench-stt", 1, 0))
        stt.load()
        loaded = time.perf_counter()
        stt.warmup()
    elif what == "piper":
        from voice.config import TtsConfig
        from voice.tts import PiperTTS

        tts = PiperTTS(TtsConfig(), Bulkhead("bench-tts", 1, 0))
        tts.load()
        loaded = time.perf_counter()
        tts.warmup()
    elif what == "silero":
        from voice.silero import SileroClassifier

        vad = SileroClassifier()
        loaded = time.perf_counter()
        for _ in range(2):  # two frames complete the first 32 ms window
            vad.speech_prob(bytes(FRAME_BYTES))
    else:
        raise SystemExit(f"unknown model {what!r}")
    return {
        "load_s": round(loaded - started, 3),
        "warmup_s": round(time.perf_counter() - loaded, 3),
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(rss_mb(), 1),
    }


def measure_loads(data_dir: Path) -> dict[str, Any]:
    from voice.stt import prepare_base_model

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as fresh:
        started = time.perf_counter()
        prepare_base_model(Path(fresh))
        out["base_join_s"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        prepare_base_model(Path(fresh))
        out["base_reuse_s"] = round(time.perf_counter() - started, 4)
    prepare_base_model(data_dir)
    for what in ("tiny.en", "base", "piper", "silero"):
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.stt_tts", "--child", what, "--data", str(data_dir)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        out[what] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# --- STT -----------------------------------------------------------------------------------


def measure_stt(
    model: str, beam: int, runs: int, data_dir: Path, threads: int = 2
) -> dict[str, Any]:
    from voice.config import SttConfig
    from voice.stt import WhisperSTT

    config = SttConfig(model=model, beam_size=beam, cpu_threads=threads)
    stt = WhisperSTT(config, data_dir, Bulkhead(f"bench-{model}", 1, 0))
    stt.load()
    stt.warmup()
    latencies: list[float] = []
    rtfs: list[float] = []
    pairs: list[tuple[str, str]] = []
    for run in range(runs):
        for name in SHORT_PROMPTS:
            pcm, reference = load_prompt(name)
            transcript = stt.transcribe_sync(pcm)
            latencies.append(transcript.latency_ms / 1000)
            rtfs.append(transcript.latency_ms / ms_of(pcm))
            if run == 0:
                pairs.append((reference, transcript.text))
    return {
        "model": model,
        "beam_size": beam,
        "cpu_threads": threads,
        "utterances": len(SHORT_PROMPTS),
        "runs": runs,
        "audio_s": summary([ms_of(load_prompt(n)[0]) / 1000 for n in SHORT_PROMPTS]),
        "latency_s": summary(latencies),
        "rtf": summary(rtfs),
        "wer": round(corpus_wer(pairs), 4),
    }


def _non_speech() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    cough = rng.normal(0, 1, SAMPLE_RATE // 4) * np.exp(-np.linspace(0, 8, SAMPLE_RATE // 4))
    cough_1s = np.zeros(SAMPLE_RATE)
    cough_1s[: cough.size] = np.convolve(cough, np.ones(8) / 8, "same") * 0.5
    clicks = np.zeros(SAMPLE_RATE)
    clicks[:: SAMPLE_RATE // 4] = 0.8
    return {
        "silence": np.zeros(SAMPLE_RATE),
        "noise-60dB": rng.normal(0, 0.001, SAMPLE_RATE),
        "noise-loud": rng.normal(0, 0.2, SAMPLE_RATE),
        "cough": cough_1s,
        "clicks": clicks,
    }


def measure_decoding(data_dir: Path) -> dict[str, Any]:
    """Temperature 0 against the fallback ladder, called on faster-whisper directly."""
    from faster_whisper import WhisperModel

    from voice.config import SttConfig
    from voice.stt import model_dir

    config = SttConfig(model="tiny.en")
    model = WhisperModel(
        str(model_dir(config, data_dir)),
        device="cpu",
        compute_type=config.compute_type,
        cpu_threads=config.cpu_threads,
    )
    rng = np.random.default_rng(1)
    noisy: list[tuple[np.ndarray, str]] = []
    for name in SHORT_PROMPTS:
        pcm, reference = load_prompt(name)
        audio = np.frombuffer(pcm, dtype="<i2") / 32768.0
        noise = rng.normal(0, np.sqrt(np.mean(audio**2) / 10), audio.size)
        noisy.append((np.clip(audio + noise, -1, 1).astype(np.float32), reference))
    ladder = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    out: dict[str, Any] = {}
    for label, temperature in (("temperature_0", 0.0), ("fallback", ladder)):

        def run(audio: np.ndarray, temperature: float | list[float] = temperature) -> str:
            segments, _ = model.transcribe(
                audio.astype(np.float32),
                language="en",
                beam_size=1,
                temperature=temperature,
                without_timestamps=True,
                condition_on_previous_text=False,
                vad_filter=False,
                no_speech_threshold=None,
            )
            return " ".join(s.text.strip() for s in segments)

        run(noisy[0][0])
        speech_lat, pairs = [], []
        for audio, reference in noisy:
            started = time.perf_counter()
            pairs.append((reference, run(audio)))
            speech_lat.append(time.perf_counter() - started)
        noise_lat, heard = [], {}
        for name, audio in _non_speech().items():
            started = time.perf_counter()
            heard[name] = run(audio)
            noise_lat.append(time.perf_counter() - started)
        out[label] = {
            "snr10_wer": round(corpus_wer(pairs), 4),
            "snr10_latency_s": summary(speech_lat),
            "non_speech_latency_s": summary(noise_lat),
            "non_speech_raw_text": heard,
        }
    return out


# --- TTS and VAD ---------------------------------------------------------------------------


def measure_tts(runs: int) -> dict[str, Any]:
    from voice.config import TtsConfig
    from voice.tts import PiperTTS, split_sentences

    tts = PiperTTS(TtsConfig(), Bulkhead("bench-tts", 1, 0))
    tts.load()
    tts.warmup()
    first_chunk: list[float] = []
    first_sentence: list[float] = []
    whole: list[float] = []
    rtfs: list[float] = []
    for _ in range(runs):
        for reply in REPLIES:
            for bucket, chars in ((first_chunk, 60), (first_sentence, 10_000)):
                started = time.perf_counter()
                tts.synthesize_sync(split_sentences(reply, chars)[0])
                bucket.append(time.perf_counter() - started)
            started = time.perf_counter()
            tts.synthesize_sync(reply)
            whole.append(time.perf_counter() - started)
            for sentence in split_sentences(reply, 10_000):
                started = time.perf_counter()
                audio = tts.synthesize_sync(sentence)
                rtfs.append((time.perf_counter() - started) / (len(audio) / 2 / tts.sample_rate))
    return {
        "replies": len(REPLIES),
        "runs": runs,
        "first_audio_split_60_s": summary(first_chunk),
        "first_audio_first_sentence_s": summary(first_sentence),
        "whole_reply_s": summary(whole),
        "rtf": summary(rtfs),
    }


def measure_silero() -> dict[str, Any]:
    from voice.silero import SileroClassifier

    pcm = b"".join(load_prompt(name)[0] for name in SHORT_PROMPTS)
    frames = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]
    vad = SileroClassifier()
    started = time.perf_counter()
    for frame in frames:
        vad.speech_prob(frame)
    per_frame = (time.perf_counter() - started) / len(frames)
    return {"frames": len(frames), "us_per_frame": round(per_frame * 1e6, 1)}


# --- report --------------------------------------------------------------------------------


def fmt(stats: dict[str, float], unit: str = "s") -> str:
    if unit == "ms":
        return f"{stats['median'] * 1000:7.0f} {stats['p90'] * 1000:7.0f}"
    return f"{stats['median']:7.3f} {stats['p90']:7.3f}"


def report(results: dict[str, Any]) -> None:
    print("\nSTT (22 Asterisk prompts x runs)       median/p90 ms    RTF median/p90    WER")
    for row in results["stt"]:
        label = f"{row['model']} beam {row['beam_size']}, {row['cpu_threads']} thread(s)"
        print(
            f"  {label:35s} {fmt(row['latency_s'], 'ms')}    {fmt(row['rtf'])}   {row['wer']:.3f}"
        )
    print("\ndecoding on tiny.en        SNR10 WER   SNR10 ms med/p90   non-speech ms med/max")
    for label, row in results["decoding"].items():
        ns = row["non_speech_latency_s"]
        print(
            f"  {label:24s} {row['snr10_wer']:.3f}   {fmt(row['snr10_latency_s'], 'ms')}"
            f"   {ns['median'] * 1000:7.0f} {ns['max'] * 1000:7.0f}"
        )
    tts = results["tts"]
    print("\nTTS (piper joe)                          median/p90 ms")
    print(f"  first audio, split at 60 chars         {fmt(tts['first_audio_split_60_s'], 'ms')}")
    print(
        f"  first audio, first whole sentence      {fmt(tts['first_audio_first_sentence_s'], 'ms')}"
    )
    print(f"  whole reply in one call                {fmt(tts['whole_reply_s'], 'ms')}")
    print(f"  real-time factor per sentence          {fmt(tts['rtf'])}")
    print(f"\nSilero VAD: {results['silero']['us_per_frame']} us per 20 ms frame")
    loads = results["loads"]
    print(
        f"\nbase model join: {loads['base_join_s']} s first time, {loads['base_reuse_s']} s reuse"
    )
    print("model       load s  warmup s  VmRSS before/after MB")
    for what in ("tiny.en", "base", "piper", "silero"):
        row = loads[what]
        print(
            f"  {what:9s} {row['load_s']:6.2f}  {row['warmup_s']:8.2f}  "
            f"{row['rss_before_mb']:7.0f} {row['rss_after_mb']:7.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        print(json.dumps(child_load(args.child, args.data)))
        return

    with tempfile.TemporaryDirectory(prefix="voxgate-bench-") as tmp:
        data_dir = Path(tmp)
        results: dict[str, Any] = {
            # the load average shows whether something else competed for the CPU
            "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()},
            "loads": measure_loads(data_dir),
            "stt": [
                measure_stt("tiny.en", 1, args.runs, data_dir),
                measure_stt("tiny.en", 5, args.runs, data_dir),
                measure_stt("tiny.en", 1, args.runs, data_dir, threads=1),
                measure_stt("base", 1, args.runs, data_dir),
            ],
            "decoding": measure_decoding(data_dir),
            "tts": measure_tts(args.runs),
            "silero": measure_silero(),
        }
    results["machine"]["loadavg_end"] = os.getloadavg()
    report(results)
    print(f"load average at start {results['machine']['loadavg_start']}, at end {os.getloadavg()}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "stt_tts.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
