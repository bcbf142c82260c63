"""Running the front-end's JavaScript with node from the Python tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "web"


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise RuntimeError("node (Node.js >= 20) is needed for the front-end tests")
    return found


def run_node(
    *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node(), *args], cwd=WEB, input=stdin, capture_output=True, text=True, timeout=timeout,
        check=False,
    )
