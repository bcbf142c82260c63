"""Data minimisation: the one redactor for personal data in text.

Everything that leaves a call's working memory goes through ``redact_text``: event
payloads (``orchestration/log/redact.py`` walks them), log lines, the turns sent to a hosted
language model; and memory's secret filter (``memory/secrets.py``) refuses what it
masks as a card, an id or a secret. What is masked, and how:

| kind | example | becomes |
| --- | --- | --- |
| email address | jane.doe@example.com | ``[email]`` |
| payment card (13-19 digits passing the Luhn check) | 4111 1111 1111 1111 | ``[card ...1111]`` |
| national id: US SSN, UK NI number | 123-45-6789, AB 12 34 56 C | ``[national id]`` |
| IBAN | GB82 WEST 1234 5698 7654 32 | ``[iban]`` |
| phone number (7+ digits; + . - ( ) and spaces) | +1 (415) 555-0199 | ``[phone ...0199]`` |
| secrets after a cue word | "PIN 4821", "alarm code is for 321" | ``PIN [secret]`` |

Digits said as words count as digits ("four one one one ...", "oh one nine nine",
"double four": ``memory/spoken.py``): the patterns run over the text with those runs
written as digits, and a match masks the words it stands for. Words that are not masked
are left as the caller said them.

Last digits are kept for cards and phones (as receipts and call centres do) so a person can
still tell two callers apart; nothing else survives. The patterns are deliberately greedy
on digits: a masked order number costs less than a leaked card number.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from memory.spoken import CODE_KINDS_RE, DIGIT_HOMOPHONES, read_digits

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
_SSN = re.compile(r"\b\d{3}[- ]\d{2}[- ]\d{4}\b")
_NINO = re.compile(r"\b[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b", re.I)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
# a run of digits with the separators people and transcribers put between them
_DIGITS = re.compile(r"(?<![\w+])\+?\(?\d(?:[\d .()/-]{5,}\d)(?![\w])")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})")
# a cue word, then either "is"/":"/"=" and any token, or directly a token with a digit
# ("PIN 4821"); "the Forgot password link" names no secret. A spoken code goes on as
# digits (number words are digits already here) or as the words heard for digits.
_MORE_DIGITS = rf"(?:[ -](?:\d+|{'|'.join(DIGIT_HOMOPHONES)}))*"
_SECRET = re.compile(
    rf"\b(?:password|passcode|passphrase|pin|pin code|cvv|cvc|otp|(?:{CODE_KINDS_RE}) code)\b"
    rf"(?:\s*(?:is|was|:|=)\s*(?P<said>[^\s,.;!?]+{_MORE_DIGITS})"
    rf"|\s+(?P<bare>\S*\d[^\s,.;!?]*{_MORE_DIGITS}))",
    re.I,
)
# the filler a masked stretch becomes while later patterns look: matches none of them
_MASKED = "\x00"

Span = tuple[int, int, str, str]  # start, end, replacement, kind


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digit_run(match: re.Match[str]) -> tuple[str, str] | None:
    text = match.group(0)
    if _DATE.fullmatch(text.strip()):
        return None  # a date is not personal data on its own
    digits = re.sub(r"\D", "", text)
    if 13 <= len(digits) <= 19 and _luhn_ok(digits):
        return f"[card ...{digits[-4:]}]", "card"
    if len(digits) >= 7:
        return f"[phone ...{digits[-4:]}]", "phone"
    return None


def _secret(match: re.Match[str]) -> tuple[int, int, str, str]:
    group = "said" if match.group("said") is not None else "bare"
    return match.start(group), match.end(group), "[secret]", "secret"


def _whole(replacement: str, kind: str) -> Callable[[re.Match[str]], Span]:
    return lambda m: (m.start(), m.end(), replacement, kind)


def _digits(match: re.Match[str]) -> Span | None:
    found = _digit_run(match)
    return None if found is None else (match.start(), match.end(), *found)


# in this order: a later pattern never sees what an earlier one masked
_PASSES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], Span | None]], ...] = (
    (_SECRET, _secret),
    (_EMAIL, _whole("[email]", "email")),
    (_IBAN, _whole("[iban]", "iban")),
    (_SSN, _whole("[national id]", "national id")),
    (_NINO, _whole("[national id]", "national id")),
    (_DIGITS, _digits),
)


def _spans(text: str) -> list[Span]:
    """What to mask in ``text``: disjoint spans, in order."""
    spans: list[Span] = []
    work = text
    for pattern, found in _PASSES:
        if pattern.search(work) is None:
            continue  # the usual case, and a search costs a third of a finditer
        new = [s for s in map(found, pattern.finditer(work)) if s is not None]
        for start, end, _, _ in new:
            work = work[:start] + _MASKED * (end - start) + work[end:]
        spans += new
    return sorted(spans)


def find_personal_data(text: str) -> list[Span]:
    """Each stretch of ``text`` the redactor masks: (start, end, replacement, kind), where
    kind is email, card, phone, national id, iban or secret."""
    if not text:
        return []
    reading = read_digits(text)
    out: list[Span] = []
    for start, end, replacement, kind in _spans(reading.text):
        ostart, oend = reading.original_span(start, end)
        if out and ostart < out[-1][1]:  # two masks in one spoken number: mask it once
            prev = out.pop()
            out.append((prev[0], max(prev[1], oend), prev[2], prev[3]))
        else:
            out.append((ostart, oend, replacement, kind))
    return out


def redact_text(text: str) -> str:
    """Mask personal data and secrets in free text."""
    spans = find_personal_data(text)
    if not spans:
        return text
    parts: list[str] = []
    at = 0
    for start, end, replacement, _ in spans:
        parts += [text[at:start], replacement]
        at = end
    parts.append(text[at:])
    return "".join(parts)


def contains_secret(text: str) -> bool:
    """Does the text hold something that must never be stored (a card, a code, ...)?"""
    return bool(find_personal_data(text))
