"""Intent and slot accuracy of the local NLU on the committed labelled sets.

    python -m benchmarks.agents_nlu [--make-whisper-set] [--no-heldout]

The tuning set (tests/agents/data/intents.tsv, 239 utterances, 116 of them written as a
recogniser mishears: "a point meant", "can sell", "why fi", "some rise") is not in the
examples, but the NLU was tuned while looking at it. Printed per method on it: accuracy
overall, on clean and on recognition-error utterances, and on the "unseen" subset whose
masked form equals no example; the selected method's 5-fold cross-validation over the
examples themselves; parse time per utterance (the first parse of a text: the sentence
model's vectors are cached by text). ``logreg`` is the default, n-grams plus
all-MiniLM-L6-v2 sentence features; ``logreg-ngrams`` is it without the sentence model;
``minilm_knn`` is nearest-example search over the full model's vectors alone.

Then, for the selected method, intent and slot accuracy on every set of
benchmarks/nlu_sets.py, written and as whisper heard it: tuning, development (used to
improve the NLU) and held-out (never used for tuning; its errors are never printed or
written). ``--no-heldout`` leaves the held-out sets out, for runs made while tuning.
Writes benchmarks/results/agents_nlu.json. Target: >= 95 % intent accuracy, held-out
as whisper heard it included.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import nlu_sets
from orchestration.agents.config import load
from orchestration.agents.nlu.intent import OUT_OF_SCOPE
from orchestration.agents.nlu.parser import UNKNOWN, LocalNlu, NluConfig
from orchestration.patterns.bulkhead import Bulkhead

RESULTS = Path(__file__).parent / "results"
DATA = Path(__file__).parents[1] / "tests" / "agents" / "data" / "intents.tsv"
TODAY = date(2026, 11, 26)


def rows() -> list[tuple[str, str, str, dict[str, str]]]:
    out = []
    for line in DATA.read_text().splitlines():
        if line and not line.startswith("#"):
            p = line.split("\t")
            out.append((p[0], p[1], p[2], json.loads(p[3]) if len(p) > 3 else {}))
    return out


def score(pred: list[str], data: list[tuple[str, str, str, dict[str, str]]],
          keep: list[bool] | None = None) -> float:
    pairs = [(p, d[0]) for i, (p, d) in enumerate(zip(pred, data, strict=True))
             if keep is None or keep[i]]
    return sum(p == g for p, g in pairs) / len(pairs) if pairs else 0.0


def evaluate(nlu: LocalNlu, data: list[tuple[str, str, str, dict[str, str]]]) -> dict[str, Any]:
    examples = {ex for s in nlu.classifier.intents for ex in s.examples}
    pred, times, cpu = [], [], []
    for _, _, text, _ in data:
        t, c = time.perf_counter(), time.process_time()
        pred.append(nlu.parse(text).intent)
        times.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)  # what a loaded machine inflates less
    unseen = [nlu._prepare(t) not in examples for _, _, t, _ in data]
    return {
        "accuracy": round(score(pred, data), 4),
        "clean": round(score(pred, data, [k == "clean" for _, k, _, _ in data]), 4),
        "asr": round(score(pred, data, [k == "asr" for _, k, _, _ in data]), 4),
        "unseen": round(score(pred, data, unseen), 4),
        "unseen_n": sum(unseen),
        "parse_ms_p50": round(statistics.median(times), 3),
        "parse_ms_p95": round(float(np.percentile(times, 95)), 3),
        "parse_cpu_ms_p50": round(statistics.median(cpu), 3),
        "errors": [[g, p, t] for (g, _, t, _), p in zip(data, pred, strict=True) if g != p],
    }


def cross_validation(intents: dict[str, Any], config: NluConfig, folds: int = 5) -> float:
    """Train on 4/5 of each intent's examples, test on the rest; every example once."""
    right = total = 0
    for k in range(folds):
        train = {n: {**b, "examples": [e for i, e in enumerate(b.get("examples", []))
                                       if i % folds != k]} for n, b in intents.items()}
        nlu = LocalNlu(train, config, {}, today=lambda: TODAY)
        for name, body in intents.items():
            for i, ex in enumerate(body.get("examples", [])):
                if i % folds != k or any(t in str(ex) for t in ("NAME", "DAY", "TIME")):
                    continue
                gold = UNKNOWN if name == OUT_OF_SCOPE else name
                right += nlu.parse(str(ex)).intent == gold
                total += 1
    return right / total


def embeddings_knn(nlu: LocalNlu, data: list[tuple[str, str, str, dict[str, str]]]
                   ) -> dict[str, Any] | None:
    try:
        from memory.embeddings import MiniLmEncoder, bundled_model_dir
    except ImportError:
        return None
    if bundled_model_dir() is None:
        return None
    enc = MiniLmEncoder()
    labels = [s.name for s in nlu.classifier.intents for _ in s.examples]
    texts = [ex for s in nlu.classifier.intents for ex in s.examples]
    mat = enc.encode(texts)
    pred, times = [], []
    for _, _, text, _ in data:
        t = time.perf_counter()
        norm = nlu.respell(nlu._norm(text))
        sims = mat @ enc.encode([norm])[0]
        best = int(np.argmax(sims))
        label = labels[best] if sims[best] >= 0.5 else UNKNOWN
        pred.append(UNKNOWN if label == OUT_OF_SCOPE else label)
        times.append((time.perf_counter() - t) * 1e3)
    return {"accuracy": round(score(pred, data), 4),
            "clean": round(score(pred, data, [k == "clean" for _, k, _, _ in data]), 4),
            "asr": round(score(pred, data, [k == "asr" for _, k, _, _ in data]), 4),
            "parse_ms_p50": round(statistics.median(times), 3)}


