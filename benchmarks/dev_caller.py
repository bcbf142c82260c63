"""The development caller (benchmarks/data/dev_caller/): phone calls to the demo agents in
the held-out caller's style (short scripted calls: bookings, support problems, ops status
questions, yes/no answers, names, dates and times, goodbyes), in other voices and other
words. It is the one to tune the turn-taking on; the held-out caller
(benchmarks/heldout_caller.py) then says whether what was tuned holds.

Voices, one per call, alternating; neither is a held-out caller voice:

* ``festival:kal_diphone`` (festvox-kallpc16k), a male US diphone voice;
* ``espeak:en-gb-x-rp@150``: espeak-ng's received pronunciation at 150 words a minute,
  one of the NLU development sets' voices.

The scripts were written for this set (2026-12-07), after the held-out caller's and without
reading its transcripts or figures; none is a sentence of an NLU or test list. The audio
goes through the same trimming and telephone line as the held-out caller's and is
committed.

    python -m benchmarks.dev_caller           # what the set holds
    python -m benchmarks.dev_caller --write   # regenerate (apt-get install festival
                                              #   festvox-kallpc16k espeak-ng)
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import heldout_caller
from benchmarks.heldout_caller import CallerTurn, Scripts

DATA = Path(__file__).parent / "data" / "dev_caller"
KAL, RP = "festival:kal_diphone", "espeak:en-gb-x-rp@150"

SCRIPTS: Scripts = (
    ("dentist", KAL, (
        "Hello, I'd like to make an appointment please.",
        "Next Tuesday, around eleven.",
        "Yes please.",
        "My name is Peter Lindqvist.",
        "Goodbye.")),
    ("no_dial_tone", RP, (
        "My phone line has no dial tone.",
        "Since yesterday evening.",
        "Yes, I unplugged it and plugged it back.",
        "Could you send an engineer?",
        "Thanks, that's all.")),
    ("ops_mail", KAL, (
        "Is the email service up?",
        "And what about billing?",
        "Any incidents this week?",
        "Okay, thanks, bye.")),
    ("reschedule", RP, (
        "I need to change my booking.",
        "Can we do Wednesday instead?",
        "Half past ten.",
        "That's right.",
        "Bye bye.")),
    ("locked_out", KAL, (
        "My account is locked.",
        "I typed the wrong password a few times.",
        "No.",
        "Yes, send me the reset link.",
        "Thank you.")),
    ("refund", RP, (
        "I was charged for something I didn't order.",
        "Last Friday.",
        "Forty two dollars.",
        "I'd like to talk to a person.")),
    ("ops_queue", KAL, (
        "How is the message queue doing?",
        "Is anything down at the moment?",
        "Great.",
        "Bye.")),
    ("evening_slot", RP, (
        "Hi, this is Maria Chen.",
        "Do you have anything on Saturday morning?",
        "Nine is fine.",
        "Yes.",
        "Cheers, goodbye.")),
    ("shopping_note", KAL, (
        "Can you take a note for me?",
        "Buy milk and batteries on the way home.",
        "Yes.",
        "That's it, thank you.")),
    ("cancel", RP, (
        "I want to cancel my appointment.",
        "The one on Thursday.",
        "Yes, cancel it.",
        "No thanks, goodbye.")),
)


def load(directory: Path = DATA) -> list[CallerTurn]:
    """Every turn of the set, in call order."""
    return heldout_caller.load(directory)


def calls(directory: Path = DATA) -> list[list[CallerTurn]]:
    """The set's calls, each its turns in order."""
    return heldout_caller.calls(directory)


if __name__ == "__main__":
    raise SystemExit(heldout_caller.main(directory=DATA, scripts=SCRIPTS))
