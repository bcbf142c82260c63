// <voxgate-call>: a call button that talks to a voxgate gateway over /ws/browser, or with
// transport="livekit" (data-transport) through a LiveKit room (livekit-call.js).
// widget.js creates one from its <script data-...> attributes; a page may also write
// <voxgate-call server="https://host"></voxgate-call> after importing this module.
//
// Page-facing API: the element's `stats`, `start()`, `stop()`, and DOM events
// `voxgate:state`, `voxgate:caption`, `voxgate:clear`, `voxgate:end` (docs/dashboard.md).
import * as P from "./protocol.js";
import { STYLE } from "./style.js";

const HERE = new URL(".", import.meta.url);

const LABELS = {
  idle: "Ready",
  connecting: "Connecting…",
  listening: "Listening",
  user_speaking: "Hearing you",
  thinking: "Thinking…",
  agent_speaking: "Speaking",
  ended: "Call ended",
  error: "Unavailable",
};

const THEME_ATTRS = {
  // data-* attribute -> CSS custom property
  accent: "--voxgate-accent",
  background: "--voxgate-bg",
  foreground: "--voxgate-fg",
  radius: "--voxgate-radius",
  font: "--voxgate-font",
};

export class VoxgateCall extends HTMLElement {
  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = `<style>${STYLE}</style>
      <div class="panel" part="panel">
        <div class="row">
          <button class="call" part="button" type="button" aria-pressed="false">
            <span class="dot" aria-hidden="true"></span><span class="label"></span>
          </button>
          <div class="state" part="state" role="status" aria-live="polite">
            <span class="text">${LABELS.idle}</span>
            <span class="meter" aria-hidden="true"><i></i></span>
          </div>
        </div>
        <ul class="captions" part="captions" role="log" aria-live="polite" aria-label="Call captions"></ul>
        <div class="error" role="alert"></div>
      </div>`;
    this.$ = (sel) => root.querySelector(sel);
    this.button = this.$("button.call");
    this.button.addEventListener("click", () => (this.active ? this.stop() : this.start()));
    this.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.active) this.stop();
    });
    this.active = false;
    this.stats = newStats();
    this._labels();
  }

  connectedCallback() {
    for (const [attr, prop] of Object.entries(THEME_ATTRS)) {
      const value = this.getAttribute(attr);
      if (value) this.style.setProperty(prop, value);
    }
    this._labels();
  }

  get serverUrl() {
    const url = new URL(this.getAttribute("server") || location.origin, location.href);
    if (!url.pathname.endsWith("/")) url.pathname += "/";
    return url;
  }

  _labels() {
    const label = this.getAttribute("label") || "Talk to us";
    this.$(".label").textContent = this.active ? "End call" : label;
    this.button.setAttribute("aria-label", this.active ? "End voice call" : `Start voice call: ${label}`);
    this.button.setAttribute("aria-pressed", String(this.active));
  }

  _setState(state) {
    this.stats.state = state;
    this.$(".state .text").textContent = LABELS[state] || state;
    this.setAttribute("state", state);
    this.dispatchEvent(new CustomEvent("voxgate:state", { detail: { state }, bubbles: true, composed: true }));
  }

  _level(level) {
    this.style.setProperty("--level", level.toFixed(3));
  }

  _caption(who, text, id) {
    const list = this.$(".captions");
    const last = list.lastElementChild;
    // a sentence spoken in pieces (the first clause synthesised on its own) reads as one
    if (who === "agent" && id && last && last.dataset.reply === id && !/[.?!]["')]?$/.test(last.lastChild.textContent)) {
      last.lastChild.textContent += " " + text;
      this.stats.captions.push({ who, text, at: Date.now() });
      this.dispatchEvent(new CustomEvent("voxgate:caption", { detail: { who, text }, bubbles: true, composed: true }));
      return;
    }
    const item = document.createElement("li");
    item.className = who;
    if (id) item.dataset.reply = id;
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who === "agent" ? "Agent:" : "You:";
    item.append(name, document.createTextNode(text));
    list.append(item);
    while (list.children.length > 30) list.firstElementChild.remove();
    list.scrollTop = list.scrollHeight;
    this.stats.captions.push({ who, text, at: Date.now() });
    this.dispatchEvent(new CustomEvent("voxgate:caption", { detail: { who, text }, bubbles: true, composed: true }));
  }

  async start() {
    if (this.active) return;
    this.active = true;
    this.stats = newStats();
    this.stats.startedAt = Date.now();
    this.$(".captions").replaceChildren();
    this.$(".error").textContent = "";
    this._labels();
    this._setState("connecting");
    try {
      await this._open();
    } catch (err) {
      this._fail(err instanceof Error ? err.message : String(err));
    }
  }

  async _open() {
    if (this.getAttribute("transport") === "livekit") {
      // loaded only here: livekit-client is a large module that WebSocket calls never need
      const { LiveKitCall } = await import("./livekit-call.js");
      this.lk = new LiveKitCall(this);
      return this.lk.open();
    }
    let ctx;
    try {
      ctx = new AudioContext({ sampleRate: P.SERVER_SAMPLE_RATE, latencyHint: "interactive" });
    } catch {
      ctx = new AudioContext({ latencyHint: "interactive" }); // browsers that cannot run at 16 kHz
    }
    this.ctx = ctx;
    // the context's rate if the server takes it as is, else the worklet resamples to 16 kHz
    const rate = P.CLIENT_SAMPLE_RATES.includes(ctx.sampleRate) ? ctx.sampleRate : P.SERVER_SAMPLE_RATE;
    await Promise.all([
      ctx.audioWorklet.addModule(new URL("capture-worklet.js", HERE)),
      ctx.audioWorklet.addModule(new URL("playback-worklet.js", HERE)),
    ]);
    this.mic = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    if (!this.active) return this._cleanup();
    const source = ctx.createMediaStreamSource(this.mic);
    this.capture = new AudioWorkletNode(ctx, "voxgate-capture", {
      numberOfOutputs: 0,
      processorOptions: { targetRate: rate },
    });
    source.connect(this.capture);
    this.playback = new AudioWorkletNode(ctx, "voxgate-playback", {
      numberOfInputs: 0,
      outputChannelCount: [1],
    });
    this.playback.connect(ctx.destination);
    this.stats.sampleRate = rate;
    this.stats.contextRate = ctx.sampleRate;
    this.stats.outputLatencyMs = 1000 * ((ctx.baseLatency || 0) + (ctx.outputLatency || 0));
    await ctx.resume();

    const url = new URL("ws/browser", this.serverUrl);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    // a signed call token (data-token), minted by POST /api/tokens or by the demo page
    const token = this.getAttribute("token");
    if (token) url.searchParams.set("token", token);
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      const caller = this.getAttribute("caller") || null;
      ws.send(P.encodeStart({ sampleRate: rate, caller, metadata: { page: location.pathname, widget: true } }));
    };
    ws.onmessage = (e) => this._onServer(e.data);
    ws.onclose = (e) => {
      if (e.code === 4401 || e.code === 4403) {
        this.$(".error").textContent = `Not allowed to call: ${e.reason || "missing or expired token"}.`;
      } else if (e.code === 4429) {
        // a limit of the gateway's (docs/security.md): the reason says which, and when to retry
        this.$(".error").textContent = `The line is busy: ${e.reason || "too many calls"}.`;
      }
      this._ended(this.stats.endReason || `connection closed (${e.code})`);
    };
    ws.onerror = () => {
      if (!this.$(".error").textContent) this.$(".error").textContent = "Could not reach the voice service.";
    };

    this.capture.port.onmessage = (e) => {
      const m = e.data;
      if (m.type === "frame") {
        if (ws.readyState === WebSocket.OPEN && this.stats.sessionId) {
          ws.send(m.pcm);
          this.stats.framesSent += 1;
          if (this.stats.captureTimes.length < 3000) this.stats.captureTimes.push(m.at);
        }
      } else if (m.type === "level") {
        this.stats.micLevel = m.level;
        if (this.stats.state !== "agent_speaking") this._level(m.level);
      }
    };
    this.playback.port.onmessage = (e) => this._onSpeaker(e.data);
  }

  _onServer(data) {
    let m;
    try {
      m = P.decodeServer(data);
    } catch (err) {
      this.stats.protocolErrors += 1;
      return;
    }
    switch (m.type) {
      case "audio":
        this.playback.port.postMessage({ type: "audio", pcm: m.pcm.buffer, index: this.stats.chunksReceived++ }, [m.pcm.buffer]);
        break;
      case "mark":
        this.playback.port.postMessage({ type: "mark", name: m.name });
        break;
      case "clear":
        // barge-in: the speaker drops everything at its next render quantum
        this.playback.port.postMessage({ type: "clear" });
        this.stats.clears += 1;
        this.stats.lastClearAt = Date.now(); // same clock as the worklet's clearedAt
        this.dispatchEvent(new CustomEvent("voxgate:clear", { bubbles: true, composed: true }));
        break;
      case "session":
        this.stats.sessionId = m.session_id;
        break;
      case "event":
        this._onEvent(m.event);
        break;
      case "error":
        this.$(".error").textContent = m.message;
        this.stats.errors.push(m.code);
        break;
      case "end":
        this.stats.endReason = m.reason;
        break;
      default:
        break; // pong, and message types added later
    }
  }

  _onEvent(event) {
    const d = event.data || {};
    this.stats.events += 1;
    if (event.type === "agent.state" && this.stats.state !== "ended") {
      this._setState(d.state === "idle" ? "listening" : d.state);
    } else if (event.type === "stt.final" && d.text) {
      this._caption("user", d.text);
    } else if (event.type === "tts.started" && d.text) {
      this._caption("agent", d.text, d.reply_id);
    } else if (event.type === "tts.interrupted") {
      for (const li of this.$(".captions").querySelectorAll(`li.agent[data-reply="${CSS.escape(d.reply_id || "")}"]`)) {
        if (d.unplayed_text && d.unplayed_text.includes(li.lastChild.textContent)) li.classList.add("cut");
      }
    }
  }

  _onSpeaker(m) {
    const s = this.stats;
    if (m.type === "played") {
      s.marksEchoed += 1;
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(P.encodeMark(m.name));
    } else if (m.type === "level") {
      s.speakerLevel = m.level;
      s.queuedMs = (m.queued / this.ctx.sampleRate) * 1000;
      s.playedMs = (m.played / this.ctx.sampleRate) * 1000;
      s.playing = m.queued > 0;
      if (this.stats.state === "agent_speaking") this._level(m.level);
    } else if (m.type === "started") {
      if (s.firstAudioAt === null) s.firstAudioAt = m.at;
      if (s.chunkStarts.length < 3000) s.chunkStarts.push({ index: m.index, at: m.at });
    } else if (m.type === "cleared") {
      s.droppedMs += (m.dropped / this.ctx.sampleRate) * 1000;
      s.clearedAt = m.at;
      if (s.lastClearAt && s.clearDelaysMs.length < 100) s.clearDelaysMs.push(m.at - s.lastClearAt);
      s.playing = false;
      s.queuedMs = 0;
    }
  }

  stop() {
    if (!this.active) return;
    if (this.lk) {
      this.stats.endReason = "you hung up";
      this.lk.hangUp();
    } else if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.stats.endReason = "you hung up";
      this.ws.send(P.encodeStop()); // the server answers with `end` and closes
      setTimeout(() => this._ended("you hung up"), 1500);
    } else {
      this._ended("you hung up");
    }
  }

  _fail(message) {
    this.$(".error").textContent = message;
    this._cleanup();
    this.active = false;
    this._labels();
    this._setState("error");
  }

  _ended(reason) {
    if (!this.active) return;
    this.active = false;
    this._cleanup();
    this._labels();
    this._setState("ended");
    this._level(0);
    this.dispatchEvent(new CustomEvent("voxgate:end", { detail: { reason }, bubbles: true, composed: true }));
  }

  _cleanup() {
    if (this.capture) this.capture.port.postMessage("stop");
    if (this.mic) for (const track of this.mic.getTracks()) track.stop();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
    if (this.ctx && this.ctx.state !== "closed") this.ctx.close();
    if (this.lk) this.lk.close();
    this.mic = this.capture = this.playback = this.ws = this.lk = null;
  }
}

