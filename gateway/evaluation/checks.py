"""The checks of an evaluation run: pure functions over transcripts and events.

* accuracy: word error rate, intent and slot accuracy (from ``nlu.result`` events);
* completeness: expected tools, events and replies, in order;
* audit: the event log of a call or workflow run is complete -- versions contiguous,
  bus order kept, every action followed by its result, every start by an end, nothing
  the caller saw missing from the log;
* policy: nothing ran that a denial refused.

Each check returns a list of problems (empty: the check holds), worded for a report.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestration.log.store import StoredEvent

# --- word error rate -----------------------------------------------------------------

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen"]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n: int) -> list[str]:
    """0 <= n < 1e6 spelt out: 42 -> ["forty", "two"]."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        tens, ones = divmod(n, 10)
        return [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return [_ONES[hundreds], "hundred"] + (number_words(rest) if rest else [])
    if n < 1_000_000:
        thousands, rest = divmod(n, 1000)
        return number_words(thousands) + ["thousand"] + (number_words(rest) if rest else [])
    raise ValueError(f"number out of range: {n}")


def normalize_words(text: str) -> list[str]:
    """Lower case, no punctuation, numbers spelt out ("3 p.m." and "three pm" agree)."""
    text = text.lower().replace("#", " pound ").replace("*", " star ")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    text = re.sub(r"(?<=\d)(?=[a-z])|(?<=[a-z])(?=\d)", " ", text)  # 3pm -> 3 pm
    text = re.sub(r"(?<=\d):(?=\d)", " ", text)  # 3:30 -> 3 30
    text = re.sub(r"[-/]", " ", text)
    text = re.sub(r"[^\w\s]", "", text)  # p.m. -> pm, don't -> dont
    words: list[str] = []
    for word in text.split():
        if word.isdigit() and len(word) <= 6:
            words.extend(number_words(int(word)))
        elif word != "oclock":
            words.append(word)
    return words


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words), after normalization.

    A word written closed by one side and open by the other ("Goodbye." / "Good-bye.",
    "sign-in" / "signin") is the same words said: joining two words of one side to
    match one of the other costs nothing (recognisers differ in how they write them)."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    rows = [list(range(len(hyp) + 1))]
    for i, r in enumerate(ref, 1):
        row = [i]
        for j, h in enumerate(hyp, 1):
            best = min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + (r != h))
            if j >= 2 and r == hyp[j - 2] + h:
                best = min(best, rows[i - 1][j - 2])
            if i >= 2 and ref[i - 2] + r == h:
                best = min(best, rows[i - 2][j - 1])
            row.append(best)
        rows.append(row)
    return rows[-1][-1], len(ref)


def word_error_rate(reference: str, hypothesis: str) -> float:
    errors, words = word_errors(reference, hypothesis)
    return errors / words if words else float(errors > 0)


# --- figures --------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation between closest ranks (numpy's
    default), or None for no values."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def ratio(good: int, total: int) -> float | None:
    return good / total if total else None


# --- accuracy of what the agent understood -------------------------------------------


@dataclass
class Understanding:
    """Intent and slot counts of one call."""

    intents_expected: int = 0
    intents_correct: int = 0
    slots_expected: int = 0
    slots_correct: int = 0
    mistakes: list[str] = field(default_factory=list)


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, str) and expected.startswith("re:"):
        return got is not None and re.fullmatch(expected[3:], str(got)) is not None
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return isinstance(got, (int, float)) and float(got) == float(expected)
    return bool(expected == got) or str(expected).lower() == str(got).lower()


def understanding(expected: Sequence[tuple[str | None, Mapping[str, Any]]],
                  nlu: Sequence[Mapping[str, Any] | None]) -> Understanding:
    """``expected``: per spoken turn, (intent or None, slots); ``nlu``: per turn, the
    ``nlu.result`` data that answered it (None: the turn was never classified, which
    counts as wrong)."""
    u = Understanding()
    for i, (intent, slots) in enumerate(expected):
        got = nlu[i] if i < len(nlu) else None
        if intent is not None:
            u.intents_expected += 1
            heard = got.get("intent") if got is not None else None
            if heard == intent:
                u.intents_correct += 1
            else:
                u.mistakes.append(f"turn {i + 1}: intent {heard!r}, expected {intent!r}")
        got_slots = got.get("slots", {}) if got is not None else {}
        for name, value in slots.items():
            u.slots_expected += 1
            if _same(value, got_slots.get(name)):
                u.slots_correct += 1
            else:
                u.mistakes.append(
                    f"turn {i + 1}: slot {name}={got_slots.get(name)!r}, expected {value!r}")
    return u


# --- completeness ----------------------------------------------------------------------


def missing_in_order(expected: Sequence[str], actual: Sequence[str]) -> list[str]:
    """Items of ``expected`` not found in ``actual`` as a subsequence (in order); a missing
    item does not move the position, so the rest are still looked for after the last hit."""
    missing: list[str] = []
    pos = 0
    for item in expected:
        try:
            pos = actual.index(item, pos) + 1
        except ValueError:
            missing.append(item)
    return missing


