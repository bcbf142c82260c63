"""What counts as a secret, and what does not (a refused note can be said again; a
stored secret cannot be unsaid, so the rules err towards refusing)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from memory.redact import redact_text
from memory.secrets import find_secret

MEMORY = Path(__file__).resolve().parents[2] / "memory"

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
    ("it's four triple one, double one double one, one one one one, one one one one",
     "card number"),
    ("the number on the card is 4111 one one one one 1111 one one one one", "card number"),
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


def test_what_the_redactor_hides_as_a_secret_is_never_stored() -> None:
    for text in ("it's 4111 1111 1111 1111", "my social is one two three, four five, six "
                 "seven eight nine", "verification code double seven three two oh one",
                 "PIN 4821"):
        assert redact_text(text) != text
        assert find_secret(text) is not None, text


def test_memory_imports_nothing_of_the_project() -> None:
    """memory/ is below orchestration/, gateway/ and voice/: it imports none of them."""
    project = {"gateway", "orchestration", "voice", "web", "benchmarks", "tests"}
    for path in sorted(MEMORY.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in project, f"{path.name} imports {name}"
