// The browser call protocol (docs/protocol.md, section 1) as the widget speaks it, and the
// audio pieces around it. No DOM and no Web Audio here, so node's test runner checks it
// (web/test/protocol.test.js) and both AudioWorklets import it.

export const SERVER_SAMPLE_RATE = 16000;
export const CLIENT_SAMPLE_RATES = [8000, 16000, 24000, 48000];
export const FRAME_SAMPLES = 320; // 20 ms at 16 kHz: what the page sends per binary frame
export const MAX_MESSAGE_BYTES = 64 * 1024;

export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

// --- client -> server ------------------------------------------------------------------

export function encodeStart({ sampleRate = SERVER_SAMPLE_RATE, caller = null, metadata } = {}) {
  if (!CLIENT_SAMPLE_RATES.includes(sampleRate)) {
    throw new ProtocolError(`unsupported sample rate ${sampleRate}`);
  }
  const message = { type: "start", sample_rate: sampleRate, caller };
  if (metadata !== undefined) message.metadata = metadata;
  return JSON.stringify(message);
}

export function encodeMark(name) {
  if (typeof name !== "string" || name === "") throw new ProtocolError("mark needs a name");
  return JSON.stringify({ type: "mark", name });
}

export const encodeStop = () => JSON.stringify({ type: "stop" });
export const encodePing = () => JSON.stringify({ type: "ping" });

export function encodeText(text) {
  if (typeof text !== "string" || text.trim() === "") throw new ProtocolError("text is empty");
  return JSON.stringify({ type: "text", text });
}

export function encodeDtmf(digit) {
  if (!/^[0-9*#A-D]$/.test(digit)) throw new ProtocolError(`not a DTMF digit: ${JSON.stringify(digit)}`);
  return JSON.stringify({ type: "dtmf", digit });
}

// --- server -> client ------------------------------------------------------------------

const FIELDS = {
  session: { session_id: "string" },
  mark: { name: "string" },
  clear: {},
  event: { event: "object" },
  error: { code: "string", message: "string" },
  end: { reason: "string" },
  pong: {},
};

// One server frame: a text frame as its message object, a binary frame as
// {type: "audio", pcm: Int16Array}. Unknown message types are returned as they are
// (the protocol lets either side add types); malformed frames throw ProtocolError.
export function decodeServer(data) {
  if (typeof data !== "string") {
    const bytes = data instanceof ArrayBuffer ? data : data.buffer;
    if (bytes.byteLength % 2 !== 0) {
      throw new ProtocolError(`odd audio frame: ${bytes.byteLength} bytes`);
    }
    return { type: "audio", pcm: new Int16Array(bytes.slice(0)) };
  }
  let message;
  try {
    message = JSON.parse(data);
  } catch {
    throw new ProtocolError("malformed JSON from the server");
  }
  if (message === null || typeof message !== "object" || Array.isArray(message)) {
    throw new ProtocolError("a server message must be a JSON object");
  }
  if (typeof message.type !== "string") throw new ProtocolError('missing field "type"');
  const fields = FIELDS[message.type];
  if (fields === undefined) return message;
  for (const [field, kind] of Object.entries(fields)) {
    const value = message[field];
    const ok = kind === "object" ? value !== null && typeof value === "object" : typeof value === kind;
    if (!ok) throw new ProtocolError(`${message.type}: missing or wrong field "${field}"`);
  }
  return message;
}

// --- audio -----------------------------------------------------------------------------

export function floatToPcm16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
  }
  return out;
}

export function pcm16ToFloat(pcm) {
  const out = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) out[i] = pcm[i] / 32768;
  return out;
}

export function rms(samples) {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  return samples.length ? Math.sqrt(sum / samples.length) : 0;
}

// A level in 0..1 from an RMS: -60 dBFS and below is 0, 0 dBFS is 1.
export function levelOf(rmsValue) {
  if (rmsValue <= 0) return 0;
  return Math.max(0, Math.min(1, 1 + (20 * Math.log10(rmsValue)) / 60));
}

