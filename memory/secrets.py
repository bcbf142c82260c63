"""What must never reach long-term memory: card numbers, passwords, codes, id numbers.

``find_secret(text)`` names the first kind of secret in a text, or None. It reads
spoken digits as digits (``memory/spoken.py``: "four one one one ..." is a card number
too) and errs towards refusing: a note that is refused can be said again without the
secret; a stored secret cannot be unsaid.

Rules, each tested in tests/memory/test_secrets.py:

* a run of 12-19 digits (spaces or dashes between groups allowed) is a card or account
  number, Luhn-valid or not (a caller reading an account number is as sensitive);
* a US social security number shape (ddd-dd-dddd);
* a secret word (password, passcode, PIN, a code people read out -- security,
  verification, one-time, door, alarm ...: ``memory.spoken.CODE_KINDS`` --, CVV,
  API key, token, secret, IBAN, sort code, routing / account number, social security)
  followed within four words by "is", "was", ":" / "=" or by a digit;
* a run of 4-8 digits right after "code", "pin" or "passcode" (optionally "is"/"was");
* "code is" then 3-8 digits where words a recogniser writes for digits count ("the
  alarm code is for 321": "for" is a misheard "four");
* anything the redactor (``memory/redact.py``) masks as a card, a national id, an IBAN
  or a secret: what is never shown is never stored either.
"""

from __future__ import annotations

import re

from memory.redact import find_personal_data
from memory.spoken import CODE_KINDS_RE, DIGIT_HOMOPHONES, read_digits

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


# what the redactor's kinds are called here; emails and phone numbers are not secrets
_REDACTED_KINDS = {"card": "card number", "national id": "id number",
                   "iban": "account number", "secret": "code"}


def _normalize(text: str) -> str:
    """Lower case, spoken digits as digits, punctuation gone except inside numbers."""
    norm = read_digits(text).text.lower()
    return " ".join(re.findall(r"[a-z0-9]+(?:[:./-][0-9]+)*|[:=]", norm))


def find_secret(text: str) -> str | None:
    """The kind of secret ``text`` holds ("card number", "password", "code", ...), or None."""
    raw = text.lower()
    if _SSN.search(raw):
        return "id number"
    norm = _normalize(text)
    # digits as written, and digits as spoken ("four one one one" -> "4111")
    for form in (raw, norm):
        if _DIGIT_RUN.search(form):
            return "card number"
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
    for _, _, _, kind in find_personal_data(text):
        if kind in _REDACTED_KINDS:
            return _REDACTED_KINDS[kind]
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

