"""Whisper tiny.en on two cores: batches of utterances, threads per job against parallel
jobs, on real speech (the 22 Asterisk prompts of gateway.evaluation.speech.SHORT_PROMPTS).

    python -m benchmarks.stt_batch [--rounds 3]

* Batches: the prompts in batches of 1, 2, 4 and 8 through ``WhisperSTT.
  transcribe_batch_sync`` (one encoder and one decoder call per batch), 2 intra-op
  threads: wall time per batch (what each caller of the batch waits for its text),
  utterances per second, and the WER of the batched transcripts.
* Threads: 1 thread per job one at a time, 2 threads per job one at a time, and 2 jobs
  in parallel with 1 thread each (CTranslate2 ``num_workers=2``): utterances per second
  and the latency of each job.

Writes benchmarks/results/stt_batch.json, stamped with its provenance.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.run_all import stamp
from gateway.evaluation.speech import SHORT_PROMPTS, corpus_wer, load_prompt
from orchestration.patterns.bulkhead import Bulkhead
from voice.audio import ms_of
from voice.config import SttConfig
from voice.stt import WhisperSTT

RESULTS = Path(__file__).parent / "results"
SIZES = (1, 2, 4, 8)


def whisper(data_dir: Path, threads: int, workers: int = 1) -> WhisperSTT:
    # the synchronous methods are called directly: the pool is never used
    stt = WhisperSTT(SttConfig(cpu_threads=threads, workers=workers), data_dir,
                     Bulkhead("bench-stt", 1, 0))
    stt.load()
    stt.warmup()
    return stt


def batches(stt: WhisperSTT, speech: list[tuple[bytes, str]], size: int,
            rounds: int) -> dict[str, Any]:
    walls: list[float] = []
    pairs: list[tuple[str, str]] = []  # (reference, transcript)
    for _ in range(rounds):
        for start in range(0, len(speech), size):
            # wrap around so every batch is full
            batch = [speech[(start + k) % len(speech)] for k in range(size)]
            started = time.perf_counter()
            done = stt.transcribe_batch_sync([(pcm, None) for pcm, _ in batch])
            walls.append((time.perf_counter() - started) * 1000)
            pairs += [(ref, d.text if not isinstance(d, Exception) else "")
                      for (_, ref), d in zip(batch, done, strict=True)]
    return {
        "batch": size, "batches": len(walls),
        "wall_ms_median": round(statistics.median(walls)),
        "wall_ms_max": round(max(walls)),
        "utterances_per_s": round(len(pairs) / (sum(walls) / 1000), 2),
        "wer": round(corpus_wer(pairs), 4),
    }


def one_at_a_time(stt: WhisperSTT, speech: list[tuple[bytes, str]], rounds: int,
                  parallel: int) -> dict[str, Any]:
    latencies: list[float] = []

    def job(pcm: bytes) -> None:
        started = time.perf_counter()
        stt.transcribe_sync(pcm)
        latencies.append((time.perf_counter() - started) * 1000)

    audio = [pcm for pcm, _ in speech] * rounds
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(job, audio))
    wall = time.perf_counter() - started
    return {
        "threads_per_job": stt.config.cpu_threads, "parallel_jobs": parallel,
        "latency_ms_median": round(statistics.median(latencies)),
        "latency_ms_p90": round(sorted(latencies)[int(0.9 * (len(latencies) - 1))]),
        "utterances_per_s": round(len(audio) / wall, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    speech = [load_prompt(name) for name in SHORT_PROMPTS]
    audio_ms = statistics.median(ms_of(pcm) for pcm, _ in speech)
    out: dict[str, Any] = {"utterances": len(speech), "audio_ms_median": audio_ms}
    with tempfile.TemporaryDirectory() as tmp:
        two = whisper(Path(tmp), threads=2)
        out["batches"] = [batches(two, speech, size, args.rounds) for size in SIZES]
        for row in out["batches"]:
            print(f"batch {row['batch']}: {row['wall_ms_median']} ms per batch (max "
                  f"{row['wall_ms_max']}), {row['utterances_per_s']} utterances/s, "
                  f"WER {row['wer']:.1%}", flush=True)
        # one model of one thread that can run two jobs at once serves both 1-thread rows
        one = whisper(Path(tmp), threads=1, workers=2)
        out["threads"] = [one_at_a_time(two, speech, args.rounds, 1),
                          one_at_a_time(one, speech, args.rounds, 1),
                          one_at_a_time(one, speech, args.rounds, 2)]
    for row in out["threads"]:
        print(f"{row['threads_per_job']} thread(s) per job, {row['parallel_jobs']} at once: "
              f"{row['latency_ms_median']} ms per job (p90 {row['latency_ms_p90']}), "
              f"{row['utterances_per_s']} utterances/s", flush=True)
    for row in out["batches"]:
        out[f"batch_{row['batch']}_utterances_per_s"] = row["utterances_per_s"]
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "stt_batch.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    stamp(path, ["stt_batch", *(argv if argv is not None else sys.argv[1:])])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
