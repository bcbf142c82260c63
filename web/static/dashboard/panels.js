// The dashboard's side panels: the call lists, and for the focused call its captions,
// latency chart, workflow diagram and event timeline. Plain DOM and SVG; redrawn only
// when the reducer says a session changed.
import { NODE_H, layout } from "./graph.js";
import { kindOf } from "./reducer.js";

const h = (tag, attrs = {}, ...children) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  el.append(...children.filter((c) => c !== null && c !== undefined));
  return el;
};

export const clock = (ts) => new Date(ts * 1000).toLocaleTimeString([], { hour12: false });
const duration = (s) => {
  const secs = Math.max(0, Math.round(s));
  return `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, "0")}`;
};

function callItem(s, focusId, now, actions) {
  const who = s.caller || (s.call_sid ? s.call_sid.slice(0, 10) : s.id.slice(0, 8));
  const length = (s.ended_at ?? now) - s.started_at;
  const button = h(
    "button",
    { class: "call", type: "button", "aria-pressed": String(s.id === focusId), "data-session": s.id, onclick: () => actions.focus(s.id) },
    h("span", { class: `chip state-${s.state}` }, s.state.replace("_", " ")),
    h("span", { class: "who" }, who),
    h("span", { class: "meta" }, `${s.agent} · ${s.turns} turns · ${duration(length)}`),
  );
  const flags = [];
  if (s.barge_ins) flags.push(h("span", { class: "flag barge", title: "barge-ins" }, `⤫${s.barge_ins}`));
  if (s.escalations) flags.push(h("span", { class: "flag escalation", title: "escalations" }, `↑${s.escalations}`));
  if (s.denials) flags.push(h("span", { class: "flag denial", title: "policy denials" }, `⊘${s.denials}`));
  const replay = s.live ? null : h("button", { class: "replay", type: "button", "aria-label": `Replay call from ${who}`, onclick: () => actions.replay(s.id) }, "▶ replay");
  return h("li", { class: s.live ? "live" : "ended" }, button, h("span", { class: "flags" }, ...flags), replay);
}

export function renderCallLists(root, { live, ended, runs, focusId, now, actions }) {
  const liveList = root.querySelector("#live-calls");
  liveList.replaceChildren(...live.map((s) => callItem(s, focusId, now, actions)));
  if (!live.length) liveList.append(h("li", { class: "empty" }, "No live calls"));
  root.querySelector("#live-count").textContent = String(live.length);
  const endedList = root.querySelector("#ended-calls");
  endedList.replaceChildren(...ended.slice(0, 30).map((s) => callItem(s, focusId, now, actions)));
  const runList = root.querySelector("#runs");
  runList.replaceChildren(
    ...runs.slice(0, 20).map((r) =>
      h("li", {}, h("button", { class: "run", type: "button", "data-run": r.id, "aria-pressed": String(r.id === focusId), onclick: () => actions.focusRun(r) },
        h("span", { class: `chip run-${r.status}` }, r.status), h("span", { class: "who" }, r.name), h("span", { class: "meta" }, r.state || ""))),
    ),
  );
}

export function renderDetails(root, session, now) {
  const title = root.querySelector("#focus-title");
  const details = root.querySelector("#details");
  details.hidden = !session;
  if (!session) {
    title.textContent = "Click a call to focus it";
    return;
  }
  title.textContent = session.caller || session.id;
  root.querySelector("#focus-meta").textContent = [
    session.protocol, session.state.replace("_", " "), `agent ${session.agent}`,
    session.workflow ? `${session.workflow.name}: ${session.workflow.state}` : null,
    session.live ? `${duration(now - session.started_at)}` : `ended: ${session.end_reason || ""}`,
  ].filter(Boolean).join(" · ");
  const captions = root.querySelector("#captions");
  captions.replaceChildren(
    ...session.captions.slice(-14).map((c) =>
      h("li", { class: `${c.who}${c.cut ? " cut" : ""}` }, h("span", { class: "who" }, c.who === "agent" ? "Agent" : "Caller"), c.text)),
  );
  captions.scrollTop = captions.scrollHeight;
  const timeline = root.querySelector("#timeline");
  const follow = timeline.scrollTop + timeline.clientHeight >= timeline.scrollHeight - 8;
  timeline.replaceChildren(
    ...session.timeline.slice(-80).map((e) =>
      h("li", { class: `kind-${e.kind || kindOf(e.type)}`, "data-seq": e.seq }, h("time", {}, clock(e.ts)), h("b", {}, e.type), h("span", {}, e.text))),
  );
  if (follow) timeline.scrollTop = timeline.scrollHeight;
  drawLatency(root.querySelector("#latency"), session.latencies);
}

