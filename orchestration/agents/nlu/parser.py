"""The local, offline NLU: one utterance -> intent, confidence and slots, in about a
millisecond, with no model download.

    nlu = LocalNlu.from_files(intents_yaml, NluConfig(), services={"payments": ["payment"]})
    result = nlu.parse("I'd like to book Tuesday at three p.m.", expected=("affirm", "deny"))
    result.intent, result.slots  # "book", {"date": "2026-12-01", "time": "15:00"}

``expected`` names the intents the dialogue is waiting for (a yes/no after a read-back);
they get a small bonus, as a person expects an answer to the question they asked. An
utterance whose best score stays under ``threshold`` is ``unknown``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from memory.errors import MemoryStoreError
from orchestration.agents.nlu.embed import SentenceFeatures, one_blas_thread
from orchestration.agents.nlu.embed import shared as shared_features
from orchestration.agents.nlu.intent import (
    METHODS,
    OUT_OF_SCOPE,
    THRESHOLDS,
    IntentClassifier,
    build_specs,
)
from orchestration.agents.nlu.slots import (
    MONTHS,
    find_service,
    is_particle,
    month_of,
    parse_date,
    parse_name,
    parse_note,
    parse_number,
    parse_time,
    weekday_of,
)
from orchestration.agents.nlu.text import Respeller, normalize
from orchestration.errors import OrchestrationError
from orchestration.workflow.loader import _Loader as YamlLoader

UNKNOWN = "unknown"


class NluError(OrchestrationError):
    """The NLU's configuration (intents file, method) is unusable."""


class NluConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: str = Field("local", pattern="^(local|llm)$")
    method: str = "logreg"
    # best score under this is "unknown"; None: the method's measured default
    threshold: float | None = Field(None, ge=0, le=2)
    expected_bonus: float = Field(0.08, ge=0, le=1)
    keyword_bonus: float = Field(0.06, ge=0, le=1)
    asr_fixes: dict[str, str] = Field(default_factory=dict)
    # all-MiniLM-L6-v2 sentence vectors as features beside the n-grams (logreg only;
    # orchestration/agents/nlu/embed.py); the weight of that block, chosen on the dev sets
    embeddings: bool = True
    embedding_weight: float = Field(1.0, gt=0, le=5)
    # the share of an intent's score given by its nearest example's sentence vector (a
    # softmax over each intent's best cosine at this temperature), chosen on the dev sets
    nearest_share: float = Field(0.3, ge=0, le=1)
    nearest_temperature: float = Field(0.03, gt=0, le=1)


@dataclass(frozen=True, slots=True)
class NluResult:
    text: str
    normalized: str
    intent: str
    confidence: float
    slots: Mapping[str, Any] = field(default_factory=dict)
    ranking: tuple[tuple[str, float], ...] = ()

    def to_event(self) -> dict[str, Any]:
        """For ``nlu.result``: never the raw text (it may hold a secret); the intent,
        the top alternatives and slot names with values that are not free text."""
        slots = {k: v for k, v in self.slots.items() if k != "note"}
        return {"intent": self.intent, "confidence": round(self.confidence, 3),
                "slots": slots, "ranking": [[n, round(s, 3)] for n, s in self.ranking]}


_TIME_MASK = re.compile(
    r"\b(?:\d{1,2}(?::\d{2}| \d{2})? (?:am|pm)|\d{1,2}:\d{2}|noon|midday|midnight|"
    r"(?:half|quarter) (?:past|to) \d{1,2}|\d{1,2} oclock)\b"
)
_DAY_MASK = re.compile(r"\b(?:day after tomorrow|tomorrow|today|tonight|next week)\b")


def _is_day_word(w: str) -> bool:
    if weekday_of(w) is not None or (month_of(w) is not None and w != "may"):
        return True
    return re.fullmatch(r"\d+(?:st|nd|rd|th)|\d+/\d+", w) is not None


@functools.lru_cache(maxsize=16)
def _normalized_aliases(services: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, str]:
    return {normalize(a): n for n, al in services for a in [n, *al]}


