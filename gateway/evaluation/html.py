"""The evaluation report as one self-contained HTML page, its plots drawn as inline SVG.

No script, no external file, no plotting library: a page that can be attached to a CI
run and opened anywhere. Plots: every latency of each tier as a dot against its p50,
p95 and limits; WER and outcome per audio variant; server CPU per call per scenario.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

W, H, PAD = 640, 120, 40
GREEN, RED, GREY, BLUE, ORANGE = "#2e7d32", "#c62828", "#9e9e9e", "#1565c0", "#ef6c00"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "–"
    if pct:
        return f"{value * 100:.1f} %"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _nice_max(x: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at or above ``x`` (an axis end)."""
    if x <= 0:
        return 1.0
    exp = math.floor(math.log10(x))
    return next(m * 10.0**exp for m in (1, 2, 5, 10) if m * 10.0**exp >= x)


def strip_plot(values: Sequence[float], marks: Sequence[tuple[str, float, str]],
               unit: str) -> str:
    """Dots for ``values`` on one axis with labelled vertical ``marks`` (label, x, colour)."""
    top = max([*values, *(m[1] for m in marks), 1e-9])
    scale = _nice_max(top * 1.05)
    def x(v: float) -> float:
        return PAD + (W - 2 * PAD) * v / scale
    parts = [f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img">',
             f'<line x1="{PAD}" y1="{H - 30}" x2="{W - PAD}" y2="{H - 30}" stroke="{GREY}"/>']
    for i in range(6):
        v = scale * i / 5
        parts.append(f'<text x="{x(v):.1f}" y="{H - 12}" font-size="10" text-anchor="middle">'
                     f"{_fmt(v)}</text>")
    parts.append(f'<text x="{W - PAD}" y="{H - 1}" font-size="10" text-anchor="end">'
                 f"{_e(unit)}</text>")
    for i, v in enumerate(values):  # a little vertical jitter so equal values stay visible
        parts.append(f'<circle cx="{x(v):.1f}" cy="{H - 45 - (i * 7) % 35}" r="3" '
                     f'fill="{BLUE}" fill-opacity="0.6"/>')
    for n, (label, v, colour) in enumerate(marks):
        parts.append(f'<line x1="{x(v):.1f}" y1="10" x2="{x(v):.1f}" y2="{H - 30}" '
                     f'stroke="{colour}" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{x(v) + 3:.1f}" y="{12 + 11 * n}" font-size="10" '
                     f'fill="{colour}">{_e(label)} {_fmt(v)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(rows: Sequence[tuple[str, float | None]], unit: str, limit: float | None = None,
              pct: bool = False, axis_max: float | None = None) -> str:
    """Horizontal bars, one per row; an optional limit line; the axis ends at
    ``axis_max`` (a share: 1.0) or a round number above the longest bar."""
    values = [v for _, v in rows if v is not None]
    scale = axis_max or _nice_max(max([*values, limit or 0.0, 1e-9]) * 1.05)
    label_w, bar_h = 250, 18
    height = 20 + bar_h * len(rows) + 24
    def x(v: float) -> float:  # room on the right for the value after the longest bar
        return label_w + (W - label_w - 2 * PAD) * v / scale
    parts = [f'<svg viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img">']
    for i, (label, v) in enumerate(rows):
        y = 10 + i * bar_h
        short = label if len(label) <= 36 else label[:35] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" font-size="11" '
                     f'text-anchor="end">{_e(short)}</text>')
        if v is None:
            parts.append(f'<text x="{label_w + 4}" y="{y + 12}" font-size="11">no figure</text>')
            continue
        colour = RED if limit is not None and v > limit else BLUE
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{max(x(v) - label_w, 1):.1f}" '
                     f'height="{bar_h - 5}" fill="{colour}"/>')
        parts.append(f'<text x="{x(v) + 4:.1f}" y="{y + 12}" font-size="10">'
                     f"{_fmt(v, pct)}</text>")
    base = 10 + bar_h * len(rows)
    parts.append(f'<text x="{label_w}" y="{base + 18}" font-size="10">'
                 f"{_e(unit)} (axis 0 to {_fmt(scale, pct)})</text>")
    if limit is not None:
        parts.append(f'<line x1="{x(limit):.1f}" y1="6" x2="{x(limit):.1f}" y2="{base}" '
                     f'stroke="{ORANGE}" stroke-dasharray="4 3"/>'
                     f'<text x="{x(limit) + 3:.1f}" y="{base + 4}" font-size="10" '
                     f'fill="{ORANGE}">limit {_fmt(limit, pct)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _gate_cell(gate: dict[str, Any], pct: bool) -> str:
    cls = "" if gate["ok"] is None else ("ok" if gate["ok"] else "bad")
    limit = "" if gate["limit"] is None else f" ({gate['op']} {_fmt(gate['limit'], pct)})"
    return f'<td class="{cls}">{_e(_fmt(gate["value"], pct) + limit)}</td>'


PCT = {"wer", "intent_accuracy", "slot_accuracy", "outcome", "completeness", "consistency"}

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:right}th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}
.ok{color:#2e7d32}.bad{color:#c62828;font-weight:600}.verdict{font-size:20px}
details{margin:4px 0}code{font-size:12px}h2{margin-top:32px}
"""


def render_html(report: dict[str, Any]) -> str:
    out: list[str] = []
    for section in (_head, _suites, _tiers, _plots, _scenarios, _runs):
        out += section(report)
    out.append("</body></html>")
    return "\n".join(out)


def _head(report: dict[str, Any]) -> list[str]:
    """The page's head and verdict."""
    meta = report.get("meta", {})
    out: list[str] = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
           "<title>voxgate evaluation</title>", f"<style>{CSS}</style></head><body>",
           "<h1>voxgate evaluation</h1>",
           f"<p class='verdict {'ok' if report['ok'] else 'bad'}'>"
           f"{'PASSED: every gate held' if report['ok'] else 'FAILED'}</p>",
           f"<p>{_e(meta.get('mode', ''))}; {_e(meta.get('duration_s', '?'))} s; suites: "
           f"{_e(', '.join(meta.get('suites', [])))}; machine: "
           f"<code>{_e(json.dumps(meta.get('started', {})))}</code></p>"]
    return out


