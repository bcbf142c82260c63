"""Run every benchmark in benchmarks/ and print one summary table (``make bench``).

    python -m benchmarks.run_all [--quick] [--only NAME ...] [--skip NAME ...]
                                 [--timeout SECONDS]

Each ``benchmarks/<name>.py`` (but this file) runs as ``python -m benchmarks.<name>`` in
its own process, one after the other (the machine has two cores: benchmarks running side
by side would measure each other). Its output goes to ``benchmarks/results/<name>.log``
and its figures to ``benchmarks/results/<name>.json``; the table shows the headline
figures of each from that JSON (a new benchmark's numeric top-level figures if it has no
entry in ``HEADLINES``). ``--quick`` passes smaller sizes to the benchmarks that take
them (minutes instead of most of an hour; the figures are noisier). Exit status 1 if a
benchmark failed, timed out or wrote no result.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.provenance import commit, machine

HERE = Path(__file__).parent
RESULTS = HERE / "results"

# benchmark -> [(label, dotted path in its JSON, unit)]
HEADLINES: dict[str, list[tuple[str, str, str]]] = {
    "call_latency": [
        ("response p50, twilio", "protocols.twilio.response_latency.p50_ms", "ms"),
        ("response p50, browser", "protocols.browser.response_latency.p50_ms", "ms"),
        ("barge-in clear p50, twilio", "protocols.twilio.barge_in_clear.p50_ms", "ms"),
        ("server CPU per call minute", "protocols.twilio.server_cpu_s_per_call_minute", "s"),
        ("memory per live call", "memory.mb_per_session", "MB"),
    ],
    "widget_transports": [
        ("widget click -> greeting, WebSocket", "click_to_greeting_audio.websocket.p50_ms", "ms"),
        ("widget click -> greeting, LiveKit", "click_to_greeting_audio.livekit.p50_ms", "ms"),
    ],
    "livekit_latency": [
        ("response p50 through LiveKit, UDP", "variants.udp.response_latency.p50_ms", "ms"),
        ("response p50 through LiveKit, TCP", "variants.tcp.response_latency.p50_ms", "ms"),
    ],
    "livekit_resume": [("LiveKit call heard again after SIGKILL", "new_agent_heard.median_ms",
                        "ms")],
    "resume_after_kill": [("phone call: SIGKILL -> agent speaking again",
                           "median_ms.agent_speaking_s", "ms"),
                          ("booked exactly once", "exactly_once", "")],
    "load_ramp": [("callers per node at p95 <= 1.5 s", "knee_callers", "")],
    "load_ramp_heldout": [("callers per node at p95 <= 1.5 s, held-out caller",
                           "knee_callers", "")],
    "call_latency_dev": [
        ("development caller: response p50", "protocols.twilio.response_latency.p50_ms", "ms"),
        ("development caller: response p95", "protocols.twilio.response_latency.p95_ms", "ms"),
    ],
    "comma_pauses": [("two-part answers cut at the comma (of 48)", "merged", ""),
                     ("early replies dropped unheard", "early_dropped", "")],
    "stt_short_answers": [("short turns heard right, cross-check skipped on usual answers",
                           "right.trusted", ""),
                          ("... cross-check on every short turn", "right.checked", "")],
    "call_latency_heldout": [
        ("held-out caller: response p50", "protocols.twilio.response_latency.p50_ms", "ms"),
        ("held-out caller: response p95", "protocols.twilio.response_latency.p95_ms", "ms"),
    ],
    "idle_streams": [("most streams asked", "headline.streams", ""),
                     ("silent streams open at the end", "headline.silent.open_at_end", ""),
                     ("silent: server CPU, one core", "headline.silent.server_cpu_pct", "%"),
                     ("held streams open at the end", "headline.held.open_at_end", ""),
                     ("held: memory per stream", "headline.held.server_rss_kb_per_stream",
                      "kB")],
    "stt_batch": [("whisper utterances/s, one at a time", "batch_1_utterances_per_s", "/s"),
                  ("whisper utterances/s, batches of 2", "batch_2_utterances_per_s", "/s")],
    "stt_tts": [
        ("TTS first audio median", "tts.first_audio_split_60_s.median", "s"),
        ("STT WER at 10 dB SNR", "decoding.temperature_0.snr10_wer", ""),
        ("whisper tiny.en load", "loads.tiny.en.load_s", "s"),
    ],
    "orchestration_log": [("appends, batches of 1000", "batch_1000_events_per_s", "/s"),
                          ("bus -> log", "attach_bus_events_per_s", "/s")],
    "orchestration_replay": [("replay", "rebuild_events_per_s", "events/s")],
    "orchestration_engine": [("engine per step, no I/O", "us_per_step_no_io", "us"),
                             ("engine per step, SQLite", "us_per_step_sqlite", "us")],
    "dashboard_stream": [("event -> dashboard p50", "event_to_dashboard_ms_p50", "ms"),
                         ("event -> dashboard p95", "event_to_dashboard_ms_p95", "ms"),
                         ("frames per second", "fps_median", "")],
    "bus_delay": [("cross-node delay p50, NATS", "nats.delay.p50_ms", "ms"),
                  ("cross-node delay p95, NATS", "nats.delay.p95_ms", "ms"),
                  ("NATS throughput", "nats.throughput.events_per_s", "/s"),
                  ("Redis pub/sub throughput", "redis.throughput.events_per_s", "/s"),
                  ("bridge emit -> other node p95", "bridge.p95_ms", "ms")],
    "dashboard_widget": [("capture -> server p50", "capture_to_server.p50_ms", "ms"),
                         ("server -> speaker p50", "server_to_speaker_p50_ms", "ms")],
    "agents_nlu": [("intent accuracy, logreg", "methods.logreg.accuracy", ""),
                   ("parse p50, logreg", "methods.logreg.parse_ms_p50", "ms")],
    "agents_tasks": [("task completion", "completion", ""),
                     ("orchestration per turn p50", "turn_ms_p50", "ms")],
    "soak": [("all checks held", "headline.ok", ""),
             ("no task/thread/fd leak", "headline.leak_free", ""),
             ("resident memory growth", "headline.rss_growth", ""),
             ("calls complete in the log", "headline.calls_complete", "")],
    "eval_suites": [("all gates held", "headline.ok", ""),
                    ("voice runs ok (all variants)", "headline.voice_runs_ok", ""),
                    ("voice WER", "headline.voice_wer", ""),
                    ("voice intent accuracy", "headline.voice_intent_accuracy", ""),
                    ("real-time turn p50", "headline.realtime_p50_ms", "ms"),
                    ("real-time turn p95", "headline.realtime_p95_ms", "ms"),
                    ("real-time server CPU per call", "headline.realtime_cpu_s_per_call", "s"),
                    ("workflow runs ok", "headline.workflow_runs_ok", "")],
}

# smaller sizes for --quick (arguments each benchmark documents in its docstring)
QUICK: dict[str, list[str]] = {
    "call_latency": ["--turns", "4"],
    "stt_tts": ["--runs", "1"],
    "orchestration_log": ["--events", "20000", "--runs", "2"],
    "bus_delay": ["--events", "1000", "--burst", "20000"],
    "orchestration_replay": ["--events", "50000", "--runs", "2"],
    "orchestration_engine": ["--runs", "3"],
    "dashboard_stream": ["--calls", "10", "--seconds", "8"],
    "dashboard_widget": ["--seconds", "20"],
    "agents_tasks": ["--repeat", "1"],
    "eval_suites": ["--variant", "clean"],
    "soak": ["--quick"],
    "livekit_latency": ["--turns", "4"],
    "widget_transports": ["--runs", "2"],
    "livekit_resume": ["--runs", "2"],
    "resume_after_kill": ["--runs", "2"],
    "load_ramp": ["--steps", "1,4,8", "--turns", "2"],
    "idle_streams": ["--steps", "50,200", "--hold-s", "20", "--no-probe"],
    "stt_batch": ["--rounds", "1"],
    "stt_engines": ["--asterisk", "40", "--runs", "1"],
    "call_latency_heldout": ["--turns", "10"],
    "call_latency_dev": ["--turns", "10"],
    "load_ramp_heldout": ["--steps", "1,4,8", "--turns", "2"],
}

# a benchmark run a second way, under its own name and result file: the one-caller and the
# load benchmark on the held-out caller (speech the tuning never saw; issue 14)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "call_latency_dev": ("call_latency", ["--speech", "dev", "--turns", "45",
                                          "--protocol", "twilio",
                                          "--out", "call_latency_dev.json"]),
    "call_latency_heldout": ("call_latency", ["--speech", "heldout", "--turns", "43",
                                              "--protocol", "twilio",
                                              "--out", "call_latency_heldout.json"]),
    "load_ramp_heldout": ("load_ramp", ["--speech", "heldout",
                                        "--steps", "1,2,4,8,10,12,16,20,24"]),
}


@dataclass
class Outcome:
    name: str
    status: str  # ok, failed (exit N), timed out, no result
    seconds: float
    figures: list[tuple[str, str]] = field(default_factory=list)
    tail: str = ""


# scripts that make data rather than measure (the callers' --write synthesises a set)
NOT_BENCHMARKS = ("run_all", "heldout_caller", "dev_caller")


def discover() -> list[str]:
    """The benchmarks: the modules here that run as a script (the others, such as
    ``browser.py`` or ``nlu_sets.py``, are helpers the benchmarks and tests share)."""
    scripts = [p.stem for p in HERE.glob("*.py") if p.stem not in NOT_BENCHMARKS
               and '__name__ == "__main__"' in p.read_text(encoding="utf-8")]
    return sorted(scripts + [n for n, (module, _) in VARIANTS.items() if module in scripts])


def lookup(data: dict[str, Any], path: str) -> Any:
    """``a.b.c`` in nested mappings; keys may hold dots themselves (``loads.tiny.en``)."""
    for key in sorted(data, key=len, reverse=True):
        if path == key:
            return data[key]
        if path.startswith(key + "."):
            value = data[key]
            rest = path[len(key) + 1:]
            return lookup(value, rest) if isinstance(value, dict) else None
    return None


def fmt(value: Any, unit: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float) and 0 < abs(value) <= 1 and unit == "":
        return f"{value * 100:.1f} %"
    if isinstance(value, float):
        text = f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def headline(name: str, data: dict[str, Any]) -> list[tuple[str, str]]:
    wanted = HEADLINES.get(name)
    if wanted is None:  # a benchmark this table does not know yet: its numeric top level
        return [(k, fmt(v, "")) for k, v in data.items()
                if isinstance(v, int | float) and not isinstance(v, bool)][:4]
    out = []
    for label, path, unit in wanted:
        value = lookup(data, path)
        if value is not None:
            out.append((label, fmt(value, unit)))
    return out


def provenance(argv: list[str]) -> dict[str, Any]:
    """Where a figure comes from: the commit (``+dirty`` with uncommitted changes), the
    machine (its load just after the run), the date and the command; README figures name
    the file that holds them."""
    return {"commit": commit(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(), "command": "python -m benchmarks." + " ".join(argv)}


def stamp(result: Path, argv: list[str]) -> None:
    """Add ``provenance`` to a fresh result (a benchmark's own fields win)."""
    try:
        data = json.loads(result.read_text())
    except (OSError, ValueError):
        return  # reported as a bad result by the caller
    if isinstance(data, dict):
        data = {**{"provenance": provenance(argv)}, **data}
        result.write_text(json.dumps(data, indent=2) + "\n")


def run_one(name: str, extra: list[str], timeout_s: float) -> Outcome:
    RESULTS.mkdir(exist_ok=True)
    result, log = RESULTS / f"{name}.json", RESULTS / f"{name}.log"
    before = result.stat().st_mtime if result.exists() else None
    started = time.monotonic()
    module, fixed = VARIANTS.get(name, (name, []))
    extra = [*fixed, *extra]  # a --quick size given later wins (argparse keeps the last)
    with log.open("w") as out:
        try:
            proc = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *extra],
                                  stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s,
                                  check=False, cwd=HERE.parent)
            status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        except subprocess.TimeoutExpired:
            status = f"timed out ({timeout_s:.0f} s)"
    seconds = time.monotonic() - started
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-8:])
    fresh = result.exists() and result.stat().st_mtime != before
    if fresh:
        stamp(result, [module, *extra])
    if status == "ok" and not fresh:
        status = "no result"
    figures: list[tuple[str, str]] = []
    if fresh:
        try:
            figures = headline(name, json.loads(result.read_text()))
        except (OSError, ValueError) as exc:
            status, tail = "bad result", f"{result}: {exc}"
    return Outcome(name, status, seconds, figures, tail if status != "ok" else "")


