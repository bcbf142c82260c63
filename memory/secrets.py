"""What must never reach long-term memory: card numbers, passwords, codes, id numbers.

``find_secret(text)`` names the first kind of secret in a text, or None. It reads the
text the way the NLU does (number words become digits, so "four one one one ..." is a
card number too) and errs towards refusing: a note that is refused can be said again
without the secret; a stored secret cannot be unsaid.

Rules, each tested in tests/memory/test_secrets.py:

* a run of 12-19 digits (spaces or dashes between groups allowed) is a card or account
  number, Luhn-valid or not (a caller reading an account number is as sensitive);
* a US social security number shape (ddd-dd-dddd);
* a secret word (password, passcode, PIN, a code people read out -- security,
  verification, one-time, door, alarm ...: ``orchestration.redact.CODE_KINDS`` --, CVV,
  API key, token, secret, IBAN, sort code, routing / account number, social security)
  followed within four words by "is", "was", ":" / "=" or by a digit;
* a run of 4-8 digits right after "code", "pin" or "passcode" (optionally "is"/"was");
* "code is" then 3-8 digits where words a recogniser writes for digits count ("the
  alarm code is for 321": "for" is a misheard "four").
"""

from __future__ import annotations

import re

from orchestration.nlu_text import normalize
from orchestration.redact import CODE_KINDS_RE, DIGIT_HOMOPHONES

_SECRET_WORDS = (
    r"password|passwd|passcode|pass phrase|passphrase|pin(?: code| number)?|"
    rf"(?:{CODE_KINDS_RE}) code|otp|cvv|cvc|api key|access key|token|secret|"
    r"iban|sort code|routing number|account number|social security(?: number)?|ssn"
)
_NEAR_VALUE = re.compile(
    rf"\b(?P<kind>{_SECRET_WORDS})\b(?:\s+\S+){{0,4}}?\s*(?:\b(?:is|was|are|equals)\b|[:=])",
)
_NEAR_DIGIT = re.compile(rf"\b(?P<kind>{_SECRET_WORDS})\b(?:\s+\S+){{0,4}}?\s+\d")
_DIGIT_RUN = re.compile(r"(?<!\d)(?:\d[ -]?){11,18}\d(?!\d)")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")


def _kind(word: str) -> str:
    word = word.lower()
    if word.startswith("pass"):
        return "password"
    if word in ("iban", "sort code", "routing number", "account number"):
        return "account number"
    if word.startswith("social") or word == "ssn":
        return "id number"
    if word in ("api key", "access key", "token", "secret"):
        return "credential"
    return "code"


def find_secret(text: str) -> str | None:
    """The kind of secret ``text`` holds ("card number", "password", "code", ...), or None."""
    raw = text.lower()
    if _SSN.search(raw):
        return "id number"
    # digits as written, and digits as spoken ("four one one one" -> "4 1 1 1")
    for form in (raw, normalize(text)):
        if _DIGIT_RUN.search(form):
            return "card number"
    norm = normalize(text)
    for form in (raw, norm):
        for pattern in (_NEAR_VALUE, _NEAR_DIGIT):
            m = pattern.search(form)
            if m is not None:
                return _kind(m.group("kind"))
    # a bare "code" is a secret only with digits after it: "the code review" is not
    m = re.search(r"\b(?:code|pin|passcode)\s+(?:is\s+|was\s+)?(\d[\d ]{2,14}\d)\b", norm)
    if m is not None and 4 <= len(m.group(1).replace(" ", "")) <= 8:
        return "code"
    if _spoken_code(norm):
        return "code"
    return None


def _spoken_code(norm: str) -> bool:
    """"code is" and then 3-8 digits, counting the words heard for digits ("for 321")."""
    m = re.search(r"\b(?:code|pin|passcode)\s+(?:is|was|:)\s+(.*)", norm)
    if m is None:
        return False
    digits = ""
    for word in m.group(1).split():
        word = DIGIT_HOMOPHONES.get(word, word)
        if not word.isdigit():
            break
        digits += word
    return 3 <= len(digits) <= 8


def redact(text: str) -> str:
    """``text`` with digit runs of 4+ replaced by "[redacted]" (for logs and events)."""
    return re.sub(r"(?<!\d)(?:\d[ -]?){3,}\d(?!\d)", "[redacted]", text)