# --- audit of the event log -------------------------------------------------------------


def _contiguous(events: Sequence[StoredEvent], stream: str) -> list[str]:
    problems = []
    versions = [e.version for e in events]
    if versions != list(range(1, len(versions) + 1)):
        gaps = sorted(set(range(1, max(versions, default=0) + 1)) - set(versions))
        problems.append(f"{stream}: versions not contiguous (missing {gaps[:5]})")
    seqs = [e.seq for e in events]
    if seqs != sorted(seqs):
        problems.append(f"{stream}: log order differs from version order")
    return problems


def _followed(events: Sequence[StoredEvent], opener: str, closers: set[str], key: str | None,
              stream: str, until: set[str] | None = None) -> list[str]:
    """Each ``opener`` is answered by a later ``closer`` (matched first-in first-out per
    ``key``), or by one of ``until`` (e.g. the end of the call) if given."""
    open_: dict[Any, deque[int]] = defaultdict(deque)
    problems = []
    ended = False
    for e in events:
        k = e.data.get(key) if key else None
        if e.type == opener:
            open_[k].append(e.version)
        elif e.type in closers and open_[k]:
            open_[k].popleft()
        elif until and e.type in until:
            ended = True
    if not ended:
        for k, versions in open_.items():
            for v in versions:
                what = f"{opener} ({key}={k})" if key else opener
                answers = "/".join(sorted(closers))
                problems.append(f"{stream}: {what} at version {v} has no {answers}")
    return problems


def audit_call(events: Sequence[StoredEvent], seen_bus_seqs: Iterable[int] = ()) -> list[str]:
    """A call's stream ``call:<session>`` in the log. ``seen_bus_seqs``: the bus ``seq`` of
    every event the caller received for this session; each must be in the log."""
    if not events:
        return ["no events in the log for this call"]
    stream = events[0].stream
    problems = _contiguous(events, stream)
    bus = [b for b in (e.data.get("bus_seq") for e in events) if isinstance(b, int)]
    if len(bus) != len(events):
        problems.append(f"{stream}: events without bus_seq")
    elif bus != sorted(bus) or len(set(bus)) != len(bus):
        problems.append(f"{stream}: bus order not kept (bus_seq not increasing)")
    types = [e.type for e in events]
    if types[0] != "session.started" or types.count("session.started") != 1:
        problems.append(f"{stream}: does not open with exactly one session.started")
    if types.count("session.ended") != 1 or types[-1] != "session.ended":
        problems.append(f"{stream}: does not close with exactly one session.ended")
    problems += _followed(events, "tool.called", {"tool.succeeded", "tool.gave_up"}, "agent",
                          stream)
    by_reply: dict[str, list[str]] = defaultdict(list)
    for e in events:
        if e.type.startswith(("agent.reply", "agent.early", "tts.")) and "reply_id" in e.data:
            by_reply[str(e.data["reply_id"])].append(e.type)
    for reply, kinds in by_reply.items():
        # an early reply the caller never heard, because they went on, was dropped
        spoken = {"tts.started", "tts.interrupted", "agent.early_dropped"} & set(kinds)
        # a reply may be cut by the end of the call (a hang-up, a transfer): that is logged
        if "agent.reply" in kinds and not spoken and not _ends_after(events, reply):
            problems.append(f"{stream}: agent.reply {reply} was never spoken or cut")
    for action, result in (("call.escalated", "call.transfer"),
                           ("call.transfer", "session.ended"),
                           ("call.hangup", "session.ended")):
        problems += _followed(events, action, {result}, None, stream)
    # a turn the agent got early (``early_ms``) had its answer before its stt.final
    late = [e for e in events if e.type != "stt.final" or "early_ms" not in e.data]
    problems += _followed(late, "stt.final", {"agent.reply", "agent.turn"}, None, stream,
                          until={"session.ended"})
    logged = {e.data.get("bus_seq") for e in events}
    lost = sorted(set(seen_bus_seqs) - logged)
    if lost:
        problems.append(f"{stream}: {len(lost)} events the caller received are not in the log "
                        f"(bus seq {lost[:5]})")
    return problems


def _ends_after(events: Sequence[StoredEvent], reply: str) -> bool:
    after = False
    for e in events:
        if e.type == "agent.reply" and str(e.data.get("reply_id")) == reply:
            after = True
        elif after and e.type in ("session.ended", "call.hangup", "call.transfer"):
            return True
    return False


# a terminal status and the events that may close a run with it (an end state with
# ``status: failed`` closes with workflow.completed; a failing step with workflow.failed)
TERMINAL = {"succeeded": {"workflow.completed"},
            "failed": {"workflow.completed", "workflow.failed"},
            "compensated": {"workflow.compensated"}}


