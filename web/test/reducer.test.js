import assert from "node:assert/strict";
import { test } from "node:test";
import { apply, createState, describe, endedSessions, levelAt, liveSessions } from "../static/dashboard/reducer.js";

let seq = 0;
const ev = (type, data = {}, ts = 100 + seq, session_id = "s1") => ({ type: "event", event: { seq: ++seq, ts, session_id, type, data } });

function call(state, id = "s1") {
  const events = [
    ["session.started", { protocol: "twilio", call_sid: "CA1", caller: "+15550001" }],
    ["agent.state", { state: "thinking", previous: "idle" }],
    ["tts.started", { reply_id: "r1", text: "Hello.", audio_ms: 1000, synth_ms: 80 }],
    ["agent.state", { state: "agent_speaking", previous: "thinking" }],
    ["vad.speech_started", { onset_ms: 60, at_ms: 900 }],
    ["tts.interrupted", { reply_id: "r1", played_text: "", unplayed_text: "Hello.", cleared: true }],
    ["agent.state", { state: "user_speaking", previous: "agent_speaking" }],
    ["vad.speech_stopped", { speech_ms: 900 }],
    ["stt.final", { text: "book a table", turn: 1 }],
    ["turn.latency", { reply_id: "r2", total_ms: 610, stt_ms: 300, tts_ms: 120 }],
  ];
  const changed = new Set();
  for (const [type, data] of events) for (const c of apply(state, ev(type, data, undefined, id))) changed.add(c);
  return changed;
}

test("a call's events fold into its summary and panels", () => {
  const state = createState();
  assert.deepEqual([...call(state)], ["s1"]);
  const s = state.sessions.s1;
  assert.equal(s.caller, "+15550001");
  assert.equal(s.call_sid, "CA1");
  assert.equal(s.state, "user_speaking");
  assert.equal(s.turns, 1);
  assert.equal(s.barge_ins, 1);
  assert.deepEqual(s.latency, { total_ms: 610, stt_ms: 300, tts_ms: 120 });
  assert.deepEqual(s.captions.map((c) => [c.who, c.text, !!c.cut]), [["agent", "Hello.", true], ["user", "book a table", false]]);
  assert.equal(s.latencies.length, 1);
  assert.equal(s.timeline.length, 10);
  assert.deepEqual(s.highlights.map((h) => h.kind), ["barge"]);
  assert.equal(s.live, true);
});

test("handoffs build the agent hierarchy; tools, escalations and denials are highlighted", () => {
  const state = createState();
  apply(state, ev("session.started", { protocol: "browser" }, 1, "h"));
  apply(state, ev("agent.handoff", { from: "front_desk", to: "scheduling" }, 2, "h"));
  apply(state, ev("tool.called", { tool: "calendar.book" }, 3, "h"));
  apply(state, ev("policy.denied", { tool: "payments.refund", reason: "not granted" }, 4, "h"));
  apply(state, ev("agent.handoff", { from: "scheduling", to: "front_desk" }, 5, "h"));
  apply(state, ev("call.escalated", { target: "human" }, 6, "h"));
  apply(state, ev("workflow.transition", { workflow: "booking", from: "ask", to: "confirm" }, 7, "h"));
  const s = state.sessions.h;
  assert.equal(s.supervisor, "front_desk");
  assert.deepEqual(s.agents, ["front_desk", "scheduling"]);
  assert.equal(s.agent, "front_desk");
  assert.deepEqual([s.tool_calls, s.denials, s.escalations], [1, 1, 1]);
  assert.deepEqual(s.tools, ["calendar.book"]);
  assert.deepEqual(s.workflow, { name: "booking", state: "confirm" });
  assert.deepEqual(s.highlights.map((h) => h.kind), ["handoff", "tool", "denial", "handoff", "escalation"]);
  // the voice agents' events: a flow's run names its workflow (and agent); refusals are denials
  apply(state, ev("workflow.transition", { run: "scheduling-1", workflow: "scheduling", agent: "scheduling", from: "route", to: "ask_date", via: "default" }, 8, "h"));
  assert.deepEqual(s.workflow, { name: "scheduling", state: "ask_date" });
  apply(state, ev("tool.gave_up", { agent: "ops", tool: "ops.restart", error: "PermissionDenied: needs permissions not granted" }, 9, "h"));
  apply(state, ev("tool.gave_up", { agent: "ops", tool: "ops.status", error: "ToolTimeout: 2 s" }, 10, "h"));
  apply(state, ev("memory.refused", { kind: "note", reason: "card number" }, 11, "h"));
  assert.equal(s.denials, 3);
  assert.deepEqual(s.timeline.slice(-3).map((e) => e.kind), ["denial", "tool", "denial"]);
  assert.equal(s.highlights[1].from, "scheduling", "the tool pulse leaves the active agent");
});

