"""Redaction of personal data in text and event payloads, written or spoken."""

from __future__ import annotations

import random

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from memory.redact import contains_secret, find_personal_data, redact_text
from orchestration.log.events import EventBus
from orchestration.log.redact import redact_data


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
        # digits said as words, as a recogniser writes them
        ("my card is four one one one one one one one one one one one one one one one",
         "my card is [card ...1111]"),
        ("it's four one one one, one one one one, one one one one, one one one one.",
         "it's [card ...1111]."),
        ("card four triple one, double one double one, 1111 one one one one please",
         "card [card ...1111] please"),
        ("call me on five five five, oh one nine nine, thanks",
         "call me on [phone ...0199], thanks"),
        ("my number is 415 five five five 0199", "my number is [phone ...0199]"),
        ("One eight hundred, five five five, oh one ninety nine.", "[phone ...0199]."),
        ("my social is one two three, four five, six seven eight nine",
         "my social is [national id]"),
        ("The PIN is four eight two one", "The PIN is [secret]"),
        ("verification code double seven three two oh one", "verification code [secret]"),
        ("my gate code is to one two three", "my gate code is [secret]"),
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
        "I need two tickets for five people at three thirty",
        "Oh, one more thing: my flight is at four fifteen.",
        "Room one oh one, floor three",
        "in twenty twenty four we had nineteen calls",
        "double check the triple room",
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


def test_a_payload_that_holds_itself_is_cut_not_fatal() -> None:
    # a tool result or slot dict that refers to itself made redact_data recurse until
    # RecursionError inside EventBus.emit, failing the step that emitted it
    looped: dict[str, object] = {"note": "call me on 415 555 0199"}
    looped["self"] = looped
    listed: list[object] = ["card 4111111111111111"]
    listed.append(listed)
    deep: dict[str, object] = {}
    node = deep
    for _ in range(500):
        node["next"] = node = {}
    shared = {"phone": "415 555 0199"}
    bus = EventBus(redactor=redact_data)
    event = bus.emit("s1", "tool.succeeded", {"result": looped, "items": listed, "deep": deep,
                                              "a": shared, "b": shared})
    assert event.data["result"] == {"note": "call me on [phone ...0199]", "self": "<cycle>"}
    assert event.data["items"] == ["card [card ...1111]", "<cycle>"]
    assert "<too deep>" in str(event.data["deep"])
    # the same dict twice, side by side, is not a cycle
    assert event.data["a"] == event.data["b"] == {"phone": "[phone ...0199]"}


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


def test_spoken_digits_are_masked_on_the_event_bus() -> None:
    bus = EventBus(redactor=redact_data)
    event = bus.emit("s1", "stt.final", {
        "text": "my card is four one one one one one one one one one one one one one one one",
        "session_id": "s1"})
    assert event.data == {"text": "my card is [card ...1111]", "session_id": "s1"}


ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
         "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def say(digits: str, data: st.DataObject) -> list[tuple[str, bool]]:
    """The ways a person says ``digits``: (words, said as a word) for each unit."""
    units: list[tuple[str, bool]] = []
    i = 0
    while i < len(digits):
        d, rest = digits[i], digits[i:]
        ways = ["word", "written"]
        if rest[:2] == d * 2:
            ways.append("double")
        if rest[:3] == d * 3:
            ways.append("triple")
        if len(rest) >= 2 and d == "1":
            ways.append("teen")
        if len(rest) >= 2 and d >= "2" and rest[1] != "0":
            ways.append("tens")
        if len(rest) >= 3 and d != "0" and rest[1:3] == "00":
            ways.append("hundred")
        way = data.draw(st.sampled_from(ways))
        if way == "word":
            word = data.draw(st.sampled_from(["zero", "oh"])) if d == "0" else ONES[int(d)]
            units.append((word, word != "oh"))
            i += 1
        elif way == "written":
            units.append((d, False))
            i += 1
        elif way in ("double", "triple"):
            units.append((f"{way} {ONES[int(d)]}", True))
            i += 2 if way == "double" else 3
        elif way == "teen":
            units.append((TEENS[int(rest[1])], True))
            i += 2
        elif way == "tens":
            units.append((f"{TENS[int(d)]} {ONES[int(rest[1])]}", True))
            i += 2
        else:
            units.append((f"{ONES[int(d)]} hundred", True))
            i += 3
    return units


@given(st.data())
def test_any_digit_run_said_as_words_is_masked_like_the_digits(data: st.DataObject) -> None:
    length = data.draw(st.integers(min_value=4, max_value=19))
    digits = "".join(data.draw(st.lists(st.sampled_from("0123456789"), min_size=length,
                                        max_size=length)))
    if data.draw(st.booleans()) and length >= 13:
        digits = luhn_complete(digits[:-1])  # half of the long ones are card numbers
    cuts = sorted(data.draw(st.sets(st.integers(1, length - 1), max_size=4)))
    groups = [digits[a:b] for a, b in zip([0, *cuts], [*cuts, length], strict=True)]
    said = [say(g, data) for g in groups]
    assume(any(word for group in said for _, word in group))
    spoken = ", ".join(" ".join(u for u, _ in group) for group in said)
    written = " ".join(groups)
    prefix = data.draw(st.sampled_from(["", "the number is ", "it's ", "my PIN is ", "Call "]))
    suffix = data.draw(st.sampled_from(["", ".", ", thanks.", " please"]))
    as_said, as_written = prefix + spoken + suffix, prefix + written + suffix
    masks = [(r, k) for _, _, r, k in find_personal_data(as_written)]
    assert [(r, k) for _, _, r, k in find_personal_data(as_said)] == masks
    whole = [(len(prefix), len(prefix) + len(written))]
    if [(a, b) for a, b, _, _ in find_personal_data(as_written)] == whole:
        assert redact_text(as_said) == redact_text(as_written)
    if not masks:
        assert redact_text(as_said) == as_said  # words not masked stay as they were said
