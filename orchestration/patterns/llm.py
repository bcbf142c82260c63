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
    # the model's token counts ({prompt,completion,total}_tokens) when it reported them
    usage: dict[str, int] | None = None


def read_usage(body: object) -> dict[str, int] | None:
    """``usage`` of an OpenAI-compatible completion: prompt, completion and total tokens
    (total computed when a server leaves it out); None when the server reports none."""
    usage = body.get("usage") if isinstance(body, Mapping) else None
    if not isinstance(usage, Mapping):
        return None
    out = {k: int(usage[k]) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
           if isinstance(usage.get(k), int) and not isinstance(usage.get(k), bool)
           and usage[k] >= 0}
    if "total_tokens" not in out and ("prompt_tokens" in out or "completion_tokens" in out):
        out["total_tokens"] = out.get("prompt_tokens", 0) + out.get("completion_tokens", 0)
    return out or None


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
            text, usage = await self._chat(instruction or task, prompt)
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            return TextResult(local(), f"local:{task}",
                              f"configured model failed ({type(exc).__name__}: {exc})")
        return TextResult(text, f"llm:{self.config.model}", usage=usage)

    async def _chat(self, task: str, prompt: str) -> tuple[str, dict[str, int] | None]:
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
            body = resp.json()
            content = body["choices"][0]["message"]["content"]
        finally:
            if self._client is None:
                await client.aclose()
        if not isinstance(content, str) or not content.strip():
            raise ValueError("empty completion")
        return content.strip(), read_usage(body)