test("a snapshot replaces the live sessions and its recent events fill the panels once", () => {
  const state = createState();
  call(state, "gone"); // live before the snapshot, not in it: it ended meanwhile
  const summary = { ...state.sessions.gone, id: "s9", last_seq: 50, events: 3 };
  const recent = [
    { seq: 48, ts: 1, session_id: "s9", type: "stt.final", data: { text: "hi" } },
    { seq: 50, ts: 2, session_id: "s9", type: "turn.latency", data: { total_ms: 500, stt_ms: 200, tts_ms: 100 } },
  ];
  const changed = apply(state, { type: "snapshot", sessions: [{ ...summary, recent }], ended: [], runs: [{ id: "r1", name: "kb_qa", status: "waiting", state: "ask", updated_ts: 1 }] });
  assert.deepEqual(changed.sort(), ["gone", "s9"]);
  assert.equal(state.sessions.gone, undefined);
  const s = state.sessions.s9;
  assert.equal(s.turns, 1, "the summary is taken as is, not refolded");
  assert.deepEqual(s.captions.map((c) => c.text), ["hi"]);
  assert.equal(s.latencies.length, 1);
  assert.equal(state.runs.r1.state, "ask");
  // an event already in the snapshot is ignored; a newer one is folded
  assert.deepEqual(apply(state, { type: "event", event: { seq: 50, ts: 2, session_id: "s9", type: "stt.final", data: { text: "dup" } } }), []);
  apply(state, { type: "event", event: { seq: 51, ts: 3, session_id: "s9", type: "session.ended", data: { reason: "bye" } } });
  assert.equal(s.state, "ended");
  assert.equal(s.end_reason, "bye");
  assert.deepEqual(liveSessions(state), []);
  assert.deepEqual(endedSessions(state).map((x) => x.id), ["s9"]);
});

test("unknown message types are skipped", () => {
  const state = createState();
  assert.deepEqual(apply(state, { type: "future", x: 1 }), []);
});

test("levels: envelopes when the gateway sends them, otherwise derived from events", () => {
  const state = createState();
  apply(state, ev("session.started", {}, 10, "l"));
  const s = state.sessions.l;
  assert.equal(levelAt(s, "in", 10.5), 0);
  apply(state, ev("vad.speech_started", {}, 11, "l"));
  assert.ok(levelAt(s, "in", 11.2) > 0.2);
  apply(state, ev("vad.speech_stopped", {}, 12, "l"));
  assert.equal(levelAt(s, "in", 12.1), 0);
  apply(state, ev("tts.started", { text: "Hi.", audio_ms: 2000 }, 13, "l"));
  assert.ok(levelAt(s, "out", 14) > 0.2);
  assert.equal(levelAt(s, "out", 15.5), 0, "the agent's audio is over");
  apply(state, ev("audio.levels", { dir: "out", hop_ms: 100, levels: [0.1, 0.9, 0.4] }, 20, "l"));
  assert.equal(levelAt(s, "out", 20.05), 0.1);
  assert.equal(levelAt(s, "out", 20.15), 0.9);
  assert.equal(levelAt(s, "out", 20.25), 0.4);
  assert.equal(s.timeline.at(-1).type, "tts.started", "level events stay out of the timeline");
});

test("the timeline describes events in words", () => {
  assert.equal(describe({ type: "agent.state", data: { state: "listening", previous: "thinking" } }), "thinking → listening");
  assert.equal(describe({ type: "turn.latency", data: { total_ms: 612.4, stt_ms: 300.2, tts_ms: 99.6 } }), "612 ms (stt 300, tts 100)");
  assert.equal(describe({ type: "stt.final", data: { text: "hello" } }), "“hello”");
});

test("finished calls beyond the last 50 are forgotten", () => {
  const state = createState();
  for (let i = 0; i < 55; i++) {
    apply(state, ev("session.started", {}, i, `c${i}`));
    apply(state, ev("session.ended", { reason: "done" }, i + 0.5, `c${i}`));
  }
  assert.equal(Object.keys(state.sessions).length, 50);
  assert.equal(state.sessions.c0, undefined);
  assert.ok(state.sessions.c54);
});
