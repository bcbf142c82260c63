"""The held-out NLU sets (tests/agents/data/heldout/ and heldout2/): kept out of
everything the NLU is tuned with, and their accuracy, as written and as whisper heard
it over the telephone band from voices the tuning never heard, held at least at the
measured floor. The 95 % target is met on held-out 2 as written, not yet on the others
(docs/agents.md, "Held-out figures"): each of those is a strict expected failure, which
fails the day it passes. Fast: the committed TSVs, no models.

A failure here names how many utterances were wrong, never which: the held-out errors
must not become the next tuning target (the folder's README).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from benchmarks import nlu_sets
from gateway.evaluation.line import TODAY
from orchestration.agents.config import load
from orchestration.agents.nlu.parser import _HEARD_FOR_NO, LocalNlu
from orchestration.agents.nlu.text import BASE_FIXES, normalize

HELD_OUT = [s for s in nlu_sets.SETS if s.held_out]
# scored too, as the default recogniser (Moonshine base) hears them; not leak-checked (a
# short heard "Yes." equals an example without being a held-out sentence)
SCORED = HELD_OUT + [s for s in nlu_sets.MOONSHINE_SETS if s.held_out]
TARGET = 0.95


@pytest.fixture(scope="module")
def nlu() -> LocalNlu:
    config, _, intents = load()
    services = {n: list(s.aliases) for n, s in config.ops.services.items()}
    return LocalNlu(intents, config.nlu, services, today=lambda: TODAY)


def held_out_texts(heard: bool) -> Iterator[str]:
    for nlu_set in HELD_OUT:
        if nlu_set.name.endswith("_whisper") == heard:
            for row in nlu_sets.load(nlu_set):
                yield normalize(row.text)


def _contains(haystack: str, needle: str) -> bool:
    return re.search(rf"(?<![a-z0-9]){re.escape(needle)}(?![a-z0-9])", haystack) is not None


PAIRS = [(w, h) for w in HELD_OUT for h in SCORED
         if h.name in (w.name + "_whisper", w.name + "_moonshine")]


@pytest.mark.parametrize(("written_set", "heard_set"), PAIRS, ids=[h.name for _, h in PAIRS])
def test_held_out_sets_are_there_and_aligned(written_set: nlu_sets.NluSet,
                                             heard_set: nlu_sets.NluSet) -> None:
    written, heard = nlu_sets.load(written_set), nlu_sets.load(heard_set)
    assert len(written) >= 150 and len(written) == len(heard)
    assert [r.intent for r in written] == [r.intent for r in heard]
    assert {r.intent for r in written} >= {"book", "status_check", "goodbye", "escalate",
                                           "help", "repeat", "affirm", "deny", "tell_name"}
    assert all(r.kind.startswith(("espeak:", "flite:")) for r in heard)  # never piper joe


def test_both_held_out_sets_are_heard_by_both_recognisers() -> None:
    assert sorted(h.name for _, h in PAIRS) == ["heldout2_moonshine", "heldout2_whisper",
                                                "heldout_moonshine", "heldout_whisper"]


def test_no_held_out_utterance_is_in_the_examples_or_the_fix_tables() -> None:
    config, _, intents = load()
    examples = {normalize(str(e)) for body in intents.values() for e in body.get("examples", ())}
    keywords = {normalize(str(k)) for body in intents.values() for k in body.get("keywords", ())}
    fixes = {normalize(p) for table in (BASE_FIXES, config.nlu.asr_fixes)
             for pair in table.items() for p in pair} | set(_HEARD_FOR_NO)
    tuned_on = {normalize(r.text) for s in nlu_sets.SETS if not s.held_out and s.path.is_file()
                for r in nlu_sets.load(s)}
    training = examples | keywords | tuned_on
    # the written utterances may not be anywhere we tune; what whisper heard may be
    # "Yes." like an example, but no longer stretch of it, and nothing of it in a fix
    leaked = [text for text in held_out_texts(heard=False)
              if text in training | fixes
              or (len(text.split()) >= 3 and any(_contains(e, text) for e in examples | fixes))]
    leaked += [text for text in held_out_texts(heard=True)
               if text in fixes or (len(text.split()) >= 3 and (
                   text in training or any(_contains(e, text) for e in examples | fixes)))]
    assert not leaked, f"held-out utterances in the training data or fix tables: {leaked}"


# measured (docs/agents.md, python -m benchmarks.agents_nlu, 2026-12-07 after the Moonshine
# fixes and whisper for the words Moonshine dismissed): held-out 1 95.1 % written, 84.0 %
# heard by whisper, 86.7 % by Moonshine; held-out 2 97.5 % written, 88.3 % by whisper,
# 88.3 % by Moonshine; a drop under these is a regression
FLOOR = {"heldout": 0.95, "heldout_whisper": 0.83, "heldout2": 0.97, "heldout2_whisper": 0.88,
         "heldout_moonshine": 0.86, "heldout2_moonshine": 0.88}


def accuracy(nlu: LocalNlu, nlu_set: nlu_sets.NluSet) -> tuple[float, str]:
    rows = nlu_sets.load(nlu_set)
    found = float(nlu_sets.score(nlu, rows, errors=False)["intent_accuracy"])
    wrong = round((1 - found) * len(rows))
    return found, f"{nlu_set.name}: {found:.1%} ({wrong} of {len(rows)} wrong)"


@pytest.mark.parametrize("nlu_set", SCORED, ids=[s.name for s in SCORED])
def test_held_out_accuracy_holds_its_floor(nlu: LocalNlu, nlu_set: nlu_sets.NluSet) -> None:
    found, said = accuracy(nlu, nlu_set)
    assert found >= FLOOR[nlu_set.name], f"{said}, under the floor {FLOOR[nlu_set.name]:.0%}"


# the sets under the target: a strict expected failure each, removed the day it is met
UNMET = {"heldout_whisper": "84.0 %", "heldout2_whisper": "88.3 %",
         "heldout_moonshine": "86.7 %", "heldout2_moonshine": "88.3 %"}
TARGET_CASES = [
    pytest.param(s, id=s.name, marks=[pytest.mark.xfail(
        strict=True, reason=f"{s.name} is {UNMET[s.name]}, under the 95 % target "
                            "(docs/agents.md)")] if s.name in UNMET else [])
    for s in SCORED
]


@pytest.mark.parametrize("nlu_set", TARGET_CASES)
def test_held_out_accuracy_target(nlu: LocalNlu, nlu_set: nlu_sets.NluSet) -> None:
    found, said = accuracy(nlu, nlu_set)
    assert found >= TARGET, (f"{said}, under {TARGET:.0%}; improve the NLU on the "
                             "development set, not on this one")