// Streaming linear-interpolation resampler for the microphone when the AudioContext could
// not run at 16 kHz. Speech is band-limited to well under 8 kHz by any microphone path;
// a box pre-filter over the decimation ratio removes what aliasing would fold into it.
export class Resampler {
  constructor(from, to) {
    this.from = from;
    this.to = to;
    this.step = from / to;
    this.pos = 0; // the next output sample's position in input samples (0: `last`)
    this.last = 0; // the previous block's final (filtered) sample
    this.width = Math.max(1, Math.round(this.step));
    this.history = new Float32Array(this.width);
    this.hi = 0;
  }

  process(input) {
    if (this.from === this.to) return Float32Array.from(input);
    const filtered = new Float32Array(input.length);
    for (let i = 0; i < input.length; i++) {
      this.history[this.hi] = input[i];
      this.hi = (this.hi + 1) % this.width;
      let sum = 0;
      for (let k = 0; k < this.width; k++) sum += this.history[k];
      filtered[i] = sum / this.width;
    }
    const out = [];
    // position 0 is `last`, position k is filtered[k - 1]
    while (this.pos < input.length) {
      const i = Math.floor(this.pos);
      const frac = this.pos - i;
      const a = i === 0 ? this.last : filtered[i - 1];
      out.push(a + (filtered[i] - a) * frac);
      this.pos += this.step;
    }
    this.pos -= input.length;
    if (input.length) this.last = filtered[input.length - 1];
    return Float32Array.from(out);
  }
}

// Collects samples into fixed frames (20 ms of 16 kHz by default).
export class FrameChunker {
  constructor(size = FRAME_SAMPLES) {
    this.size = size;
    this.buffer = new Int16Array(size);
    this.filled = 0;
  }

  push(pcm) {
    const frames = [];
    let i = 0;
    while (i < pcm.length) {
      const take = Math.min(this.size - this.filled, pcm.length - i);
      this.buffer.set(pcm.subarray(i, i + take), this.filled);
      this.filled += take;
      i += take;
      if (this.filled === this.size) {
        frames.push(this.buffer);
        this.buffer = new Int16Array(this.size);
        this.filled = 0;
      }
    }
    return frames;
  }
}

// The speaker's queue: agent audio in, marks between it, and `clear`. A mark is reported
// only once every sample queued before it has been pulled (played); `clear` drops the
// audio and the marks not yet reached, which are never reported (docs/protocol.md,
// "Marks and clear").
export class PlaybackQueue {
  constructor() {
    this.chunks = []; // Float32Array, oldest first
    this.offset = 0; // samples of chunks[0] already played
    this.queued = 0; // samples queued and not yet played
    this.written = 0; // samples ever queued (a mark is due when `played` reaches its position)
    this.played = 0;
    this.marks = []; // {name, at}
  }

  push(samples) {
    if (samples.length === 0) return;
    this.chunks.push(samples);
    this.queued += samples.length;
    this.written += samples.length;
  }

  // Returns the names of marks already due (nothing buffered before them).
  mark(name) {
    this.marks.push({ name, at: this.written });
    return this._due();
  }

  clear() {
    const dropped = this.queued;
    this.played += dropped;
    this.chunks = [];
    this.offset = 0;
    this.queued = 0;
    this.written = this.played;
    const marks = this.marks.map((m) => m.name);
    this.marks = [];
    return { dropped, marks };
  }

  // Fill `out` (zeros past the queued audio); returns {samples, marks} played by it.
  pull(out) {
    let n = 0;
    while (n < out.length && this.chunks.length) {
      const chunk = this.chunks[0];
      const take = Math.min(out.length - n, chunk.length - this.offset);
      out.set(chunk.subarray(this.offset, this.offset + take), n);
      n += take;
      this.offset += take;
      if (this.offset === chunk.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
    out.fill(0, n);
    this.queued -= n;
    this.played += n;
    return { samples: n, marks: this._due() };
  }

  _due() {
    const due = [];
    while (this.marks.length && this.marks[0].at <= this.played) due.push(this.marks.shift().name);
    return due;
  }
}
