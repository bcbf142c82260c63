"""Short-term memory: one call's slots and recent turns. Gone when the call ends."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Turn:
    role: str  # "caller" | "agent"
    text: str
    intent: str = ""


@dataclass
class CallMemory:
    slots: dict[str, Any] = field(default_factory=dict)
    turns: deque[Turn] = field(default_factory=lambda: deque(maxlen=24))

    def heard(self, text: str, intent: str) -> None:
        self.turns.append(Turn("caller", text, intent))

    def said(self, text: str) -> None:
        self.turns.append(Turn("agent", text))

    def fill(self, values: Mapping[str, Any]) -> list[str]:
        """Set slots; the names whose value changed."""
        changed = [k for k, v in values.items() if v is not None and self.slots.get(k) != v]
        for k in changed:
            self.slots[k] = values[k]
        return changed

    def last_said(self) -> str:
        for turn in reversed(self.turns):
            if turn.role == "agent":
                return turn.text
        return ""

    def recent(self, n: int = 8) -> list[Turn]:
        return list(self.turns)[-n:]