def _suites(report: dict[str, Any]) -> list[str]:
    """One row per suite: its runs and gates."""
    out: list[str] = []
    out.append("<h2>Suites</h2><table><tr><th>suite</th><th>runs ok</th>")
    names = ["wer", "intent_accuracy", "slot_accuracy", "outcome", "completeness",
             "consistency", "audit_complete", "policy_adherence", "runs_completed"]
    out += [f"<th>{n.replace('_', ' ')}</th>" for n in names] + ["</tr>"]
    for s in report["suites"]:
        gates = {g["name"]: g for g in s["gates"]}
        out.append(f"<tr><td>{_e(s['suite'])} ({_e(s['kind'])})</td>"
                   f"<td>{s['runs_ok']}/{s['runs']}</td>")
        out += [_gate_cell(gates[n], n in PCT) for n in names]
        out.append("</tr>")
    out.append("</table>")
    return out


def _tiers(report: dict[str, Any]) -> list[str]:
    """One row per tier: latency and cost against its limits."""
    out: list[str] = []
    out.append("<h2>Latency and cost per tier</h2><table><tr><th>tier</th><th>n</th>"
               "<th>p50 ms</th><th>p95 ms</th><th>max ms</th><th>CPU s/call</th>"
               "<th>tokens/call</th></tr>")
    for t in report["tiers"]:
        g = {x["name"]: x for x in t["gates"]}
        out.append(f"<tr><td>{_e(t['tier'])}</td><td>{t['n']}</td>"
                   + _gate_cell(g["latency_p50_ms"], False) + _gate_cell(g["latency_p95_ms"],
                                                                      False)
                   + f"<td>{_fmt(t['latency_max_ms'])}</td>"
                   + _gate_cell(g["cpu_s_per_call"], False)
                   + _gate_cell(g["tokens_per_call"], False) + "</tr>")
    out.append("</table>")
    return out


