"""The per-call turn-taking state machine and the end-of-turn heuristics.

States and the transitions allowed between them are declared once; the session moves
through ``TurnMachine.go`` and an undeclared move is a bug that raises at once instead of
leaving a call in a state nobody planned for.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable

from voice.errors import VoiceError


class TurnState(enum.Enum):
    IDLE = "idle"
    LISTENING = "listening"
    USER_SPEAKING = "user_speaking"
    THINKING = "thinking"
    AGENT_SPEAKING = "agent_speaking"


S = TurnState
TRANSITIONS: dict[TurnState, frozenset[TurnState]] = {
    S.IDLE: frozenset({S.THINKING, S.LISTENING}),
    S.LISTENING: frozenset({S.USER_SPEAKING, S.THINKING, S.IDLE}),
    # a turn ends in thought; noise without words goes back to listening; a barge-in that
    # proved to be a backchannel goes straight back to speaking
    S.USER_SPEAKING: frozenset({S.THINKING, S.LISTENING, S.AGENT_SPEAKING, S.IDLE}),
    S.THINKING: frozenset({S.AGENT_SPEAKING, S.LISTENING, S.USER_SPEAKING, S.IDLE}),
    S.AGENT_SPEAKING: frozenset({S.LISTENING, S.USER_SPEAKING, S.THINKING, S.IDLE}),
}


def _check_machine() -> None:
    missing = set(TurnState) - set(TRANSITIONS)
    if missing:
        raise RuntimeError(f"turn states without transitions: {missing}")
    reachable = {S.IDLE}
    frontier = [S.IDLE]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    if reachable != set(TurnState):
        raise RuntimeError(f"unreachable turn states: {set(TurnState) - reachable}")


_check_machine()


class TurnError(VoiceError):
    """An undeclared turn-state transition."""


class TurnMachine:
    def __init__(self, on_change: Callable[[TurnState, TurnState], None]) -> None:
        self.state = TurnState.IDLE
        self._on_change = on_change

    def go(self, new: TurnState) -> None:
        if new is self.state:
            return
        if new not in TRANSITIONS[self.state]:
            raise TurnError(f"turn state {self.state.value} -> {new.value} is not allowed")
        old, self.state = self.state, new
        self._on_change(old, new)


# Words after which a speaker is rarely done: a pause here is a breath, not a turn end.
_CONTINUATIONS = frozenset(
    {
        "and", "or", "but", "so", "because", "then", "the", "a", "an", "to", "of", "with", "for",
        "my", "our", "your", "their", "his", "her", "its", "um", "uh", "er", "like", "if", "when",
        "that", "which", "who", "whose", "is", "are", "was", "were", "i'm", "i'd", "i'll", "i've",
        "at", "in", "on", "from", "by", "about", "into", "than", "as", "also", "plus",
    }
)
# ... except where "in" or "on" is a verb's particle, not a preposition waiting for its
# noun: "I can't log in.", "It won't turn on.", "Agent logged in."
_PARTICLE_VERBS = frozenset(
    {
        "log", "logs", "logged", "logging", "sign", "signs", "signed", "signing", "check",
        "checks", "checked", "checking", "turn", "turns", "turned", "turning", "switch",
        "switched", "plug", "plugged", "come", "came", "hold", "hang",
    }
)
# ... and where a question strands its preposition: "Who am I speaking to?"
_QUESTION_WORDS = frozenset(
    {
        "what", "what's", "who", "who's", "whom", "which", "where", "where's", "when", "how",
        "is", "are", "was", "were", "do", "does", "did", "can", "could", "will", "would",
        "should", "have", "has",
    }
)
_PREPOSITIONS = frozenset({"to", "for", "from", "with", "about", "in", "on", "at", "of", "by"})
# digits are words: "The alarm code is 4321." ends on "4321", not on "is"; a hyphen joins
# ("Good-by." ends on "goodby", not on "by")
_WORD = re.compile(r"[a-z0-9']+(?:-[a-z0-9']+)*")


def sounds_finished(text: str, trust_punctuation: bool = True) -> bool:
    """Does this transcript read like a finished turn?

    Whisper punctuates: a turn that ends with ., ? or ! and not on a word that needs a
    continuation ("and", "the", "um") is taken as finished, so the session may end the turn
    after a short silence; anything else waits for the longer one. Moonshine ends a
    quarter of finished utterances with a comma or nothing ("No," "Pipe,": 74 % of 292
    finished prompts read finished by the punctuation, 95 % without it, for one more
    false cut-off in 66 pauses: docs/voice-models.md), so with ``trust_punctuation``
    False only the last word and an explicit trailing-off ("...", ":", "-") count.
    """
    stripped = text.strip()
    if not trust_punctuation:
        stripped = stripped.rstrip(",").rstrip()
        if stripped and stripped[-1] not in ".?!…;:-":
            stripped += "."
    if not stripped or stripped.endswith(("...", "…", ",", ";", ":", "-")):
        return False
    if stripped[-1] not in ".?!":
        return False
    words = _WORD.findall(stripped.lower())
    return bool(words) and (words[-1] not in _CONTINUATIONS or _ends_a_phrase(words, stripped))


def _ends_a_phrase(words: list[str], text: str) -> bool:
    """A last word that usually asks for more, here closing the sentence: a verb's
    particle ("logged in") or a question's stranded preposition ("speaking to?")."""
    last, before = words[-1], words[-2] if len(words) > 1 else ""
    if last in ("in", "on") and before in _PARTICLE_VERBS:
        return True
    return text.endswith("?") and last in _PREPOSITIONS and words[0] in _QUESTION_WORDS


def is_backchannel(text: str, words: set[str]) -> bool:
    """Only acknowledgement noises ("mm-hmm", "okay") or nothing at all."""
    tokens = [t.replace("'", "") for t in _WORD.findall(text.lower().replace("-", ""))]
    return all(t in words for t in tokens)
