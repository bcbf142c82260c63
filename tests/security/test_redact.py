"""Redaction of personal data in text and event payloads."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestration.redact import contains_secret, redact_data, redact_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("My card is 4111 1111 1111 1111, thanks.", "My card is [card ...1111], thanks."),
        ("card number 5500-0000-0000-0004", "card number [card ...0004]"),
        ("Call me back at +1 (415) 555-0199.", "Call me back at [phone ...0199]."),
        ("my number is 415.555.0199", "my number is [phone ...0199]"),
        ("write to jane.doe@example.com today", "write to [email] today"),
        ("SSN 123-45-6789", "SSN [national id]"),
        ("NI number AB 12 34 56 C", "NI number [national id]"),
        ("IBAN GB82 WEST 1234 5698 7654 32", "IBAN [iban]"),
        ("my password is hunter2.", "my password is [secret]."),
        ("The PIN is 4 8 2 1", "The PIN is [secret]"),
        ("verification code: 739201", "verification code: [secret]"),
        ("PIN 4821 please", "PIN [secret] please"),
        ("the alarm code is for 321", "the alarm code is [secret]"),
        ("gate code: four three two one.", "gate code: [secret]."),
    ],
)
def test_personal_data_is_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert contains_secret(text)


@pytest.mark.parametrize(
    "text",
    [
        "Book me for Tuesday at 3 p.m.",
        "I need 2 tickets for 5 people",
        "Order 12345 on 2024-05-01 at 3:30 PM",
        "Room 101, floor 3",
        "This conference is locked.",
        "Press 1 to record your unavailable message.",
        "on 12/25/2024",
        "Use the Forgot password link on the sign-in page.",
        "Reset your PIN in the app.",
    ],
)
def test_ordinary_speech_is_left_alone(text: str) -> None:
    assert redact_text(text) == text
    assert not contains_secret(text)


def test_event_payloads_are_masked_deeply_but_ids_stay() -> None:
    data = {
        "session_id": "abc123",
        "call_sid": "CA0123456789",
        "caller": "+14155550199",
        "text": "my email is bob@example.org",
        "slots": {"phone": "415 555 0199", "people": 2},
        "history": ["card 4111111111111111", "hello"],
    }
    masked = redact_data(data)
    assert masked["session_id"] == "abc123" and masked["call_sid"] == "CA0123456789"
    assert masked["caller"] == "[phone ...0199]"
    assert masked["text"] == "my email is [email]"
    assert masked["slots"] == {"phone": "[phone ...0199]", "people": 2}
    assert masked["history"] == ["card [card ...1111]", "hello"]


def luhn_complete(prefix: str) -> str:
    for check in "0123456789":
        digits = prefix + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError


@given(st.integers(min_value=12, max_value=18), st.randoms(use_true_random=False))
def test_any_valid_card_number_is_masked(length: int, rnd: random.Random) -> None:
    number = luhn_complete("4" + "".join(rnd.choice("0123456789") for _ in range(length - 1)))
    groups = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    for form in (number, groups, groups.replace(" ", "-")):
        masked = redact_text(f"it is {form} ok")
        assert number not in masked.replace(" ", "").replace("-", "")
        assert f"...{number[-4:]}]" in masked


@given(st.text(max_size=300))
def test_redaction_never_fails_and_is_idempotent(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once
