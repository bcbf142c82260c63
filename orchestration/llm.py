"""Language-model steps: the configured OpenAI-compatible model, or a local method.

When ``VOXGATE_LLM_BASE_URL`` (and optionally ``VOXGATE_LLM_API_KEY``,
``VOXGATE_LLM_MODEL``) is set, text steps ask that model via ``POST
{base}/chat/completions``. Otherwise, or when the model fails, they run the
deterministic local method. Every result says which was used in ``method``
(``llm:<model>`` or ``local:<name>``), and a failed model call is noted, never hidden.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx


@dataclass(frozen=True, slots=True)
class LlmConfig:
    base_url: str
    model: str = "gpt-4o-mini"
    api_key: str = ""
    timeout_s: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LlmConfig | None:
        env = os.environ if env is None else env
        base = env.get("VOXGATE_LLM_BASE_URL", "").strip()
        if not base:
            return None
        return cls(base.rstrip("/"), env.get("VOXGATE_LLM_MODEL", "gpt-4o-mini"),
                   env.get("VOXGATE_LLM_API_KEY", ""))


@dataclass(frozen=True, slots=True)
class TextResult:
    text: str
    method: str
    note: str = ""


class TextModel:
    def __init__(self, config: LlmConfig | None = None,
                 client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._client = client

    async def run(
        self, task: str, prompt: str, local: Callable[[], str], instruction: str = ""
    ) -> TextResult:
        """Ask the configured model to do ``task``; else (or if it fails) call ``local()``."""
        if self.config is None:
            return TextResult(local(), f"local:{task}")
        try:
            text = await self._chat(instruction or task, prompt)
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            return TextResult(local(), f"local:{task}",
                              f"configured model failed ({type(exc).__name__}: {exc})")
        return TextResult(text, f"llm:{self.config.model}")

    async def _chat(self, task: str, prompt: str) -> str:
        assert self.config is not None
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        body = {
            "model": self.config.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": f"You perform one task: {task}. Answer with the "
                                              "result only."},
                {"role": "user", "content": prompt},
            ],
        }
        client = self._client or httpx.AsyncClient(timeout=self.config.timeout_s)
        try:
            resp = await client.post(f"{self.config.base_url}/chat/completions", json=body,
                                     headers=headers)
            resp.raise_for_status()
            content = resp.json()["choices"][0]["message"]["content"]
        finally:
            if self._client is None:
                await client.aclose()
        if not isinstance(content, str) or not content.strip():
            raise ValueError("empty completion")
        return content.strip()
