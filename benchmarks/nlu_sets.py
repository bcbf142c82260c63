"""The labelled NLU sets and how they are scored (benchmarks/agents_nlu.py and the tests).

Five sets, each as written and as whisper heard it over the telephone band:

* **tuning** (``intents.tsv``, ``intents_whisper.tsv``): the set the NLU was tuned on
  (examples, thresholds and fixes were chosen while looking at it), spoken by piper joe;
* **dev** (``dev.tsv``, ``dev_whisper.tsv``): written to improve the NLU without touching
  the held-out set; spoken by piper joe at other speeds and espeak-ng voices;
* **dev2** (``dev2.tsv``, ``dev2_whisper.tsv``): a second development set, written after
  the first had been fitted (99 % written), to choose the sentence features on; spoken
  by espeak-ng accents no other set uses and piper joe at 0.95x;
* **dev3** (``dev3.tsv``): a third development set, written once ``dev`` and ``dev2`` had
  been fitted, as callers talk on a phone (short answers, indirect requests, fillers);
  every third row of each intent is held back (``DEV3_HELD_BACK``): tune on the rest;
* **held-out** (``heldout/``, and ``heldout2/`` written after the first had been looked at
  4 times): never used for tuning (their READMEs); spoken by voices none of the others
  uses. Their errors are never printed, only their figures.

A row is ``intent, kind, text[, slots JSON]``; ``kind`` is ``clean``/``asr`` for the
tuning set, ``text`` for the others' written form and the voice for a heard form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestration.agents.nlu.parser import LocalNlu

DATA = Path(__file__).parents[1] / "tests" / "agents" / "data"
HELD_OUT = DATA / "heldout"
HELD_OUT2 = DATA / "heldout2"


@dataclass(frozen=True, slots=True)
class Row:
    intent: str
    kind: str
    text: str
    slots: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NluSet:
    name: str
    path: Path
    held_out: bool = False
    slots_from: Path | None = None  # a heard set without slot labels takes the written set's


SETS = (
    NluSet("tuning", DATA / "intents.tsv"),
    NluSet("tuning_whisper", DATA / "intents_whisper.tsv", slots_from=DATA / "intents.tsv"),
    NluSet("dev", DATA / "dev.tsv"),
    NluSet("dev_whisper", DATA / "dev_whisper.tsv"),
    NluSet("dev2", DATA / "dev2.tsv"),
    NluSet("dev2_whisper", DATA / "dev2_whisper.tsv"),
    # the same voices heard by whisper base instead of tiny.en: the recogniser's share
    NluSet("dev2_whisper_base", DATA / "dev2_whisper_base.tsv"),
    NluSet("dev3", DATA / "dev3.tsv"),
    NluSet("heldout", HELD_OUT / "heldout.tsv", held_out=True),
    NluSet("heldout_whisper", HELD_OUT / "heldout_whisper.tsv", held_out=True),
    NluSet("heldout2", HELD_OUT2 / "heldout2.tsv", held_out=True),
    NluSet("heldout2_whisper", HELD_OUT2 / "heldout2_whisper.tsv", held_out=True),
)
# the development sets as Moonshine base (the default recogniser) heard the same voices
# (python -m benchmarks.nlu_speech dev|dev2|dev3 --stt moonshine-base); dev3's held-back
# third (dev3_split) is held back here too. Kept out of SETS: the held-out leak test reads
# every SETS text as tuned on, and a short Moonshine transcript may equal a written
# held-out sentence without being one
MOONSHINE_SETS = (
    NluSet("dev_moonshine", DATA / "dev_whisper_moonshine-base.tsv"),
    NluSet("dev2_moonshine", DATA / "dev2_whisper_moonshine-base.tsv"),
    NluSet("dev3_moonshine", DATA / "dev3_whisper_moonshine-base.tsv"),
    # the held-out sets as the default recogniser hears them (made 2026-12-07 at looks 16
    # and 12, again at 17 and 13: docs/agents.md); figures only, like every held-out set
    NluSet("heldout_moonshine", HELD_OUT / "heldout_whisper_moonshine-base.tsv", held_out=True),
    NluSet("heldout2_moonshine", HELD_OUT2 / "heldout2_whisper_moonshine-base.tsv",
           held_out=True),
)


def dev3_split(rows: list[Row]) -> tuple[list[Row], list[Row]]:
    """``dev3`` as (tuned on, held back): the held-back rows are every third of each
    intent (positions 2, 5, 8, ...), whose errors are not read while tuning."""
    seen: dict[str, int] = {}
    tuned: list[Row] = []
    held_back: list[Row] = []
    for row in rows:
        k = seen[row.intent] = seen.get(row.intent, -1) + 1
        (held_back if k % 3 == 2 else tuned).append(row)
    return tuned, held_back


def read(path: Path, slots_from: Path | None = None) -> list[Row]:
    rows = []
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        p = line.split("\t")
        rows.append(Row(p[0], p[1], p[2], json.loads(p[3]) if len(p) > 3 else {}))
    if slots_from is not None:
        written = read(slots_from)
        if len(written) != len(rows):
            raise ValueError(f"{path.name} has {len(rows)} rows, {slots_from.name} "
                             f"{len(written)}: regenerate it")
        rows = [Row(r.intent, r.kind, r.text, w.slots) for r, w in zip(rows, written, strict=True)]
    return rows


def load(nlu_set: NluSet) -> list[Row]:
    return read(nlu_set.path, nlu_set.slots_from)


def score(nlu: LocalNlu, rows: list[Row], errors: bool = True) -> dict[str, Any]:
    """Intent accuracy and slot accuracy (each labelled slot value right) of ``rows``."""
    right = slot_right = slot_total = 0
    wrong: list[list[str]] = []
    for row in rows:
        result = nlu.parse(row.text)
        if result.intent == row.intent:
            right += 1
        elif errors:
            wrong.append([row.intent, result.intent, row.text])
        for key, value in row.slots.items():
            slot_total += 1
            if result.slots.get(key) == value:
                slot_right += 1
            elif errors:
                wrong.append([f"{key}={value}", f"{key}={result.slots.get(key)}", row.text])
    out: dict[str, Any] = {
        "utterances": len(rows), "intent_accuracy": round(right / len(rows), 4),
        "slot_values": slot_total,
        "slot_accuracy": round(slot_right / slot_total, 4) if slot_total else None,
    }
    if errors:
        out["errors"] = wrong
    return out
