// The dashboard's state, folded from /ws/state messages (docs/dashboard.md). No DOM here:
// node's test runner checks it (web/test/reducer.test.js), and the summary fields match
// the server's fold in gateway/api/sessions.py (tests/web/test_reducer_parity.py).
//
// apply(state, message) changes `state` in place and returns the ids of the sessions it
// changed, so the views redraw only those.

export const DEFAULT_AGENT = "agent";
const CAPTIONS = 60;
const TIMELINE = 400;
const LATENCIES = 60;
const HIGHLIGHTS = 40;
const ESCALATIONS = new Set(["call.escalated", "call.transfer"]);
const WORKFLOW = new Set(["workflow.transition", "workflow.started"]);

// Mirrors gateway/sessions.is_denial.
export function isDenial(type, data = {}) {
  if (type.endsWith(".denied") || type === "memory.refused") return true;
  return (type === "tool.failed" || type === "tool.gave_up") && String(data.error).startsWith("PermissionDenied");
}

export function createState() {
  return { sessions: {}, runs: {}, connected: false, lastSeq: 0, clockSkew: null };
}

export function newSession(id, ts) {
  return {
    // the summary: the same fields, folded the same way, as gateway/api/sessions.py
    id, protocol: null, call_sid: null, caller: null, started_at: ts, ended_at: null,
    end_reason: null, state: "idle", agent: DEFAULT_AGENT, agents: [DEFAULT_AGENT],
    supervisor: DEFAULT_AGENT, workflow: null, turns: 0, barge_ins: 0, escalations: 0,
    denials: 0, tool_calls: 0, latency: null, events: 0, last_seq: 0, updated_at: ts, live: true,
    // the dashboard's own
    ...panels(),
  };
}

function panels() {
  return {
    captions: [], // {who: "user"|"agent", text, ts, reply, cut}
    timeline: [], // {seq, ts, type, text, kind}
    latencies: [], // {ts, total_ms, stt_ms, tts_ms}
    highlights: [], // {kind: "tool"|"handoff"|"barge"|"escalation"|"denial", ts, from, to, label}
    tools: [], // tool names seen, in order (the scene's satellites)
    audio: { inActive: false, inSince: null, outUntil: 0, envelopes: [] },
  };
}

function fromSummary(summary) {
  const { recent, ...fields } = summary;
  return { ...newSession(summary.id, summary.started_at), ...fields, ...panels() };
}

export function apply(state, message) {
  switch (message.type) {
    case "snapshot":
      return applySnapshot(state, message);
    case "event":
      return applyEvent(state, message.event);
    case "run":
      state.runs[message.run.id] = message.run;
      return [];
    default:
      return []; // message types added later
  }
}

function applySnapshot(state, message) {
  const changed = [];
  for (const id of Object.keys(state.sessions)) {
    if (state.sessions[id].live) {
      delete state.sessions[id]; // the snapshot is the truth about what is live
      changed.push(id);
    }
  }
  for (const summary of message.ended || []) {
    if (!state.sessions[summary.id]) state.sessions[summary.id] = fromSummary(summary);
    changed.push(summary.id);
  }
  for (const summary of message.sessions || []) {
    const session = fromSummary(summary);
    // the recent events fill the panels; the summary already counts them
    for (const event of summary.recent || []) foldPanels(session, event);
    state.sessions[summary.id] = session;
    changed.push(summary.id);
  }
  state.runs = {};
  for (const run of message.runs || []) state.runs[run.id] = run;
  return changed;
}

export function applyEvent(state, event) {
  let session = state.sessions[event.session_id];
  if (!session) session = state.sessions[event.session_id] = newSession(event.session_id, event.ts);
  if (event.seq <= session.last_seq) return []; // already folded (snapshot overlap)
  foldSummary(session, event);
  foldPanels(session, event);
  state.lastSeq = Math.max(state.lastSeq, event.seq);
  const changed = [session.id];
  if (event.type === "session.ended") changed.push(...prune(state));
  return changed;
}

const KEEP_ENDED = 50;

// Forget the oldest finished calls beyond KEEP_ENDED (the API still has them).
function prune(state) {
  const ended = endedSessions(state);
  const gone = ended.slice(KEEP_ENDED).map((s) => s.id);
  for (const id of gone) delete state.sessions[id];
  return gone;
}

