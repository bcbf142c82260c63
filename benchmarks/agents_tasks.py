"""Task completion over scripted calls, and orchestration time per turn (local NLU).

    python -m benchmarks.agents_tasks [--repeat 3]

Scripted calls drive the front desk through the Agent protocol with the real NLU, flows,
tools, SQLite stores and memory (a fresh data directory), phrased in several ways,
including as a recogniser mishears them. Each script has an outcome checked in the
stores or the events (a booking exists, none exists, a ticket, a note, a spoken status,
an escalation). Orchestration time is the wall time of one ``respond()`` (NLU, memory
routing, flow, tools, SQLite writes), i.e. what the agent adds to a turn's latency;
ops probes hit a real health endpoint on 127.0.0.1. Writes
benchmarks/results/agents_tasks.json. Target: <= 20 ms p50 per turn.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gateway.evaluation.line import Line, make_system
from gateway.evaluation.loopback import LoopbackHttp
from orchestration.agents.agent import HangUp, Transfer
from orchestration.agents.system import AgentSystem

RESULTS = Path(__file__).parent / "results"
Check = Callable[[AgentSystem, Line, str], bool]

DAYS = [("on Tuesday", "2026-12-01"), ("tomorrow", "2026-11-27"), ("on Wednesday", "2026-12-02"),
        ("on Monday", "2026-11-30")]
TIMES = [("at three p.m.", "15:00"), ("at 10 a.m.", "10:00"), ("at half past two", "14:30"),
         ("at eleven", "11:00")]
ASKS = ["I'd like to book an appointment {d} {t}", "Can I come in {d} {t}?",
        "I like to book a point meant {d} {t}"]


def booked(day: str, hhmm: str) -> Check:
    return lambda s, line, said: any(
        b["day"] == day and b["time"] == hhmm and b["caller"] == line.agent.router.key
        for b in s.calendar.all())


def nothing_booked(s: AgentSystem, line: Line, said: str) -> bool:
    return not any(b["caller"] == line.agent.router.key for b in s.calendar.all())


def scripts() -> list[tuple[str, list[str], Check]]:
    out: list[tuple[str, list[str], Check]] = []
    for i, ((d, day), (t, hhmm)) in enumerate(itertools.product(DAYS, TIMES)):
        ask = ASKS[i % len(ASKS)].format(d=d, t=t)
        out.append(("book-yes", [ask, "Yes, please."], booked(day, hhmm)))
        out.append(("book-no", [ask, "No.", "No, thanks."], nothing_booked))
    out.append(("book-correct", ["Book me tomorrow at 10 am", "No, make it 2 pm.", "Yes"],
                booked("2026-11-27", "14:00")))
    out.append(("book-ask", ["I need an appointment.", "Thursday", "At four", "yes"],
                booked("2026-12-03", "16:00")))
    for ask in ("My internet is down.", "My why fi is not working.", "I can't log in.",
                "I forgot my pass word.", "I was charged twice.", "My in voice is wrong."):
        out.append(("support-fixed", [ask, "Yes, that fixed it."],
                    lambda s, line, said: "glad" in said and not any(
                        t["caller"] == line.agent.router.key for t in s.tickets.all())))
        out.append(("support-ticket", [ask, "No.", "No.", "No.", "No."],
                    lambda s, line, said: any(t["caller"] == line.agent.router.key
                                              for t in s.tickets.all())))
    for note in ("Take a note: send the slides to Maria.", "Make a note that the demo moved.",
                 "Take a knot, renew the domain."):
        out.append(("note", [note, "Read my notes."],
                    lambda s, line, said: len(s.memory.items(line.agent.router.key or "")) == 1
                    and "1:" in said))
    for ask in ("What's the status of the payment service?", "Is payments up?",
                "Is the paiments service working?", "How is payments doing?"):
        out.append(("status", [ask], lambda s, line, said: "Payments is up." in said))
    for ask in ("I want to talk to a human.", "Speak to a real purse in please.",
                "Representative.", "Get me an operator."):
        out.append(("escalate", [ask], lambda s, line, said: isinstance(line.actions[-1],
                                                                         Transfer)))
    out.append(("goodbye", ["Thanks, that's all. Goodbye."],
                lambda s, line, said: isinstance(line.actions[-1], HangUp)))
    return out


async def run(repeat: int) -> dict[str, Any]:
    per_kind: dict[str, list[bool]] = {}
    turn_ms: list[float] = []
    failures: list[dict[str, Any]] = []
    route = {"/payments": lambda n, b: (200, {"status": "up", "latency_ms": 80})}
    with LoopbackHttp(route) as health:
        for r in range(repeat):
            with tempfile.TemporaryDirectory() as tmp:
                system, recorder = make_system(Path(tmp), overrides={"ops": {"services": {
                    "payments": {"aliases": ["payment"], "url": f"{health.url}/payments"}}}})
                for n, (kind, turns, check) in enumerate(scripts()):
                    line = Line(system, recorder, caller=f"+1555{r:02d}{n:05d}")
                    await line.greet()
                    said = ""
                    for text in turns:
                        said = await line.say(text)
                    turn_ms += [e["ms"] for e in line.events("agent.turn")
                                if e["intent"] != "greeting"]
                    ok = check(system, line, said)
                    per_kind.setdefault(kind, []).append(ok)
                    if not ok and r == 0:
                        failures.append({"kind": kind, "turns": turns, "last": said})
                system.close()
                recorder.close()
    done = [ok for oks in per_kind.values() for ok in oks]
    return {
        "scripts": len(done) // repeat, "repeat": repeat,
        "completion": round(sum(done) / len(done), 4),
        "per_kind": {k: round(sum(v) / len(v), 4) for k, v in per_kind.items()},
        "turns": len(turn_ms),
        "turn_ms_p50": round(statistics.median(turn_ms), 3),
        "turn_ms_p95": round(float(np.percentile(turn_ms, 95)), 3),
        "turn_ms_max": round(max(turn_ms), 3),
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = asyncio.run(run(args.repeat))
    print(f"task completion: {results['completion']:.1%} over {results['scripts']} scripted "
          f"calls x {results['repeat']}")
    for kind, rate in results["per_kind"].items():
        print(f"  {kind:15} {rate:.0%}")
    print(f"orchestration time per turn (local NLU), {results['turns']} turns: "
          f"p50 {results['turn_ms_p50']:.2f} ms, p95 {results['turn_ms_p95']:.2f} ms, "
          f"max {results['turn_ms_max']:.2f} ms")
    for f in results["failures"]:
        print(f"  failed: {f['kind']}: {f['turns']} -> {f['last']!r}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "agents_tasks.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