def table(outcomes: list[Outcome]) -> str:
    rows = [("benchmark", "status", "time", "figure", "value")]
    for o in outcomes:
        figures = o.figures or [("-", "-")]
        for i, (label, value) in enumerate(figures):
            rows.append((o.name if i == 0 else "", o.status if i == 0 else "",
                         f"{o.seconds:.0f} s" if i == 0 else "", label, value))
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    line = "-+-".join("-" * w for w in widths)
    def row(cells: tuple[str, ...]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [row(rows[0]), line]
    for r in rows[1:]:
        if r[0] and len(out) > 2:
            out.append(line)
        out.append(row(r))
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, noisier figures")
    parser.add_argument("--only", action="append", default=[], help="run only these")
    parser.add_argument("--skip", action="append", default=[], help="do not run these")
    parser.add_argument("--timeout", type=float, default=3600.0, help="per benchmark, seconds")
    args = parser.parse_args()
    names = [n for n in discover() if (not args.only or n in args.only) and n not in args.skip]
    unknown = sorted(set(args.only + args.skip) - set(discover()))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)} (have: {', '.join(discover())})")
    outcomes = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ...", flush=True)
        outcome = run_one(name, QUICK.get(name, []) if args.quick else [], args.timeout)
        print(f"    {outcome.status} in {outcome.seconds:.0f} s", flush=True)
        if outcome.tail:
            print("    " + outcome.tail.replace("\n", "\n    "), flush=True)
        outcomes.append(outcome)
    print()
    print(table(outcomes))
    print(f"\nlogs and JSON in {RESULTS.relative_to(HERE.parent)}/")
    if any(o.status != "ok" for o in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main()
