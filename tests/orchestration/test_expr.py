"""The guard language: parsed once, evaluated safely, with exact error texts."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.expr import ExpressionError, evaluate, parse, resolve

CTX: dict[str, Any] = {
    "input": {"company": "Acme", "seats": 40, "tags": ["eu", "smb"]},
    "steps": {"score": {"fit": 72.5, "risk": 10}},
    "slots": {"date": "2026-12-01"},
    "signal": {"name": "dtmf", "data": {"digit": "1"}},
    "vars": {},
}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("steps.score.fit >= 70 and steps.score.risk < 30", True),
        ("steps.score.fit >= 70 and not steps.score.risk < 30", False),
        ("input.seats > 100 or 'eu' in input.tags", True),
        ("signal.data.digit in ['1', '2']", True),
        ("signal.data.digit not in ['1', '2']", False),
        ("slots.time == null", True),
        ("exists(slots.date) and len(input.tags) == 2", True),
        ("lower(input.company) == 'acme'", True),
        ("input.tags[1] == 'smb'", True),
        ("first(slots.none, input.company) == 'Acme'", True),
        ("join(input.tags, '+') == 'eu+smb'", True),
        ("input['company'] == \"Acme\"", True),
        ("slots.missing > 3", False),  # ordering against null is false, not an error
        ("input.company > 3", False),  # ... and so is ordering across types
        ("(input.seats - 1)", None),
    ],
)
def test_guards(text: str, value: Any) -> None:
    if value is None:
        with pytest.raises(ExpressionError):
            parse(text)
    else:
        assert evaluate(parse(text), CTX) is value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps.a ==", "unexpected end of expression, expected a value"),
        ("os.system('x')", "unknown name 'os'; names start with one of: caller, config, "
                           "input, item, run, signal, slots, spoken, steps, turn, vars"),
        ("__import__('os')", "unknown function '__import__'; known: len, exists, lower, first, "
                             "join"),
        ("input.a == 1 1", "unexpected '1' after a complete expression"),
        ("input.a ; 1", "unexpected character ';' at 8"),
        ("", "empty expression"),
    ],
)
def test_bad_expressions_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as err:
        parse(text)
    assert str(err.value) == message


def test_templates_resolve_dollar_expressions_only() -> None:
    template = {"name": "$input.company", "list": ["$input.seats", "plain"], "lit": "$$5",
                "fit": "$steps.score.fit >= 70"}
    assert resolve(template, CTX) == {"name": "Acme", "list": [40, "plain"], "lit": "$5",
                                      "fit": True}
