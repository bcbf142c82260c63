// The widget's LiveKit transport (data-transport="livekit"): a call through a LiveKit room
// over WebRTC, answered by a `voxgate livekit-worker`, instead of over /ws/browser.
//
// 1. POST /api/livekit/token (with the widget's data-token) buys a new room and a token;
// 2. livekit-client (vendored from npm, ../vendor/) joins it and publishes the microphone
//    (the browser's own echo cancellation, noise suppression and gain control, and Opus);
// 3. the agent's audio track plays through an <audio> element; an analyser beside it
//    drives the level meter and tells when agent audio is heard;
// 4. the worker's events (data topic `voxgate.events`, docs/deployment.md) drive the same
//    states and captions as on the WebSocket; an agent that sends none (any LiveKit
//    agent) still gets captions from its `lk.transcription` text streams.
// Barge-in needs nothing here: the worker drops the agent's queued audio itself.
import { Room, RoomEvent, Track } from "../vendor/livekit-client.esm.js";

export const EVENTS_TOPIC = "voxgate.events";
export const TRANSCRIPTION_TOPIC = "lk.transcription";
const AUDIBLE = 0.01; // RMS (full scale 1) above which agent audio counts as heard
const LEVEL_EVERY_MS = 20;
// a self-hosted LiveKit server does not queue a room when every worker is full: it gets
// no agent at all (docs/deployment.md), and the caller would wait in silence
export const AGENT_WAIT_MS = 20000;

export class LiveKitCall {
  constructor(widget) {
    this.w = widget;
    this.room = null;
    this.ctx = null;
    this.meters = {}; // "mic" | "agent" -> AnalyserNode
    this.elements = [];
    this.timer = null;
    this.agentTimer = null;
  }

  async open() {
    const w = this.w;
    const s = Object.assign(w.stats, { transport: "livekit", room: null, identity: null,
      agentAudioMs: 0, firstAudioAt: null, audibleAt: [], joinedAt: null, agentTrackAt: null });
    // created on the click, so it may start (autoplay policy); only measures levels
    this.ctx = new AudioContext({ latencyHint: "interactive" });
    const grant = await this._roomToken();
    if (!w.active) return;
    Object.assign(s, { room: grant.room, identity: grant.identity });
    const room = new Room({ adaptiveStream: false, dynacast: false });
    this.room = room;
    room.on(RoomEvent.DataReceived, (payload, _who, _kind, topic) => {
      if (topic === EVENTS_TOPIC) this._event(payload);
    });
    room.registerTextStreamHandler(TRANSCRIPTION_TOPIC, (reader, who) => this._transcription(reader, who));
    room.on(RoomEvent.TrackSubscribed, (track) => {
      if (track.kind === Track.Kind.Audio) this._play(track);
    });
    room.on(RoomEvent.Disconnected, (reason) => w._ended(s.endReason || `room closed (${reason})`));
    room.on(RoomEvent.RoomMetadataChanged, (metadata) => this._metadata(metadata));
    await room.connect(grant.url, grant.token);
    s.joinedAt = Date.now();
    this._metadata(room.metadata);
    if (!w.active) return room.disconnect();
    const mic = await room.localParticipant.setMicrophoneEnabled(true, {
      channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true,
    });
    if (mic && mic.track) this._meter("mic", mic.track.mediaStreamTrack);
    this.timer = setInterval(() => this._levels(), LEVEL_EVERY_MS);
    this.agentTimer = setTimeout(() => {
      if (w.active && !this.meters.agent) w._fail("No agent answered. Please try again in a moment.");
    }, AGENT_WAIT_MS);
    s.sampleRate = 48000; // Opus in the room; the worker resamples to 16 kHz
    s.contextRate = this.ctx.sampleRate;
  }