def _plots(report: dict[str, Any]) -> list[str]:
    """Every latency per tier, the audio variants' WER and the CPU per call."""
    out: list[str] = []
    latencies: dict[str, list[float]] = {}
    for r in report["runs"]:
        latencies.setdefault(r["tier"], []).extend(r["latencies_ms"])
    for t in report["tiers"]:
        values = latencies.get(t["tier"], [])
        if not values:
            continue
        marks = [("p50", t["latency_p50_ms"], BLUE), ("p95", t["latency_p95_ms"], BLUE)]
        marks += [(f"limit {k[8:11]}", v, ORANGE) for k, v in t["limits"].items()
                  if k.startswith("latency_") and v is not None]
        out.append(f"<h3>{_e(t['tier'])}: every latency</h3>")
        out.append(strip_plot(values, [(a, b, c) for a, b, c in marks if b is not None], "ms"))
    for s in report["suites"]:
        if s["kind"] != "voice" or len(s["variants"]) < 2:
            continue
        limit = next((g["limit"] for g in s["gates"] if g["name"] == "wer"), None)
        out.append(f"<h3>{_e(s['suite'])}: audio variants</h3>")
        out.append(bar_chart([(v, row["wer"]) for v, row in s["variants"].items()],
                             "word error rate", limit, pct=True))
        out.append(bar_chart([(v, row["consistency_vs_clean"])
                              for v, row in s["variants"].items()],
                             "runs with the clean runs' outcome", None, pct=True,
                             axis_max=1.0))
    kinds = {s["suite"]: s["kind"] for s in report["suites"]}
    for kind, title in (("voice", "Server CPU per call"), ("workflow", "CPU per workflow run")):
        cpu = [(f"{r['suite']}/{r['scenario']}", r["cpu_s_per_call"])
               for r in report["scenarios"] if kinds.get(r["suite"]) == kind]
        if any(v is not None for _, v in cpu):
            out.append(f"<h2>{title}</h2>")
            out.append(bar_chart(cpu, "CPU seconds"))
    return out


def _scenarios(report: dict[str, Any]) -> list[str]:
    """One row per scenario."""
    out: list[str] = []
    out.append("<h2>Scenarios</h2><table><tr><th>scenario</th><th>tier</th><th>runs ok</th>"
               "<th>p50 ms</th><th>p95 ms</th><th>CPU s</th><th>WER</th><th>problems</th></tr>")
    for r in report["scenarios"]:
        cls = "ok" if r["ok"] == r["runs"] else "bad"
        problems = "<br>".join(_e(p) for p in r["problems"][:5])
        out.append(f"<tr><td>{_e(r['suite'])}/{_e(r['scenario'])}</td><td>{_e(r['tier'])}</td>"
                   f"<td class='{cls}'>{r['ok']}/{r['runs']}</td>"
                   f"<td>{_fmt(r['latency_p50_ms'])}</td><td>{_fmt(r['latency_p95_ms'])}</td>"
                   f"<td>{_fmt(r['cpu_s_per_call'])}</td><td>{_fmt(r['wer'], True)}</td>"
                   f"<td style='text-align:left'>{problems}</td></tr>")
    out.append("</table>")
    return out


def _runs(report: dict[str, Any]) -> list[str]:
    """The failures, then every run with what it found."""
    out: list[str] = []
    if report["failures"]:
        out.append("<h2>Failures</h2><ul>")
        out += [f"<li>{_e(f)}</li>" for f in report["failures"]]
        out.append("</ul>")
    out.append("<h2>Runs</h2>")
    for r in report["runs"]:
        head = (f"{'✔' if r['ok'] else '✘'} {r['suite']}/{r['scenario']} [{r['variant']} "
                f"#{r['repeat'] + 1}] {', '.join(r['ids'])}")
        lines = [f"latencies ms: {r['latencies_ms']}", f"CPU s: {_fmt(r['cpu_s'])}"]
        lines += [f"expected: {a}<br>heard: {b}" for a, b in r["transcripts"]]
        lines += [f"{k}: {p}" for k in ("outcome", "audit", "policy") for p in r[k]]
        if r["error"]:
            lines.append(f"error: {r['error']}")
        body = "<br>".join(_e(x).replace("&lt;br&gt;", "<br>") for x in lines)
        out.append(f"<details><summary>{_e(head)}</summary><p>{body}</p></details>")
    return out
