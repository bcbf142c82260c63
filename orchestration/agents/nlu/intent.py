"""Intent classifiers for the local NLU, built from the example phrases in the YAML.

Three methods share one interface (``scores(masked_text) -> {intent: score}``):

* ``keywords``: each intent's keyword phrases found in the utterance, longer phrases
  weighing more; what a hand-written IVR grammar does.
* ``tfidf``: nearest example by cosine similarity over TF-IDF weighted word unigrams and
  bigrams plus character 3-5-grams inside words. The character grams are what carry
  recognition slips: "why fi", "a point meant", "in voice" share most of their grams
  with "wifi", "appointment", "invoice".
* ``hybrid``: ``tfidf`` plus a small bonus per matched keyword, so a rare but decisive
  word ("refund") is not outvoted by a long example that merely shares filler.
* ``logreg`` (the default, chosen by measurement, see docs/agents.md): multinomial
  logistic regression over the same TF-IDF features plus one feature per matched
  keyword list, trained on the examples when the NLU is built (about 0.3 s, fully
  deterministic). It learns which features discriminate ("wrong" says little once
  "bill" is heard), where nearest-example matching weighs every shared gram alike.
  With sentence vectors it is mixed with their nearest example per intent (a softmax
  over each intent's best cosine): the regression weighs what the examples share, the
  nearest example keeps a phrasing only one example has (chosen on the dev sets).

Before scoring, entities are masked (``xday``, ``xtime``, ``xnum``, ``xname``,
``xservice``) so "book Tuesday at 3 pm" and "book Friday at 10 am" are one pattern.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

METHODS = ("keywords", "tfidf", "hybrid", "logreg")
# the score under which an utterance is "unknown", per method (benchmarks/agents_nlu.py)
THRESHOLDS = {"keywords": 0.25, "tfidf": 0.3, "hybrid": 0.3, "logreg": 0.1}
OUT_OF_SCOPE = "out_of_scope"  # an intent of examples that are none of ours
# masked texts -> (n, d) unit vectors: a sentence-embedding model's view of each text
Embedder = Callable[[list[str]], np.ndarray]
PLACEHOLDERS = {"DAY": "xday", "TIME": "xtime", "NUM": "xnum", "NAME": "xname",
                "SERVICE": "xservice"}


@dataclass(frozen=True, slots=True)
class IntentSpec:
    name: str
    examples: tuple[str, ...]  # normalized and masked
    keywords: tuple[str, ...]  # normalized


def features(text: str) -> Counter[str]:
    """Word 1-2 grams and within-word character 3-5 grams of a masked, normalized text."""
    words = text.split()
    feats: Counter[str] = Counter()
    padded = ["<s>", *words, "</s>"]
    for w in words:
        feats["w:" + w] += 1
        if w in PLACEHOLDERS.values():
            continue
        marked = f"#{w}#"
        for n in (3, 4, 5):
            for i in range(len(marked) - n + 1):
                feats["c:" + marked[i : i + n]] += 1
    for a, b in itertools.pairwise(padded):
        feats[f"b:{a}_{b}"] += 2  # word order matters more than any one spelling
    return feats


def _has_phrase(text: str, phrase: str) -> bool:
    return re.search(r"(?<![a-z0-9])" + re.escape(phrase) + r"(?![a-z0-9])", text) is not None


class IntentClassifier:
    """Scores every intent for one masked, normalized utterance."""

    def __init__(self, intents: Sequence[IntentSpec], method: str = "logreg",
                 keyword_bonus: float = 0.06, iterations: int = 600, rate: float = 10.0,
                 l2: float = 1e-4, embed: Embedder | None = None,
                 embed_weight: float = 1.0, nearest: tuple[float, float] = (0.0, 1.0)
                 ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown intent method {method!r}; one of {', '.join(METHODS)}")
        self.method = method
        self.intents = list(intents)
        self.keyword_bonus = keyword_bonus
        self._embed = embed if method == "logreg" else None
        self._embed_weight = embed_weight
        # (share of the score, softmax temperature) of the nearest example's cosine
        self._nearest_share, self._nearest_temp = nearest
        self._example_vecs: np.ndarray | None = None
        self._labels: list[int] = []
        docs: list[Counter[str]] = []
        self._texts: list[str] = []
        for i, spec in enumerate(self.intents):
            for ex in spec.examples:
                docs.append(features(ex))
                self._texts.append(ex)
                self._labels.append(i)
        df: Counter[str] = Counter()
        for d in docs:
            df.update(d.keys())
        n = len(docs)
        self._vocab = {f: j for j, f in enumerate(sorted(df))}
        self._idf = np.array([math.log((1 + n) / (1 + df[f])) + 1.0 for f in sorted(df)],
                             dtype=np.float32)
        matrix = np.zeros((n, len(self._vocab)), dtype=np.float32)
        for row, d in enumerate(docs):
            for f, c in d.items():
                matrix[row, self._vocab[f]] = 1.0 + math.log(c)
        matrix *= self._idf
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self._matrix = matrix / np.maximum(norms, 1e-9)
        self._label_arr = np.array(self._labels)
        self._weights: np.ndarray | None = None
        self._bias: np.ndarray | None = None
        if method == "logreg":
            self._train(iterations, rate, l2)

    def _keyword_features(self, text: str) -> np.ndarray:
        kw = self.keyword_scores(text)
        return np.array([min(kw.get(s.name, 0.0), 3.0) / 3.0 for s in self.intents],
                        dtype=np.float32)

    def _train(self, iterations: int, rate: float, l2: float) -> None:
        """Full-batch gradient descent on softmax cross-entropy with L2; zero start, so
        the same examples always give the same model."""
        blocks = [self._matrix, np.stack([self._keyword_features(t) for t in self._texts])]
        if self._embed is not None:
            self._example_vecs = self._embed(self._texts)
            blocks.append(self._embed_weight * self._example_vecs)
        x = np.hstack(blocks)
        k = len(self.intents)
        onehot = np.eye(k, dtype=np.float32)[self._label_arr]
        # from a zero start every update of w is x.T @ (something), so w = x.T @ a and
        # x @ w = (x @ x.T) @ a: the same descent on an examples x examples Gram matrix,
        # about 20x less work than on examples x features (tens of thousands of grams)
        gram = x @ x.T
        a = np.zeros((len(x), k), dtype=np.float32)
        b = np.zeros(k, dtype=np.float32)
        for _ in range(iterations):
            z = gram @ a + b
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            grad = (p - onehot) / len(x)
            a -= rate * (grad + l2 * a)
            b -= rate * grad.sum(axis=0)
        self._weights, self._bias = x.T @ a, b

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(len(self._vocab), dtype=np.float32)
        for f, c in features(text).items():
            j = self._vocab.get(f)
            if j is not None:
                vec[j] = (1.0 + math.log(c)) * self._idf[j]
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else vec

    def _nearest(self, sentence: np.ndarray) -> np.ndarray:
        """A softmax over each intent's best cosine between ``sentence`` and its examples."""
        assert self._example_vecs is not None
        best = np.full(len(self.intents), -1.0, dtype=np.float32)
        np.maximum.at(best, self._label_arr, self._example_vecs @ sentence)
        return _softmax(best / self._nearest_temp)

    def keyword_scores(self, text: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for spec in self.intents:
            score = sum(len(k.split()) for k in spec.keywords if _has_phrase(text, k))
            if score:
                out[spec.name] = float(score)
        return out

    def scores(self, text: str) -> dict[str, float]:
        """Intent -> score in about [0, 1]: a probability (``logreg``), a cosine (+ bonus),
        or matched keyword words / 4 (``keywords``)."""
        if self.method == "keywords":
            return {k: min(1.0, v / 4) for k, v in self.keyword_scores(text).items()}
        vec = self._vector(text)
        if self._weights is not None and self._bias is not None:
            parts = [vec, self._keyword_features(text)]
            sentence = self._embed([text])[0] if self._embed is not None else None
            if sentence is not None:
                parts.append(self._embed_weight * sentence)
            p = _softmax(np.concatenate(parts) @ self._weights + self._bias)
            if sentence is not None and self._nearest_share > 0:
                p = (1 - self._nearest_share) * p + self._nearest_share * self._nearest(sentence)
            return {spec.name: float(p[i]) for i, spec in enumerate(self.intents)}
        sims = self._matrix @ vec
        best = np.full(len(self.intents), 0.0, dtype=np.float32)
        np.maximum.at(best, self._label_arr, sims)
        out = {spec.name: float(best[i]) for i, spec in enumerate(self.intents)}
        if self.method == "hybrid":
            for name, score in self.keyword_scores(text).items():
                out[name] += self.keyword_bonus * min(score, 3.0)
        return out


def _softmax(z: np.ndarray) -> np.ndarray:
    p = np.exp(z - z.max())
    return np.asarray(p / p.sum(), dtype=np.float32)


def build_specs(raw: Mapping[str, Mapping[str, Iterable[str]]],
                prepare: Callable[[str], str], normalize: Callable[[str], str]
                ) -> list[IntentSpec]:
    """IntentSpecs from the YAML mapping; ``prepare`` normalizes and masks an example."""
    specs: list[IntentSpec] = []
    for name, body in raw.items():
        examples = []
        for ex in body.get("examples", ()):
            for placeholder, token in PLACEHOLDERS.items():
                ex = re.sub(rf"\b{placeholder}\b", token, str(ex))
            examples.append(prepare(ex))
        keywords = tuple(normalize(str(k)) for k in body.get("keywords", ()))
        specs.append(IntentSpec(name, tuple(examples), keywords))
    return specs

