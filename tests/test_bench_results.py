"""``make bench`` stamps each result file with where its figures come from, and every
result file the README names is committed."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from benchmarks.run_all import stamp

ROOT = Path(__file__).parents[1]


def test_a_fresh_result_is_stamped_with_commit_machine_date_and_command(tmp_path: Path) -> None:
    result = tmp_path / "x.json"
    result.write_text(json.dumps({"figure": 1.5, "commit": "theirs"}))
    stamp(result, ["x", "--quick"])
    data = json.loads(result.read_text())
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, cwd=ROOT, check=True).stdout.strip()
    assert data["provenance"]["commit"].removesuffix("+dirty") == head
    assert data["provenance"]["command"] == "python -m benchmarks.x --quick"
    assert data["provenance"]["machine"]["cpus"] >= 1 and data["provenance"]["date"]
    assert data["figure"] == 1.5 and data["commit"] == "theirs"  # its own fields kept


def test_every_result_file_the_readme_names_is_committed() -> None:
    named = set(re.findall(r"benchmarks/results/[\w.-]+\.json", (ROOT / "README.md").read_text()))
    assert named, "the README names no result file"
    tracked = subprocess.run(["git", "ls-files", "benchmarks/results"], capture_output=True,
                             text=True, cwd=ROOT, check=True).stdout.split()
    assert named <= set(tracked), sorted(named - set(tracked))


def test_make_bench_runs_the_benchmarks_not_their_helpers() -> None:
    from benchmarks.run_all import discover

    names = discover()
    assert {"call_latency", "stt_tts", "soak", "orchestration_log"} <= set(names)
    assert not {"browser", "phone_line", "nlu_sets", "log_backends", "run_all",
                "heldout_caller", "dev_caller"} & set(names)
    # the one-caller and load benchmarks also run on the held-out caller (issue 14), the
    # one-caller one on the development caller too
    assert {"call_latency_heldout", "load_ramp_heldout", "stt_engines", "call_latency_dev",
            "stt_short_answers"} <= set(names)