def audit_run(events: Sequence[StoredEvent], view: Mapping[str, Any] | None) -> list[str]:
    """A workflow run's stream ``wf:<id>`` and its stored view."""
    if not events:
        return ["no events in the log for this run"]
    stream = events[0].stream
    problems = _contiguous(events, stream)
    types = [e.type for e in events]
    if types[0] != "workflow.started" or types.count("workflow.started") != 1:
        problems.append(f"{stream}: does not open with exactly one workflow.started")
    problems += _followed(events, "step.started", {"step.completed", "step.failed"}, "step",
                          stream)
    problems += _followed(events, "compensation.started",
                          {"compensation.completed", "compensation.failed"}, "step", stream)
    problems += _followed(events, "signal.received", {"workflow.transition", "workflow.resumed",
                                                      "workflow.failed", "transition.rejected"},
                          None, stream)
    if view is None:
        problems.append(f"{stream}: no stored view")
    else:
        status = str(view.get("status"))
        closing = TERMINAL.get(status, set())
        if closing and not closing & set(types):
            problems.append(f"{stream}: status {status} but no {' or '.join(sorted(closing))} "
                            "event")
        if view.get("last_seq") not in (None, events[-1].seq):
            problems.append(f"{stream}: view is at seq {view.get('last_seq')}, "
                            f"log at {events[-1].seq}")
    return problems


# --- policy ------------------------------------------------------------------------------


def is_denial(type: str, data: Mapping[str, Any]) -> bool:
    """Any ``*.denied``; a tool or step refused for a permission (``PermissionDenied``);
    a memory write the router refused (a secret)."""
    if type.endswith(".denied") or type == "memory.refused":
        return True
    return (type in ("tool.failed", "tool.gave_up", "step.failed")
            and str(data.get("error", "")).startswith("PermissionDenied"))


def _target(data: Mapping[str, Any]) -> str | None:
    for key in ("tool", "action", "step"):
        if isinstance(data.get(key), str):
            return str(data[key])
    return None


def policy_violations(events: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """Denied actions that ran anyway, from one call's or run's events in order:

    * a denial inside a tool call (between ``tool.called`` and its result) whose call then
      succeeded, or a denial naming a tool that later succeeds in the same agent turn;
    * a ``memory.refused`` followed in the same turn by a ``memory.write`` of that kind;
    * a step failed for a permission that then completed without being started again.
    """
    problems: list[str] = []
    in_call: dict[str, bool] = {}  # agent -> a denial happened inside its open tool call
    denied_targets: set[str] = set()
    refused_kinds: set[str] = set()
    denied_steps: set[str] = set()
    for i, (type, data) in enumerate(events):
        agent = str(data.get("agent", ""))
        if type in ("agent.turn", "stt.final"):
            denied_targets.clear()
            refused_kinds.clear()
        if type == "tool.called":
            in_call[agent] = False
        elif type == "tool.succeeded":
            target = _target(data)
            if in_call.pop(agent, False):
                problems.append(f"event {i}: {data.get('tool')} succeeded although it was denied")
            elif target in denied_targets:
                problems.append(f"event {i}: {target} ran after it was denied")
        elif type == "tool.gave_up":
            in_call.pop(agent, None)
        elif type == "memory.write" and str(data.get("kind")) in refused_kinds:
            problems.append(f"event {i}: memory.write of a {data.get('kind')} that was refused")
        elif type == "step.started":
            denied_steps.discard(str(data.get("step")))
        elif type == "step.completed" and str(data.get("step")) in denied_steps:
            problems.append(f"event {i}: step {data.get('step')} completed after it was denied")
        if is_denial(type, data):
            if agent in in_call:
                in_call[agent] = True
            target = _target(data)
            if type == "memory.refused":
                refused_kinds.add(str(data.get("kind")))
            elif type == "step.failed" and target is not None:
                denied_steps.add(target)
            elif target is not None:
                denied_targets.add(target)
    return problems


def _tokens(obj: Mapping[str, Any]) -> int | None:
    if isinstance(obj.get("total_tokens"), int):
        return int(obj["total_tokens"])
    parts = [p for p in (obj.get("prompt_tokens"), obj.get("completion_tokens"))
             if isinstance(p, int)]
    if parts:
        return sum(parts)
    return int(obj["tokens"]) if isinstance(obj.get("tokens"), int) else None


def tokens_used(events: Iterable[Mapping[str, Any]]) -> int:
    """Language-model tokens reported in event data: ``tokens``, ``total_tokens`` or
    ``prompt_tokens`` + ``completion_tokens``, in the data itself, its ``usage``, its
    ``output`` (a workflow step's) or the output's ``usage``. 0 when nothing reports any."""
    total = 0
    for data in events:
        output = data.get("output")
        candidates = [data, data.get("usage"), output,
                      output.get("usage") if isinstance(output, Mapping) else None]
        for obj in candidates:
            found = _tokens(obj) if isinstance(obj, Mapping) else None
            if found is not None:
                total += found
                break
    return total