function newStats() {
  return {
    state: "idle", transport: "websocket", sessionId: null, startedAt: null, firstAudioAt: null, sampleRate: null, contextRate: null, outputLatencyMs: 0,
    framesSent: 0, chunksReceived: 0, marksEchoed: 0, clears: 0, lastClearAt: null, clearedAt: null,
    droppedMs: 0, queuedMs: 0, playedMs: 0, playing: false, micLevel: 0, speakerLevel: 0,
    events: 0, captions: [], errors: [], protocolErrors: 0, endReason: null,
    captureTimes: [], chunkStarts: [], clearDelaysMs: [],
  };
}

if (!customElements.get("voxgate-call")) customElements.define("voxgate-call", VoxgateCall);

// Called by widget.js with its <script> element: build the element from the data-* attributes.
export function mount(script, server) {
  const el = document.createElement("voxgate-call");
  el.setAttribute("server", script.dataset.server || server);
  for (const [key, value] of Object.entries(script.dataset)) {
    if (key !== "server" && key !== "target") el.setAttribute(key, value);
  }
  const target = script.dataset.target ? document.querySelector(script.dataset.target) : null;
  if (target) target.append(el);
  else if (script.dataset.position && script.dataset.position !== "inline") document.body.append(el);
  else script.after(el);
  return el;
}