function agentNamed(d) {
  for (const key of ["to", "agent", "target"]) {
    if (typeof d[key] === "string" && d[key]) return d[key];
  }
  return null;
}

// Mirrors gateway/sessions.fold: keep the two in step.
export function foldSummary(s, event) {
  const t = event.type;
  const d = event.data || {};
  if (t === "session.started") {
    s.protocol = d.protocol ?? null;
    s.call_sid = d.call_sid ?? null;
    s.caller = d.caller ?? null;
    s.started_at = event.ts;
    if (typeof d.agent === "string") {
      s.agent = s.supervisor = d.agent;
      s.agents = [d.agent];
    }
  } else if (t === "agent.state") {
    s.state = d.state ?? s.state;
  } else if (t === "stt.final") {
    s.turns += 1;
  } else if (t === "agent.handoff") {
    const source = d.from;
    if (typeof source === "string" && source && s.agents.length === 1 && s.agents[0] === DEFAULT_AGENT) {
      s.agent = s.supervisor = source;
      s.agents = [source];
    }
    const target = agentNamed(d);
    if (target !== null) {
      s.agent = target;
      if (!s.agents.includes(target)) s.agents.push(target);
    }
  } else if (ESCALATIONS.has(t)) {
    s.escalations += 1;
  } else if (t === "tts.interrupted") {
    s.barge_ins += 1;
  } else if (t === "tool.called") {
    s.tool_calls += 1;
  } else if (isDenial(t, d)) {
    s.denials += 1;
  } else if (WORKFLOW.has(t)) {
    // a transition names its workflow, a run's start its definition as `name`; a call's
    // runs also name their agent
    const name = d.workflow || d.name || d.agent || (s.workflow || {}).name || null;
    const st = d.to || (s.workflow || {}).state || null;
    s.workflow = { name, state: st };
  } else if (t === "turn.latency") {
    s.latency = { total_ms: d.total_ms ?? null, stt_ms: d.stt_ms ?? null, tts_ms: d.tts_ms ?? null };
  } else if (t === "session.ended") {
    s.ended_at = event.ts;
    s.end_reason = d.reason ?? null;
    s.state = "ended";
    s.live = false;
  }
  s.events += 1;
  s.last_seq = Math.max(s.last_seq, event.seq || 0);
  s.updated_at = event.ts;
}

function push(list, item, limit) {
  list.push(item);
  if (list.length > limit) list.splice(0, list.length - limit);
}

function highlight(s, kind, event, extra = {}) {
  push(s.highlights, { kind, ts: event.ts, seq: event.seq, from: s.agent, ...extra }, HIGHLIGHTS);
}

export function foldPanels(s, event) {
  const t = event.type;
  const d = event.data || {};
  const a = s.audio;
  if (t !== "audio.levels") push(s.timeline, { seq: event.seq, ts: event.ts, type: t, text: describe(event), kind: kindOf(t, d) }, TIMELINE);
  if (t === "stt.final" && d.text) {
    push(s.captions, { who: "user", text: d.text, ts: event.ts }, CAPTIONS);
  } else if (t === "tts.started") {
    if (d.text) push(s.captions, { who: "agent", text: d.text, ts: event.ts, reply: d.reply_id }, CAPTIONS);
    // without audio-level events, the agent speaks for audio_ms after its audio is sent
    a.outUntil = Math.max(a.outUntil, event.ts) + (d.audio_ms || 0) / 1000;
  } else if (t === "tts.interrupted") {
    a.outUntil = event.ts;
    for (const c of s.captions) {
      if (c.who === "agent" && c.reply === d.reply_id && d.unplayed_text && d.unplayed_text.includes(c.text)) c.cut = true;
    }
    highlight(s, "barge", event, { label: "barge-in" });
  } else if (t === "vad.speech_started") {
    a.inActive = true;
    a.inSince = event.ts;
  } else if (t === "vad.speech_stopped" || t === "session.ended") {
    a.inActive = false;
    if (t === "session.ended") a.outUntil = Math.min(a.outUntil, event.ts);
  } else if (t === "audio.levels" && Array.isArray(d.levels)) {
    push(a.envelopes, { dir: d.dir === "out" ? "out" : "in", ts: event.ts, hop: (d.hop_ms || 50) / 1000, levels: d.levels }, 16);
  } else if (t === "turn.latency") {
    push(s.latencies, { ts: event.ts, total_ms: d.total_ms, stt_ms: d.stt_ms, tts_ms: d.tts_ms }, LATENCIES);
  } else if (t === "tool.called") {
    const tool = d.tool || d.name || "tool";
    if (!s.tools.includes(tool)) push(s.tools, tool, 8);
    highlight(s, "tool", event, { to: tool, label: tool });
  } else if (t === "agent.handoff") {
    highlight(s, "handoff", event, { from: d.from || s.supervisor, to: agentNamed(d), label: "handoff" });
  } else if (ESCALATIONS.has(t)) {
    highlight(s, "escalation", event, { label: d.target ? `escalated to ${d.target}` : "escalated" });
  } else if (isDenial(t, d)) {
    highlight(s, "denial", event, { label: d.tool || d.kind || d.reason || "denied" });
  }
}

