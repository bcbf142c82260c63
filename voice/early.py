"""Answering early: the agent starts on the speculative transcript while the turn's closing
silence is still being waited out, and its reply is heard only once the turn has ended.

A turn ends after ``end_silence_ms`` (320 ms) of silence when its transcript reads as a
finished sentence; the transcript is usually ready well before that. Once
``early_reply_ms`` (100 ms: as soon as it is ready) of silence has passed, such a
transcript goes to the agent as an *early turn* (``UserTurn.confirmed``, a future), and
the reply's first sentence is synthesised at once but held (``Reply.hold``): nothing is
sent, and no hang-up or transfer happens, until the turn ends with the same words. Then
the future is set True and the reply, ready, is sent at once: the agent's time and the
first sentence's synthesis are no longer in the caller's wait. A turn that does not read
finished ends at ``end_silence_max_ms`` whatever it says, and is given early as long
before that.

If the caller goes on instead (the pause was inside a sentence), presses a key, or the
turn ends with other words, the early reply is dropped unheard and the future is set
False. The agent puts back what the early turn did at its next input, and anything that
acts outside the call waited for the future and so never happened (for orchestration's
agents, ``orchestration.patterns.hold``). Only an agent that says it can
(``early_turns = True``) gets early turns, and only while nothing else is in flight: no
reply, no reply cut by the caller, no turn being merged or committed, no keys waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from voice.audio import ms_of
from voice.config import TurnConfig
from voice.listener import Listener
from voice.ports import Agent, AgentAction, UserTurn
from voice.replies import Reply


@dataclass(slots=True)
class Held:
    """An early reply, held until its turn ends."""

    reply: Reply
    turn: UserTurn
    started: float  # monotonic: when the agent got the turn

    def fits(self, text: str, index: int, current: Reply | None) -> Held | None:
        """This, if it answers the turn that ended: same words and index, and its reply
        is still the session's."""
        ok = self.turn.text == text and self.turn.index == index and current is self.reply
        return self if ok else None

    @property
    def confirmed(self) -> asyncio.Future[bool]:
        assert self.reply.hold is not None  # the same future as the turn's ``confirmed``
        return self.reply.hold


class EarlyTurns:
    """The session's one early reply at a time."""

    def __init__(self, config: TurnConfig, agent: Agent, emit: Callable[..., None],
                 start: Callable[[AsyncIterator[AgentAction], Reply], Reply],
                 stop: Callable[[Reply], None], idle: Callable[[], bool],
                 reply_id: Callable[[], str]) -> None:
        self.enabled = config.early_reply_ms > 0 and getattr(agent, "early_turns", False) is True
        self.agent = agent
        self.emit = emit
        self._start = start
        self._stop = stop
        self._idle = idle
        self._reply_id = reply_id
        self.held: Held | None = None

    def listen(self, listener: Listener, next_index: Callable[[], int]) -> None:
        """Take early turns from ``listener`` (``next_index``: the index the turn gets)."""
        listener.on_early = lambda text, silence_ms: self.offer(
            text, silence_ms, ms_of(listener.segmenter.utterance()), next_index())
        listener.on_resume = lambda: self.drop("the caller went on")

    def offer(self, text: str, silence_ms: int, audio_ms: int, index: int) -> None:
        """The listener has a finished-looking transcript ``silence_ms`` into a pause."""
        if not self.enabled or self.held is not None or not self._idle():
            return
        turn = UserTurn(text, audio_ms, index,
                        confirmed=asyncio.get_running_loop().create_future())
        reply = Reply(self._reply_id(), "turn", hold=turn.confirmed)
        self.held = Held(reply, turn, time.monotonic())
        self.emit("agent.early", reply_id=reply.id, text=text, turn=index,
                  silence_ms=silence_ms)
        self._start(self.agent.respond(turn), reply)

    def take(self) -> Held | None:
        """At the end of the turn: the early reply, if one is held (it is no longer)."""
        held, self.held = self.held, None
        return held

    def drop(self, why: str) -> None:
        """Stop the early reply held now, if any, unheard."""
        self.drop_held(why, self.take())

    def drop_held(self, why: str, held: Held | None) -> None:
        """Stop ``held`` unheard (unless it was confirmed); its agent is told the turn did
        not happen."""
        if held is None or held.confirmed.done():
            return
        held.confirmed.set_result(False)
        self._stop(held.reply)
        self.emit("agent.early_dropped", reply_id=held.reply.id, turn=held.turn.index,
                  why=why)

    @staticmethod
    def confirm(reply: Reply) -> None:
        """The turn ended with the early turn's words: let its reply be heard."""
        if reply.hold is not None and not reply.hold.done():
            reply.hold.set_result(True)
