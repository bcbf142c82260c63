"""Numbers as people say them: the shared vocabulary, and spoken digit runs read as digits.

A caller reads a card, a phone number or a code digit by digit, and a recogniser writes
what it heard: "four one one one ...", "oh one nine nine", "double four", "triple one",
"one eight hundred", "four fifteen", or words mixed with digits ("415 five five five").
``read_digits`` rewrites every such run as the digits it stands for and keeps, for each
rewritten piece, where it came from, so the redactor (``memory/redact.py``) can look for
card and phone numbers in the digits and still mask exactly the words in the original.

This module owns the number words: memory's secret filter and the redactor read numbers
with them, and the NLU's normaliser (``orchestration/agents/nlu/text.py``) imports them.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

ONES = {
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19,
}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60,
        "seventy": 70, "eighty": 80, "ninety": 90}
# words a recogniser writes for spoken digits ("the alarm code is for 321"); too common in
# ordinary speech to count as digits anywhere but right after a code's cue word
DIGIT_HOMOPHONES = {"for": "4", "to": "2", "too": "2", "won": "1", "ate": "8", "oh": "0"}
# the codes people read out ("the alarm code is ...")
CODE_KINDS = ("security", "verification", "one time", "access", "login", "alarm", "door",
              "gate", "garage", "lock", "safe", "entry", "keypad")
CODE_KINDS_RE = "|".join(k.replace(" ", "[- ]") for k in CODE_KINDS)

_REPEATS = {"double": 2, "triple": 3}
_ZEROS = frozenset({"oh", "o"})  # zero only beside another digit: "oh, I see" is not one
_TOKEN = re.compile(r"[A-Za-z]+|\d+")
# what may stand between two digits of one run: spaces, or one comma, dash or full stop
_GAP = re.compile(r"\s*[,.-]?\s*")
_WORDS = frozenset({*ONES, *TENS, *_REPEATS, *_ZEROS})
_LETTERS = re.compile(r"[a-z]+")


@dataclass(frozen=True, slots=True)
class Reading:
    """``text`` with its spoken digit runs written as digits.

    ``pieces`` lists each rewritten piece as (start, end) in ``text`` and (start, end) in
    the original, in order; everything between pieces is the original, character for
    character.
    """

    original: str
    text: str
    pieces: tuple[tuple[int, int, int, int], ...] = ()

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Where ``text[start:end]`` (not empty) came from; a piece it cuts counts whole."""
        return self._original(start, last=False), self._original(end - 1, last=True)

    def _original(self, pos: int, last: bool) -> int:
        """The original index of ``text[pos]`` (``last``: the index just after it)."""
        i = bisect_right([p[0] for p in self.pieces], pos) - 1
        if i < 0:
            return pos + 1 if last else pos
        _, end, ostart, oend = self.pieces[i]
        if pos < end:
            return oend if last else ostart
        moved = oend + (pos - end)  # after a piece the text is the original again
        return moved + 1 if last else moved


@dataclass(frozen=True, slots=True)
class _Unit:
    start: int
    end: int
    digits: str
    word: bool  # said as a word (not written as digits)
    weak: bool = False  # "oh": a digit only beside another one


Token = tuple[int, int, str]  # start, end, lower-cased text


def _unit(text: str, tokens: list[Token], i: int) -> tuple[_Unit, int] | None:
    """The number at ``tokens[i]`` and how many tokens it takes."""
    start, end, word = tokens[i]
    if word.isdigit():
        return _Unit(start, end, word, word=False), 1
    if word in _ZEROS:
        return _Unit(start, end, "0", word=True, weak=True), 1
    if word not in ONES and word not in TENS and word not in _REPEATS:
        return None
    # the next word, when only a separator stands between ("twenty-one", "double four")
    nxt = tokens[i + 1] if _joined(text, tokens, i) else (0, 0, "")
    if word in _REPEATS:
        single = nxt[2] if len(nxt[2]) == 1 and nxt[2].isdigit() else _single_digit(nxt[2])
        return None if single is None else (
            _Unit(start, nxt[1], single * _REPEATS[word], word=True), 2)
    if word in TENS:
        ones = ONES.get(nxt[2], 0) if nxt[2] not in _ZEROS else 0
        if 0 < ones < 10:
            return _Unit(start, nxt[1], str(TENS[word] + ones), word=True), 2
        return _Unit(start, end, str(TENS[word]), word=True), 1
    if nxt[2] == "hundred":
        return _Unit(start, nxt[1], str(ONES[word] * 100), word=True), 2
    return _Unit(start, end, str(ONES[word]), word=True), 1


def _single_digit(word: str) -> str | None:
    if word in _ZEROS:
        return "0"
    value = ONES.get(word)
    return str(value) if value is not None and value < 10 else None


def _joined(text: str, tokens: list[Token], i: int) -> bool:
    """Do tokens i and i + 1 stand in one run (only a separator between them)?"""
    if i + 1 >= len(tokens):
        return False
    a, b = tokens[i][1], tokens[i + 1][0]
    return a < b and _GAP.fullmatch(text, a, b) is not None


def _runs(text: str) -> list[list[_Unit]]:
    tokens = [(m.start(), m.end(), m.group(0).lower()) for m in _TOKEN.finditer(text)]
    runs: list[list[_Unit]] = []
    run: list[_Unit] = []
    i = 0
    while i < len(tokens):
        found = _unit(text, tokens, i)
        if found is None:
            if run:
                runs.append(run)
                run = []
            i += 1
            continue
        unit, used = found
        if run and not _joined(text, tokens, i - 1):
            runs.append(run)
            run = []
        run.append(unit)
        i += used
    runs.append(run)
    # a run is rewritten only when a digit in it was said as a word; "oh" alone is no digit
    return [r for r in runs if any(u.word and not u.weak for u in r)]


def _gap_text(gap: str) -> str:
    """How a separator inside a run is written: the speaker's grouping survives."""
    if "-" in gap:
        return "-"
    return " " if "," in gap or "." in gap else ""


def read_digits(text: str) -> Reading:
    """``text`` with each spoken digit run written as digits ("four one one one" -> "4111",
    "oh one, double nine" -> "01 99"); other text is left exactly as it was."""
    if _WORDS.isdisjoint(_LETTERS.findall(text.lower())):
        return Reading(text, text)  # most text says no number: no need to read it
    out: list[str] = []
    pieces: list[tuple[int, int, int, int]] = []
    at = 0  # next original character not yet copied
    length = 0  # characters written so far
    for run in _runs(text):
        for k, unit in enumerate(run):
            if k == 0:
                out.append(text[at : unit.start])
                length += unit.start - at
            else:
                gap = _gap_text(text[run[k - 1].end : unit.start])
                pieces.append((length, length + len(gap), run[k - 1].end, unit.start))
                out.append(gap)
                length += len(gap)
            pieces.append((length, length + len(unit.digits), unit.start, unit.end))
            out.append(unit.digits)
            length += len(unit.digits)
            at = unit.end
    out.append(text[at:])
    return Reading(text, "".join(out), tuple(pieces))