export function kindOf(type, data = {}) {
  if (type === "tts.interrupted") return "barge";
  if (ESCALATIONS.has(type)) return "escalation";
  if (isDenial(type, data)) return "denial";
  if (type.startsWith("tool.")) return "tool";
  if (type === "stt.final" || type === "agent.reply") return "speech";
  if (type.endsWith(".error") || type === "gateway.bad_message") return "error";
  return "info";
}

const quote = (text) => `“${String(text).slice(0, 120)}”`;

export function describe(event) {
  const d = event.data || {};
  switch (event.type) {
    case "session.started":
      return `${d.protocol || "call"} from ${d.caller || "unknown caller"}`;
    case "agent.state":
      return `${d.previous || "?"} → ${d.state}`;
    case "stt.final":
      return quote(d.text);
    case "agent.reply":
    case "tts.started":
      return quote(d.text);
    case "tts.interrupted":
      return `barge-in; heard ${quote(d.played_text || "")}`;
    case "turn.latency":
      return `${Math.round(d.total_ms)} ms (stt ${Math.round(d.stt_ms)}, tts ${Math.round(d.tts_ms)})`;
    case "agent.handoff":
      return `${d.from || "?"} → ${agentNamed(d) || "?"}`;
    case "tool.called":
      return d.tool || d.name || "";
    case "workflow.transition":
      return `${d.workflow || d.name || d.agent || ""}: ${d.from || "start"} → ${d.to}`;
    case "session.ended":
      return d.reason || "";
    case "call.transfer":
    case "call.escalated":
      return `${d.target || ""} ${d.reason || ""}`.trim();
    default: {
      const text = Object.entries(d).slice(0, 3).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
      return text.slice(0, 140);
    }
  }
}

// The audio level (0..1) of one side of a call at server time `now`: from `audio.levels`
// envelopes when the gateway sends them, otherwise from what the events say (caller speech
// between vad.speech_started/stopped, agent audio for tts.started's audio_ms), modulated
// at a syllable rate so the scene shows speech rather than a lamp.
export function levelAt(session, dir, now) {
  const a = session.audio;
  for (let i = a.envelopes.length - 1; i >= 0; i--) {
    const env = a.envelopes[i];
    if (env.dir !== dir) continue;
    const k = Math.floor((now - env.ts) / env.hop);
    if (k >= 0 && k < env.levels.length) return Math.max(0, Math.min(1, env.levels[k]));
  }
  const active = dir === "in" ? a.inActive : now < a.outUntil;
  if (!active) return 0;
  const phase = now * 2 * Math.PI;
  return 0.55 + 0.25 * Math.sin(phase * 4.1) * Math.sin(phase * 1.3 + (dir === "in" ? 1 : 0));
}

export function liveSessions(state) {
  return Object.values(state.sessions).filter((s) => s.live).sort((a, b) => a.started_at - b.started_at);
}

export function endedSessions(state) {
  return Object.values(state.sessions).filter((s) => !s.live).sort((a, b) => b.started_at - a.started_at);
}
