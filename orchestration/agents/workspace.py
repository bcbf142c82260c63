"""Workspace assistance: meeting summaries and follow-ups from the caller's notes.

Notes themselves live in long-term memory (``memory.remember`` / ``memory.recall``, so
the router checks them for secrets and records the reads and writes). These tools turn
the notes a flow recalled into something to say: an extractive summary
(``orchestration.catalog.textops.summarize``, the same local method the catalog uses) and the
follow-ups, i.e. the notes that ask for an action.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from orchestration.catalog.textops import summarize
from orchestration.patterns.tools import ToolRegistry

_ACTION = re.compile(
    r"\b(call|phone|email|e-mail|send|ask|book|order|schedule|remind|renew|prepare|review|"
    r"follow up|check|buy|pay|sign|update|fix|contact|invite|share|finish|submit|need to|"
    r"should|must|todo|to do|action)\b", re.I)


class NotesIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    notes: list[str] = Field(default_factory=list)


class SummaryOut(BaseModel):
    count: int
    spoken: str


class FollowupsOut(BaseModel):
    count: int
    items: list[str]
    spoken: str


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def followups(notes: list[str]) -> list[str]:
    return [n.strip().rstrip(".") for n in notes if _ACTION.search(n)]


def register(registry: ToolRegistry) -> None:
    @registry.tool("notes.summary", permissions=["notes.read"], timeout=1)
    def summary(inp: NotesIn) -> SummaryOut:
        """An extractive summary of the notes, oldest first."""
        if not inp.notes:
            return SummaryOut(count=0, spoken="You have no notes to summarise yet.")
        text = " ".join(_sentence(n) for n in reversed(inp.notes))
        return SummaryOut(count=len(inp.notes),
                          spoken=f"From {len(inp.notes)} notes: {summarize(text, 3)}")

    @registry.tool("notes.followups", permissions=["notes.read"], timeout=1)
    def list_followups(inp: NotesIn) -> FollowupsOut:
        """The notes that ask for an action, numbered for reading out."""
        items = followups(list(reversed(inp.notes)))
        if not items:
            return FollowupsOut(count=0, items=[], spoken="I found no follow-ups in your notes.")
        said = " ".join(f"{i}: {_sentence(t)}" for i, t in enumerate(items, 1))
        noun = "follow-up" if len(items) == 1 else "follow-ups"
        return FollowupsOut(count=len(items), items=items,
                            spoken=f"You have {len(items)} {noun}. {said}")
