"""Where a benchmark's figures come from: the commit and the machine (used by ``run_all``
to stamp every result file, and by the benchmarks that record them themselves)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]


def git(*args: str) -> str:
    out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT, check=False)
    return out.stdout.strip()


def commit() -> str:
    """The short commit, ``+dirty`` when tracked files other than the results themselves
    (which every run rewrites) have uncommitted changes."""
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  ":(exclude)benchmarks/results")
    return head + ("+dirty" if changed else "")


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {"cpus": os.cpu_count(), "cpu": model, "mem_gb": round(mem_kb / 1024 ** 2, 1),
            "python": platform.python_version(),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}