def _mask_name(norm: str, name: str | None) -> str:
    return re.sub(r"\b" + re.escape(name.lower()) + r"\b", "xname", norm) if name else norm


def mask(norm: str, services: Mapping[str, Iterable[str]], name: str | None) -> str:
    """Entities -> placeholders, so examples generalise over values."""
    text = _TIME_MASK.sub("xtime", norm)
    text = _DAY_MASK.sub("xday", text)
    text = _mask_name(text, name)
    words = text.split()
    aliases = _normalized_aliases(tuple((n, tuple(al)) for n, al in services.items()))
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        # the longest alias first: "gate we are" (a heard "gateway"), "vox gate", "web"
        span = next((k for k in (3, 2) if " ".join(words[i:i + k]) in aliases
                     and i + k <= len(words)), 0)
        if span:
            out.append("xservice")
            i += span
            continue
        if w in aliases and not is_particle(words, i):
            out.append("xservice")
        elif _is_day_word(w):
            out.append("xday")
        elif w.isdigit():
            out.append("xnum")
        else:
            out.append(w)
        i += 1
    return " ".join(out)


# what a recogniser writes for a short, quick "No." (whisper tiny hears "Now." at 1.15x
# speed); read this way only when the agent has just asked a yes/no question
_HEARD_FOR_NO = frozenset({"now", "know", "noh"})


def _short_answer(norm: str) -> str:
    words = norm.split()
    if 0 < len(words) <= 3 and words[0] in _HEARD_FOR_NO:
        return " ".join(["no", *words[1:]])
    return norm


# intents that name no task; a day *and* a time said with one of them ("Talk to me on
# Monday at 9am": whisper's "Book me" in noise) is a booking, which the caller then
# confirms, where a wrong "escalate" would transfer the call
_NO_TASK = frozenset({"help", "escalate", "repeat", OUT_OF_SCOPE})
_SCHEDULING = ("book", "reschedule")


def _day_and_time_mean_scheduling(ranking: tuple[tuple[str, float], ...],
                                  slots: Mapping[str, Any],
                                  threshold: float) -> tuple[tuple[str, float], ...]:
    if not ranking or ranking[0][0] not in _NO_TASK or "date" not in slots \
            or "time" not in slots:
        return ranking
    for i, (name, score) in enumerate(ranking):
        if name in _SCHEDULING:
            return ((name, max(score, threshold)), *ranking[:i], *ranking[i + 1:])
    return ranking


# a request that opens with a note command is a note whatever it is about: "Can you note
# that the printer is broken?" is not a support call, "Take a note: book the venue" not a
# booking (the note's words would otherwise outvote the command)
_NOTE_COMMAND = re.compile(
    r"^(?:(?:ok|right|so|and|also|please|hi|hello|yes|yeah|can you|could you|would you|"
    r"will you|i want you to|i need you to|i would like you to)\s+)*"
    r"(?:(?:take|make|add|write|jot|save|put)(?: down)?(?: a| an| this| that)?"
    r"(?: quick| new)? note|note (?:that|down|this)|(?:write|jot) (?:this |that )?down|"
    r"remember that|remind me to)\b"
)
_NOTE = "note_add"


def _note_command_means_note(ranking: tuple[tuple[str, float], ...],
                             scores: Mapping[str, float], norm: str,
                             threshold: float) -> tuple[tuple[str, float], ...]:
    if not ranking or ranking[0][0] == _NOTE or _NOTE not in scores \
            or _NOTE_COMMAND.match(norm) is None:
        return ranking
    rest = tuple(r for r in ranking if r[0] != _NOTE)
    return ((_NOTE, max(scores[_NOTE], threshold)), *rest)[:3]


