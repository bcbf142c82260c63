"""The caller's silence after the agent finished: a reprompt after ``reprompt_after_s``,
``max_reprompts`` times, then a goodbye and a hang-up. Any speech resets the count."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from voice.config import TurnConfig


class SilenceWatch:
    def __init__(
        self,
        config: TurnConfig,
        spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]],
        listening: Callable[[], bool],
        emit: Callable[..., None],
        speak: Callable[[str, str | None], None],
    ) -> None:
        self.config = config
        self.spawn = spawn
        self.listening = listening  # still waiting for the caller when the time is up?
        self.emit = emit
        self.speak = speak  # (text, the reason to hang up after it, if any)
        self.reprompts = 0
        self._task: asyncio.Task[Any] | None = None

    def arm(self) -> None:
        self.cancel()
        self._task = self.spawn(self._wait(), "silence")

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def heard(self) -> None:
        """The caller spoke: the count starts again."""
        self.cancel()
        self.reprompts = 0

    async def _wait(self) -> None:
        config = self.config
        await asyncio.sleep(config.reprompt_after_s)
        if not self.listening():
            return
        self._task = None
        if self.reprompts < config.max_reprompts:
            self.reprompts += 1
            self.emit("silence.reprompt", count=self.reprompts)
            self.speak(config.reprompt_text, None)
        else:
            self.emit("silence.timeout", reprompts=self.reprompts)
            self.speak(config.goodbye_text, "silence")
