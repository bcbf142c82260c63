"""Orchestration's agents plugged into the voice core's agent port (``voice/ports.py``).

Voice and orchestration import nothing of each other, so each declares the few values that
cross a call's boundary (a call, a turn, a key; something to say, a hang-up, a transfer).
The gateway, which wires the two, translates them here one value at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from orchestration.agents import agent as brain
from voice import ports


def agent_call(call: ports.CallInfo) -> brain.CallInfo:
    return brain.CallInfo(call.session_id, call.protocol, call.caller, call.call_sid,
                          call.resume_from)


def agent_input(item: ports.AgentInput) -> brain.AgentInput:
    if isinstance(item, ports.Dtmf):
        return brain.Dtmf(item.digit)
    return brain.UserTurn(item.text, item.audio_ms, item.index, item.supersedes,
                          item.confirmed)


def voice_action(action: brain.AgentAction) -> ports.AgentAction:
    if isinstance(action, brain.Say):
        return ports.Say(action.text)
    if isinstance(action, brain.HangUp):
        return ports.HangUp(action.reason)
    return ports.Transfer(action.target, action.reason)


class PluggedAgent:
    """A voice ``Agent`` that is one of orchestration's agents underneath."""

    def __init__(self, agent: brain.Agent) -> None:
        self.agent = agent

    @property
    def name(self) -> str:
        # what viewers see: the supervisor says "supervisor", others their class name
        return str(getattr(self.agent, "name", None) or type(self.agent).__name__)

    @property
    def early_turns(self) -> bool:
        return getattr(self.agent, "early_turns", False) is True

    @property
    def stt_prompt(self) -> str | None:
        prompt = getattr(self.agent, "stt_prompt", None)
        return prompt if isinstance(prompt, str) else None

    def greeting(self) -> AsyncIterator[ports.AgentAction]:
        return _translated(self.agent.greeting())

    def respond(self, item: ports.AgentInput) -> AsyncIterator[ports.AgentAction]:
        return _translated(self.agent.respond(agent_input(item)))


async def _translated(actions: AsyncIterator[brain.AgentAction],
                      ) -> AsyncIterator[ports.AgentAction]:
    try:
        async for action in actions:
            yield voice_action(action)
    finally:
        # a reply cut short (barge-in, hang-up) closes the agent's stream too, at once
        close = getattr(actions, "aclose", None)
        if close is not None:
            await close()


def plug(factory: brain.AgentFactory) -> ports.AgentFactory:
    """The voice side's agent factory for orchestration's ``factory``."""
    def make(call: ports.CallInfo) -> ports.Agent:
        return PluggedAgent(factory(agent_call(call)))
    return make
