"""The root exception of the memory subsystem."""

from __future__ import annotations


class MemoryStoreError(Exception):
    """Root of every error the memory subsystem raises on purpose (a store that cannot be
    opened, an optional model that is not installed, a secret refused)."""


class SecretRefused(MemoryStoreError):
    """A write that would store a secret (card number, password, code); nothing was stored."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"refused to store a {kind}")
        self.kind = kind
