// The dashboard: the live stream folded by the reducer, drawn once per animation frame by
// the 3D scene and the panels. `window.voxgateDashboard` exposes the state and a few
// figures for the browser tests and benchmarks (docs/dashboard.md).
import { Api } from "./api.js";
import { drawWorkflow, renderCallLists, renderDetails } from "./panels.js";
import { apply, createState, endedSessions, liveSessions } from "./reducer.js";
import { Replay } from "./replay.js";
import { DashboardScene } from "./scene.js";

const params = new URLSearchParams(location.search);
const TOKEN_KEY = "voxgate.adminToken";
const api = new Api(location.origin, {
  token: sessionStorage.getItem(TOKEN_KEY),
  onUnauthorized: () => {
    // the gateway has an admin token: ask for it once, keep it for this tab, start again
    const token = window.prompt("voxgate admin token (VOXGATE_ADMIN_TOKEN):");
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token.trim());
      location.reload();
    }
  },
});
const state = createState();
const root = document.body;
const ui = {
  focus: params.get("session"),
  run: null, // a workflow run in focus: {id, name, state}
  replay: null, // {replay: Replay, id}
  history: [], // finished calls from /api/sessions (older than this page)
  loaded: {}, // finished calls folded from their events when focused: id -> session
  dirty: new Set(),
  listsDue: true, // redraw the call lists now
  listsStale: false, // redraw them soon
  pending: [], // events applied since the last frame: {seq, ts}
};
const stats = {
  fps: 0, frames: 0, messages: 0, lastFrameMs: 0,
  trace: params.has("trace") ? [] : null, // [{seq, ts, shownAt}] for the latency benchmark
};
let skew = 0; // local clock minus server clock, from the freshest event
const serverNow = () => Date.now() / 1000 - skew;

const scene = new DashboardScene(document.getElementById("scene"), { onPick: (id) => actions.focus(id) });
const graphs = new Map(); // workflow name -> graph (or a pending promise)

const actions = {
  focus(id) {
    ui.focus = ui.focus === id ? null : id;
    ui.run = null;
    ui.dirty.add(id);
    ui.listsDue = true;
    if (ui.focus && !state.sessions[id] && !ui.loaded[id]) load(id);
  },
  focusRun(run) {
    ui.run = run;
    ui.focus = null;
    ui.listsDue = true;
    showWorkflow(run.name, run.state);
  },
  async replay(id) {
    try {
      const events = await api.events(id);
      ui.replay = { replay: new Replay(events, { speed: Number(speedSelect.value) }), id };
      ui.replay.replay.play();
      ui.focus = id;
      document.getElementById("replay-bar").hidden = false;
      document.getElementById("replay-title").textContent = `Replaying ${id.slice(0, 8)}`;
      ui.dirty.add(id);
    } catch (err) {
      setStatus(`replay failed: ${err.message}`);
    }
  },
  exitReplay() {
    ui.replay = null;
    document.getElementById("replay-bar").hidden = true;
    ui.listsDue = true;
    if (ui.focus) ui.dirty.add(ui.focus);
  },
};

function setStatus(text, ok = true) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.dataset.ok = String(ok);
}

api.stream({
  session: params.get("only"),
  onStatus: (connected) => {
    state.connected = connected;
    setStatus(connected ? "live" : "reconnecting…", connected);
  },
  onMessage: (message) => {
    stats.messages += 1;
    const changed = apply(state, message);
    for (const id of changed) ui.dirty.add(id);
    if (changed.length) ui.listsStale = true;
    if (message.type === "event") {
      skew = Date.now() / 1000 - message.event.ts;
      if (stats.trace) ui.pending.push({ seq: message.event.seq, ts: message.event.ts });
      if (message.event.type === "session.started" || message.event.type === "session.ended") {
        ui.listsDue = true;
        if (message.event.type === "session.ended") loadHistory();
      }
    } else if (message.type === "run") {
      ui.listsDue = true;
      if (ui.run && ui.run.id === message.run.id) actions.focusRun(message.run);
    } else if (message.type === "snapshot") {
      ui.listsDue = true;
    }
  },
});

// A finished call that is not in the live state: fold its events for the panels.
async function load(id) {
  try {
    const replay = new Replay(await api.events(id));
    replay.seek(1);
    ui.loaded[id] = replay.state.sessions[id];
    ui.dirty.add(id);
  } catch (err) {
    setStatus(err.message, false);
  }
}