WHISPER_SET = DATA.with_name("intents_whisper.tsv")


def make_whisper_set() -> None:
    """Speak every labelled utterance with piper, send it through the telephone band
    (8 kHz mu-law) and transcribe it with whisper tiny.en given the agents' ``stt_prompt``
    (as a call does): recognition errors made by the recogniser itself, not written by
    us. Writes tests/agents/data/intents_whisper.tsv."""
    import asyncio

    from voice.audio import resample, ulaw_decode, ulaw_encode
    from voice.config import SttConfig, TtsConfig
    from voice.stt import WhisperSTT
    from voice.tts import PiperTTS

    prompt = load()[0].stt_prompt
    tts = PiperTTS(TtsConfig(), Bulkhead("bench-tts", 1, 4))
    tts.load()
    with tempfile.TemporaryDirectory() as tmp:
        stt = WhisperSTT(SttConfig(model="tiny.en"), Path(tmp), Bulkhead("bench-stt", 1, 4))
        stt.load()
        lines = ["# intent\tkind\ttext: piper -> 8 kHz mu-law -> whisper tiny.en (with the "
                 "agents' stt_prompt) of intents.tsv"]
        for gold, kind, text, _ in rows():
            pcm = resample(tts.synthesize_sync(text), tts.sample_rate, 8000)
            pcm = resample(ulaw_decode(ulaw_encode(pcm)), 8000, 16000)
            heard = asyncio.run(stt.transcribe(pcm, prompt)).text.strip().replace("\t", " ")
            lines.append(f"{gold}\twhisper-{kind}\t{heard or '(nothing)'}")
    WHISPER_SET.write_text("\n".join(lines) + "\n")


def every_set(nlu: LocalNlu, heldout: bool) -> dict[str, Any]:
    """The selected method on every labelled set, written and as whisper heard it."""
    out: dict[str, Any] = {}
    print(f"\n{'set':16} {'utterances':>10} {'intent':>7} {'slots':>13}")
    for nlu_set in (*nlu_sets.SETS, *nlu_sets.MOONSHINE_SETS):
        if (nlu_set.held_out and not heldout) or not nlu_set.path.is_file():
            continue
        r = nlu_sets.score(nlu, nlu_sets.load(nlu_set), errors=not nlu_set.held_out)
        out[nlu_set.name] = r
        slots = (f"{r['slot_accuracy']:.1%} of {r['slot_values']}" if r["slot_values"]
                 else "")
        print(f"{nlu_set.name:16} {r['utterances']:10} {r['intent_accuracy']:7.1%} "
              f"{slots:>13}")
    return out


def main() -> None:
    if "--make-whisper-set" in sys.argv:
        make_whisper_set()
    config, _, intents = load()
    services = {n: list(s.aliases) for n, s in config.ops.services.items()}
    data = rows()
    results: dict[str, Any] = {"utterances": len(data),
                               "asr_variants": sum(k == "asr" for _, k, _, _ in data),
                               "methods": {}}
    print(f"labelled set: {len(data)} utterances ({results['asr_variants']} recognition-error "
          "variants)")
    print(f"{'method':13} {'all':>7} {'clean':>7} {'asr':>7} {'unseen':>7} {'p50 ms':>7} "
          f"{'cpu ms':>7} {'build s':>7}")
    # "logreg-ngrams": the logistic regression without the sentence model's features
    variants = {"keywords": NluConfig(method="keywords"), "tfidf": NluConfig(method="tfidf"),
                "hybrid": NluConfig(method="hybrid"),
                "logreg-ngrams": NluConfig(method="logreg", embeddings=False),
                "logreg": NluConfig(method="logreg")}
    for method, variant in variants.items():
        t = time.perf_counter()
        nlu = LocalNlu(intents, variant, services, today=lambda: TODAY)
        build = time.perf_counter() - t
        r = evaluate(nlu, data)
        r["build_s"] = round(build, 2)
        results["methods"][method] = r
        print(f"{method:13} {r['accuracy']:7.1%} {r['clean']:7.1%} {r['asr']:7.1%} "
              f"{r['unseen']:7.1%} {r['parse_ms_p50']:7.2f} {r['parse_cpu_ms_p50']:7.2f} "
              f"{build:7.2f}")
    nlu = LocalNlu(intents, config.nlu, services, today=lambda: TODAY)
    emb = embeddings_knn(nlu, data)
    if emb is not None:
        results["methods"]["minilm_knn"] = emb
        print(f"{'minilm_knn':13} {emb['accuracy']:7.1%} {emb['clean']:7.1%} {emb['asr']:7.1%} "
              f"{'':>7} {emb['parse_ms_p50']:7.2f}")
    cv = cross_validation(intents, config.nlu)
    results["selected"] = config.nlu.method
    results["cross_validation_examples"] = round(cv, 4)
    print(f"selected: {config.nlu.method}; 5-fold cross-validation on the examples: {cv:.1%}")
    results["sets"] = every_set(nlu, heldout="--no-heldout" not in sys.argv)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "agents_nlu.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