class LocalNlu:
    def __init__(
        self,
        intents: Mapping[str, Mapping[str, Any]],
        config: NluConfig | None = None,
        services: Mapping[str, Iterable[str]] | None = None,
        today: Callable[[], date] = date.today,
    ) -> None:
        self.config = config or NluConfig()
        if self.config.method not in METHODS:
            raise NluError(f"nlu.method {self.config.method!r} is not one of {METHODS}")
        if not intents:
            raise NluError("no intents configured")
        self.services = {k: list(v) for k, v in (services or {}).items()}
        self.today = today
        specs = build_specs(intents, self._prepare, self._norm)
        vocab = {w for s in specs for text in (*s.examples, *s.keywords) for w in text.split()}
        vocab |= {w for n, al in self.services.items() for a in [n, *al] for w in a.split()}
        self.respell = Respeller(w for w in vocab if not w.startswith("x"))
        with one_blas_thread():
            self.classifier = IntentClassifier(
                specs, self.config.method, self.config.keyword_bonus, embed=self._embedder(),
                embed_weight=self.config.embedding_weight,
                nearest=(self.config.nearest_share, self.config.nearest_temperature))
        self.intents = [s.name for s in specs]
        self.threshold = (self.config.threshold if self.config.threshold is not None
                          else THRESHOLDS[self.config.method])

    @classmethod
    def from_files(cls, intents_file: Path, config: NluConfig | None = None,
                   services: Mapping[str, Iterable[str]] | None = None,
                   today: Callable[[], date] = date.today) -> LocalNlu:
        try:
            raw = yaml.load(intents_file.read_text(), Loader=YamlLoader)
        except (OSError, yaml.YAMLError) as exc:
            raise NluError(f"cannot read intents from {intents_file}: {exc}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("intents"), dict):
            raise NluError(f"{intents_file}: expected a mapping 'intents: {{name: ...}}'")
        return cls(raw["intents"], config, services, today)

    def _embedder(self) -> SentenceFeatures | None:
        if not self.config.embeddings or self.config.method != "logreg":
            return None
        features = shared_features()
        try:
            features.load()
        except MemoryStoreError as exc:
            raise NluError(f"nlu.embeddings needs the sentence model: {exc} (or set "
                           "nlu.embeddings: false)") from None
        return features

    def _norm(self, text: str) -> str:
        return normalize(text, self.config.asr_fixes)

    def _prepare(self, text: str) -> str:
        norm = self._norm(text)
        return mask(norm, self.services, parse_name(norm))

    def parse(self, text: str, expected: Iterable[str] = ()) -> NluResult:
        expected = tuple(expected)
        norm = self._norm(text)
        if "deny" in expected:
            norm = _short_answer(norm)
        slots = self.slots(text, norm)
        # the name is masked before respelling: "Karen Lopin" is not "karen login"
        masked = mask(self.respell(_mask_name(norm, slots.get("name"))), self.services, None)
        with one_blas_thread():
            scores = self.classifier.scores(masked)
        for name in expected:
            if name in scores:
                scores[name] += self.config.expected_bonus
        ranking = tuple(sorted(scores.items(), key=lambda kv: -kv[1])[:3])
        ranking = _day_and_time_mean_scheduling(ranking, slots, self.threshold)
        ranking = _note_command_means_note(ranking, scores, norm, self.threshold)
        if (not ranking or ranking[0][1] < self.threshold or not norm
                or ranking[0][0] == OUT_OF_SCOPE):
            intent, confidence = UNKNOWN, ranking[0][1] if ranking else 0.0
        else:
            intent, confidence = ranking[0]
        return NluResult(text, norm, intent, confidence, slots, ranking)

    def slots(self, text: str, norm: str | None = None) -> dict[str, Any]:
        norm = self._norm(text) if norm is None else norm
        found: dict[str, Any] = {}
        day = parse_date(norm, self.today())
        if day is not None:
            found["date"] = day.isoformat()
        when = parse_time(norm)
        if when is not None:
            found["time"] = when
        name = parse_name(norm, text)
        if name is not None:
            found["name"] = name
        named = _mask_name(norm, found.get("name"))  # a name names no service
        service = find_service(named, self.services) if self.services else None
        if service is not None:
            found["service"] = service
        number = parse_number(norm)
        if number is not None and "time" not in found and "date" not in found:
            found["number"] = number
        note = parse_note(text)
        if note is not None:
            found["note"] = note
        return found


__all__ = ["MONTHS", "UNKNOWN", "LocalNlu", "NluConfig", "NluError", "NluResult", "mask"]