async function loadHistory() {
  try {
    ui.history = (await api.sessions(60)).filter((s) => !s.live);
    ui.listsDue = true;
  } catch (err) {
    setStatus(err.message, false);
  }
}
loadHistory();

async function showWorkflow(name, current) {
  const box = document.getElementById("workflow");
  if (!name) {
    drawWorkflow(box, null, null);
    return;
  }
  let graph = graphs.get(name);
  if (!graph) {
    // a voice agent's dialogue flow, or else an engine workflow of that name
    graph = api.flow(name).catch(() => api.workflow(name)).then((w) => w.graph).catch(() => null);
    graphs.set(name, graph);
  }
  drawWorkflow(box, await graph, current);
}

function focusedSession() {
  if (ui.replay && ui.replay.id === ui.focus) return ui.replay.replay.state.sessions[ui.focus] || null;
  return (ui.focus && (state.sessions[ui.focus] || ui.loaded[ui.focus])) || null;
}

const speedSelect = document.getElementById("replay-speed");
speedSelect.addEventListener("change", () => ui.replay && ui.replay.replay.setSpeed(Number(speedSelect.value)));
document.getElementById("replay-toggle").addEventListener("click", () => {
  if (!ui.replay) return;
  const r = ui.replay.replay;
  if (r.playing) r.pause();
  else r.play();
});
document.getElementById("replay-exit").addEventListener("click", () => actions.exitReplay());
const progress = document.getElementById("replay-progress");
progress.addEventListener("input", () => ui.replay && ui.replay.replay.seek(Number(progress.value) / 1000));
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") {
    if (ui.replay) actions.exitReplay();
    else if (ui.focus) actions.focus(ui.focus);
  }
});

let last = performance.now();
let fpsFrames = 0;
let fpsSince = last;
let listsAt = 0;
let workflowKey = "";

function frame(t) {
  const dt = Math.min(0.1, (t - last) / 1000);
  last = t;
  let sessions;
  let now;
  if (ui.replay) {
    const r = ui.replay.replay;
    for (const id of r.tick()) ui.dirty.add(id);
    now = r.time();
    sessions = Object.values(r.state.sessions);
    progress.value = String(Math.round(r.progress * 1000));
    document.getElementById("replay-toggle").textContent = r.playing ? "Pause" : "Play";
  } else {
    now = serverNow();
    sessions = liveSessions(state);
  }
  scene.render(sessions, now, ui.focus, dt);

  // the lists at most 4 times a second, unless a call started or ended
  if (ui.listsDue || (ui.listsStale && t - listsAt > 250)) {
    const ended = endedSessions(state);
    const seen = new Set(ended.map((s) => s.id));
    renderCallLists(root, {
      live: liveSessions(state),
      ended: ended.concat(ui.history.filter((s) => !seen.has(s.id) && !state.sessions[s.id])),
      runs: Object.values(state.runs).sort((a, b) => b.updated_ts - a.updated_ts),
      focusId: ui.run ? ui.run.id : ui.focus,
      now: serverNow(),
      actions,
    });
    ui.listsDue = ui.listsStale = false;
    listsAt = t;
  }
  const focused = focusedSession();
  if (!ui.run && (ui.dirty.has(ui.focus) || (focused && focused.live && fpsFrames === 0))) {
    renderDetails(root, focused, now);
    const wf = focused && focused.workflow;
    const key = wf ? `${wf.name}:${wf.state}` : "";
    if (key !== workflowKey || !wf) {
      workflowKey = key;
      showWorkflow(wf && wf.name, wf && wf.state);
    }
  } else if (ui.run) {
    renderDetails(root, null, now);
    document.getElementById("details").hidden = false;
    document.getElementById("focus-title").textContent = `Workflow run ${ui.run.id}`;
    document.getElementById("focus-meta").textContent = `${ui.run.name} · ${ui.run.status} · ${ui.run.state || ""}`;
  }
  ui.dirty.clear();
  if (stats.trace && ui.pending.length) {
    const shownAt = Date.now();
    for (const p of ui.pending) stats.trace.push({ ...p, shownAt });
    ui.pending = [];
  }

  fpsFrames += 1;
  stats.frames += 1;
  if (t - fpsSince >= 1000) {
    stats.fps = (fpsFrames * 1000) / (t - fpsSince);
    document.getElementById("fps").textContent = `${stats.fps.toFixed(0)} fps`;
    fpsFrames = 0;
    fpsSince = t;
  }
  stats.lastFrameMs = performance.now() - t;
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

window.voxgateDashboard = { state, ui, stats, scene, api, actions, serverNow };