// Per-turn latency: stacked bars (STT, the rest, TTS) of each turn's total_ms.
export function drawLatency(canvas, latencies) {
  const g = canvas.getContext("2d");
  const w = (canvas.width = canvas.clientWidth || 320);
  const ht = (canvas.height = canvas.clientHeight || 110);
  g.clearRect(0, 0, w, ht);
  const items = latencies.slice(-24);
  const label = canvas.nextElementSibling;
  if (!items.length) {
    if (label) label.textContent = "no turns yet";
    return;
  }
  const top = Math.max(1000, ...items.map((l) => l.total_ms || 0));
  const barW = Math.min(28, (w - 30) / items.length - 4);
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#64748b";
  g.fillText(`${Math.round(top)} ms`, 2, 11);
  items.forEach((l, i) => {
    const x = 30 + i * (barW + 4);
    const scale = (v) => ((v || 0) / top) * (ht - 18);
    const stt = scale(l.stt_ms);
    const tts = scale(l.tts_ms);
    const total = scale(l.total_ms);
    const rest = Math.max(0, total - stt - tts);
    let y = ht;
    for (const [height, color] of [[stt, "#38bdf8"], [rest, "#475569"], [tts, "#a78bfa"]]) {
      g.fillStyle = color;
      g.fillRect(x, y - height, barW, height);
      y -= height;
    }
  });
  const last = items[items.length - 1];
  if (label) label.textContent = `last turn ${Math.round(last.total_ms)} ms: stt ${Math.round(last.stt_ms)}, tts ${Math.round(last.tts_ms)} (${items.length} turns)`;
}

const SVG = "http://www.w3.org/2000/svg";
const s = (tag, attrs = {}) => {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
};

// The workflow's states as boxes in layers, edges as arrows, the current state lit.
export function drawWorkflow(container, graph, current) {
  if (!graph) {
    container.replaceChildren(h("p", { class: "muted" }, "No workflow on this call"));
    return;
  }
  const g = layout(graph);
  // drawn at 80 % scale; a big flow scrolls inside its box rather than shrinking to nothing
  const svg = s("svg", {
    viewBox: `0 0 ${g.width} ${g.height}`, width: Math.round(g.width * 0.8), height: Math.round(g.height * 0.8),
    role: "img", "aria-label": `workflow ${graph.name}, current state ${current || "none"}`,
  });
  const defs = s("defs");
  const marker = s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "6", markerHeight: "6", orient: "auto-start-reverse" });
  marker.append(s("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#64748b" }));
  defs.append(marker);
  svg.append(defs);
  for (const e of g.edges) {
    const [a, m, b] = e.points;
    svg.append(s("path", { d: `M ${a.x} ${a.y} Q ${m.x} ${m.y} ${b.x} ${b.y}`, class: `edge edge-${e.kind}`, "marker-end": "url(#arrow)" }));
  }
  for (const n of Object.values(g.nodes)) {
    const lit = n.id === current;
    const group = s("g", { class: `node kind-${n.kind}${lit ? " current" : ""}`, "data-state": n.id });
    group.append(s("rect", { x: n.x, y: n.y, width: n.w, height: n.h, rx: n.kind === "end" ? NODE_H / 2 : 6 }));
    const text = s("text", { x: n.x + n.w / 2, y: n.y + n.h / 2 + 4, "text-anchor": "middle" });
    text.textContent = n.id.length > 18 ? `${n.id.slice(0, 17)}…` : n.id;
    group.append(text);
    const tip = s("title");
    tip.textContent = n.label;
    group.append(tip);
    svg.append(group);
  }
  const heading = h("p", { class: "muted" }, `${graph.name}${current ? ` — in ${current}` : ""}`);
  container.replaceChildren(heading, svg);
  const lit = svg.querySelector(".node.current");
  if (lit) lit.scrollIntoView({ block: "nearest", inline: "nearest" });
}
