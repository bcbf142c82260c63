"""What counts as a secret, and what does not (a refused note can be said again; a
stored secret cannot be unsaid, so the rules err towards refusing)."""

from __future__ import annotations

import pytest

from memory.secrets import find_secret, redact

SECRETS = [
    ("my card is 4111 1111 1111 1111", "card number"),
    ("card number 4111-1111-1111-1111 expiring soon", "card number"),
    ("four one one one one one one one one one one one one one one one", "card number"),
    ("account 000123456789", "card number"),
    ("the wifi password is hunter2", "password"),
    ("my passcode was 1234", "password"),
    ("note that my PIN is 4321", "code"),
    ("the code is 9 8 7 6", "code"),
    ("the door code is four three two one", "code"),
    ("the verification code 554433", "code"),
    ("remember the door code is 1942", "code"),
    ("my social is 123-45-6789", "id number"),
    ("API key: sk-abc123", "credential"),
    ("token=abc", "credential"),
    ("my account number is 12345678", "account number"),
    # what whisper wrote for "the alarm code is four three two one" under 15 dB noise
    ("the alarm code is for 321", "code"),
    ("my gate code is to 1 2 3", "code"),
    ("the alarm code is 4321.", "code"),
]
PLAIN = [
    "Call Anna about the budget on Friday",
    "reset the password policy document",
    "the code review is on Friday",
    "the meeting is at 3 pm on March 3rd",
    "order 12 laptops and 3 monitors",
    "buy milk",
    "Ada Lovelace",
    "Tuesday December 1 at 3 PM",
    "the demo moved to 2027",
    "the code is for the team",
    "book a table for 3 people",
]


@pytest.mark.parametrize(("text", "kind"), SECRETS)
def test_secrets_are_found(text: str, kind: str) -> None:
    assert find_secret(text) == kind


@pytest.mark.parametrize("text", PLAIN)
def test_plain_text_is_not_a_secret(text: str) -> None:
    assert find_secret(text) is None


def test_redact_hides_digit_runs() -> None:
    assert redact("card 4111 1111 1111 1111 ok") == "card [redacted] ok"
    assert redact("at 3 pm") == "at 3 pm"
