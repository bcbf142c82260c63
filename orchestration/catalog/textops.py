"""Deterministic local text methods: what a language-model step does when no model is
configured. They are simple on purpose (extractive summaries, keyword classification,
template drafting, glossary translation) so that every catalog workflow runs offline and
gives the same output for the same input, which tests can pin down.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-zA-Z][a-zA-Z'-]+")
_STOP = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is",
    "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "were", "will", "with",
    "we", "our", "you", "your", "they", "their", "not", "but", "can",
})


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def summarize(text: str, max_sentences: int = 3) -> str:
    """Extractive: keep the sentences whose content words are most frequent, in order."""
    sents = sentences(text)
    if len(sents) <= max_sentences:
        return " ".join(sents)
    freq = Counter(w for w in words(text) if w not in _STOP)
    scored = sorted(
        range(len(sents)),
        key=lambda i: (-sum(freq[w] for w in words(sents[i]) if w not in _STOP)
                       / (1 + len(words(sents[i]))) ** 0.5, i),
    )
    keep = sorted(scored[:max_sentences])
    return " ".join(sents[i] for i in keep)


def chunk(text: str, max_words: int = 60) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    for sent in sentences(text):
        if current and len(" ".join([*current, sent]).split()) > max_words:
            out.append(" ".join(current))
            current = []
        current.append(sent)
    if current:
        out.append(" ".join(current))
    return out


def classify(text: str, labels: Mapping[str, Sequence[str]], default: str) -> tuple[str, float]:
    """The label whose keywords occur most; confidence is its share of all hits."""
    found = set(words(text))
    joined = " ".join(words(text))
    hits = {
        label: sum(1 for k in keys if (k in joined if " " in k else k in found))
        for label, keys in labels.items()
    }
    total = sum(hits.values())
    if total == 0:
        return default, 0.0
    best = max(hits, key=lambda k: (hits[k], -list(labels).index(k)))
    return best, round(hits[best] / total, 3)


def outline(topic: str, sections: Sequence[str]) -> list[str]:
    return [f"{i + 1}. {s.format(topic=topic)}" for i, s in enumerate(sections)]


def draft(title: str, points: Mapping[str, str]) -> str:
    body = "\n\n".join(f"## {k}\n{v}" for k, v in points.items())
    return f"# {title}\n\n{body}\n"


def requirements(text: str) -> list[str]:
    return [s for s in sentences(text)
            if re.search(r"\b(must|shall|should|need|needs|require[sd]?)\b", s, re.I)]


def translate(text: str, dictionary: Mapping[str, str]) -> str:
    """Word-for-word through a dictionary, keeping case of the first letter and punctuation."""

    def one(m: re.Match[str]) -> str:
        word = m.group(0)
        out = dictionary.get(word.lower())
        if out is None:
            return word
        return out[:1].upper() + out[1:] if word[:1].isupper() else out

    return _WORD.sub(one, text)
