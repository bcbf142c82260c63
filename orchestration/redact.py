"""Data minimisation: mask personal data in text and in event payloads.

Everything that leaves a call's working memory (events, the event log, logs, traces, the
dashboard) goes through ``redact_data``. What is masked, and how:

| kind | example | becomes |
| --- | --- | --- |
| email address | jane.doe@example.com | ``[email]`` |
| payment card (13-19 digits passing the Luhn check) | 4111 1111 1111 1111 | ``[card ...1111]`` |
| national id: US SSN, UK NI number | 123-45-6789, AB 12 34 56 C | ``[national id]`` |
| IBAN | GB82 WEST 1234 5698 7654 32 | ``[iban]`` |
| phone number (7+ digits; + . - ( ) and spaces) | +1 (415) 555-0199 | ``[phone ...0199]`` |
| secrets after a cue word | "PIN 4821", "alarm code is for 321" | ``PIN [secret]`` |

Last digits are kept for cards and phones (as receipts and call centres do) so a person can
still tell two callers apart; nothing else survives. The patterns are deliberately greedy
on digits: a masked order number costs less than a leaked card number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# keys whose values are identifiers we need intact (ids, sids, types), never free text
SAFE_KEYS = frozenset(
    {"session_id", "call_sid", "stream_sid", "reply_id", "type", "state", "previous", "run_id",
     "workflow", "step", "tool", "agent", "intent", "protocol", "reason_code", "mark"}
)

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
_SSN = re.compile(r"\b\d{3}[- ]\d{2}[- ]\d{4}\b")
_NINO = re.compile(r"\b[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b", re.I)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
# a run of digits with the separators people and transcribers put between them
_DIGITS = re.compile(r"(?<![\w+])\+?\(?\d(?:[\d .()/-]{5,}\d)(?![\w])")
# the codes people read out ("the alarm code is ..."); memory/secrets.py uses them too
CODE_KINDS = ("security", "verification", "one time", "access", "login", "alarm", "door",
              "gate", "garage", "lock", "safe", "entry", "keypad")
CODE_KINDS_RE = "|".join(k.replace(" ", "[- ]") for k in CODE_KINDS)
# words a recogniser writes for spoken digits ("the alarm code is for 321")
DIGIT_HOMOPHONES = {"for": "4", "to": "2", "too": "2", "won": "1", "ate": "8", "oh": "0"}
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# a cue word, then either "is"/":"/"=" and any token, or directly a token with a digit
# ("PIN 4821"); "the Forgot password link" names no secret. A spoken code goes on as
# digits or number words, including the words heard for them.
_MORE_DIGITS = rf"(?:[ -](?:\d+|{'|'.join([*_NUMBER_WORDS, *DIGIT_HOMOPHONES])}))*"
_SECRET = re.compile(
    rf"\b(password|passcode|passphrase|pin|pin code|cvv|cvc|otp|(?:{CODE_KINDS_RE}) code)\b"
    rf"(?:(\s*(?:is|was|:|=)\s*)([^\s,.;!?]+{_MORE_DIGITS})"
    rf"|(\s+)(\S*\d[^\s,.;!?]*{_MORE_DIGITS}))",
    re.I,
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})")


def _digit_run(match: re.Match[str]) -> str:
    text = match.group(0)
    if _DATE.fullmatch(text.strip()):
        return text  # a date is not personal data on its own
    digits = re.sub(r"\D", "", text)
    if 13 <= len(digits) <= 19 and _luhn_ok(digits):
        return f"[card ...{digits[-4:]}]"
    if len(digits) >= 7:
        return f"[phone ...{digits[-4:]}]"
    return text


def redact_text(text: str) -> str:
    """Mask personal data and secrets in free text."""
    if not text:
        return text
    text = _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2) or m.group(4)}[secret]", text)
    text = _EMAIL.sub("[email]", text)
    text = _IBAN.sub("[iban]", text)
    text = _SSN.sub("[national id]", text)
    text = _NINO.sub("[national id]", text)
    return _DIGITS.sub(_digit_run, text)


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return redact_data(value)
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def redact_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A masked copy of an event payload (nested dicts and lists included)."""
    return {
        key: value if key in SAFE_KEYS and isinstance(value, str) else redact_value(value)
        for key, value in data.items()
    }


def contains_secret(text: str) -> bool:
    """Does the text hold something that must never be stored (a card, a code, ...)?"""
    return redact_text(text) != text