  async _roomToken() {
    const w = this.w;
    const response = await fetch(new URL("api/livekit/token", w.serverUrl), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: w.getAttribute("token") || "", caller: w.getAttribute("caller") || null }),
    });
    const body = await response.json().catch(() => ({}));
    if (response.ok) return body;
    const why = body.detail || `HTTP ${response.status}`;
    if (response.status === 429) throw new Error(`The line is busy: ${why}.`);
    if (response.status === 401 || response.status === 403) throw new Error(`Not allowed to call: ${why}.`);
    throw new Error(why);
  }

  // the worker names the call's session in the room's metadata (gateway/livekit/resume.py):
  // the same id as the WebSocket's `session` message, for /api/sessions/{id}
  _metadata(metadata) {
    try {
      const id = JSON.parse(metadata || "{}")["voxgate.session"];
      if (id) this.w.stats.sessionId = id;
    } catch {
      // not voxgate's metadata
    }
  }

  _event(payload) {
    let message;
    try {
      message = JSON.parse(new TextDecoder().decode(payload));
    } catch {
      this.w.stats.protocolErrors += 1;
      return;
    }
    // the worker sends {seq, ts, type, ...data}; the widget's handler takes {type, data}
    const { seq, ts, type, ...data } = message;
    const s = this.w.stats;
    if (type === "session.ended") s.endReason = data.reason || s.endReason;
    if (type === "tts.interrupted") s.clears += 1;
    if (type === "call.refused") {
      // the worker was full or draining: nobody will answer in this room
      this.w.$(".error").textContent = `The line is busy: ${data.reason || "too many calls"}.`;
      s.errors.push(data.code);
      s.endReason = "line busy";
      this.hangUp();
    }
    this.w._onEvent({ seq, ts, type, data });
  }

  async _transcription(reader, who) {
    const text = await reader.readAll();
    if (this.w.stats.events > 0 || !text) return; // voxgate's events caption the call already
    const speaker = (reader.info.attributes || {})["voxgate.speaker"];
    const mine = speaker ? speaker === "caller" : who.identity === this.room.localParticipant.identity;
    this.w._caption(mine ? "user" : "agent", text);
  }

  _play(track) {
    if (this.w.stats.agentTrackAt === null) this.w.stats.agentTrackAt = Date.now();
    const element = track.attach(); // <audio autoplay>, what the caller hears
    element.hidden = true;
    this.w.shadowRoot.append(element);
    this.elements.push(element);
    // Chromium feeds a remote WebRTC track to Web Audio only while a media element plays it
    this._meter("agent", track.mediaStreamTrack);
  }

  _meter(name, mediaStreamTrack) {
    const analyser = this.ctx.createAnalyser();
    analyser.fftSize = 1024;
    this.ctx.createMediaStreamSource(new MediaStream([mediaStreamTrack])).connect(analyser);
    this.meters[name] = analyser;
    this.ctx.resume();
  }

  _levels() {
    const w = this.w;
    const s = w.stats;
    const mic = rms(this.meters.mic);
    const agent = rms(this.meters.agent);
    s.micLevel = mic;
    s.speakerLevel = agent;
    s.playing = agent > AUDIBLE;
    if (s.playing) {
      const now = Date.now();
      if (s.firstAudioAt === null) s.firstAudioAt = now;
      s.agentAudioMs += LEVEL_EVERY_MS;
      if (s.audibleAt.length < 3000) s.audibleAt.push(now);
    }
    w._level(Math.min(1, 4 * (s.state === "agent_speaking" ? agent : mic)));
  }

  // the caller hangs up: leaving the room ends the call (the worker sees them go)
  hangUp() {
    if (this.room) this.room.disconnect();
    else this.w._ended("you hung up");
  }

  close() {
    clearInterval(this.timer);
    clearTimeout(this.agentTimer);
    if (this.room) {
      this.room.removeAllListeners(RoomEvent.Disconnected);
      this.room.disconnect();
    }
    for (const element of this.elements) element.remove();
    if (this.ctx && this.ctx.state !== "closed") this.ctx.close();
    this.room = this.ctx = null;
    this.elements = [];
  }
}

function rms(analyser) {
  if (!analyser) return 0;
  const samples = new Float32Array(analyser.fftSize);
  analyser.getFloatTimeDomainData(samples);
  let sum = 0;
  for (const x of samples) sum += x * x;
  return Math.sqrt(sum / samples.length);
}
