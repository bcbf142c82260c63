import assert from "node:assert/strict";
import { test } from "node:test";
import {
  FrameChunker, PlaybackQueue, ProtocolError, Resampler, decodeServer, encodeDtmf, encodeMark,
  encodeStart, encodeStop, encodeText, floatToPcm16, levelOf, pcm16ToFloat,
} from "../static/widget/protocol.js";

// messages as the server sends them (docs/protocol.md, section 1)
const CAPTURED = [
  '{"type": "session", "session_id": "s-4c1f0e", "sample_rate": 16000}',
  '{"type": "mark", "name": "r3:2"}',
  '{"type": "clear"}',
  '{"type": "event", "event": {"seq": 42, "ts": 1764112970.25, "session_id": "s-4c1f0e", "type": "stt.final", "data": {"text": "book a table"}}}',
  '{"type": "error", "code": "unknown_type", "message": "unknown message type \\"hello\\""}',
  '{"type": "end", "reason": "agent hung up"}',
  '{"type": "pong"}',
];

test("captured server messages decode to what they say", () => {
  for (const raw of CAPTURED) assert.deepEqual(decodeServer(raw), JSON.parse(raw));
});

test("client messages encode as the protocol documents them", () => {
  assert.deepEqual(JSON.parse(encodeStart({ sampleRate: 48000, caller: "widget-7f3a", metadata: { page: "/pricing" } })),
    { type: "start", sample_rate: 48000, caller: "widget-7f3a", metadata: { page: "/pricing" } });
  assert.deepEqual(JSON.parse(encodeStart()), { type: "start", sample_rate: 16000, caller: null });
  assert.equal(encodeMark("r3:2"), '{"type":"mark","name":"r3:2"}');
  assert.equal(encodeDtmf("#"), '{"type":"dtmf","digit":"#"}');
  assert.equal(encodeText("book a table"), '{"type":"text","text":"book a table"}');
  assert.equal(encodeStop(), '{"type":"stop"}');
});

test("bad input is refused with a clear error", () => {
  assert.throws(() => encodeStart({ sampleRate: 44100 }), new ProtocolError("unsupported sample rate 44100"));
  assert.throws(() => encodeMark(""), new ProtocolError("mark needs a name"));
  assert.throws(() => encodeDtmf("x"), new ProtocolError('not a DTMF digit: "x"'));
  assert.throws(() => encodeText("  "), new ProtocolError("text is empty"));
  assert.throws(() => decodeServer("{nope"), new ProtocolError("malformed JSON from the server"));
  assert.throws(() => decodeServer("[1]"), new ProtocolError("a server message must be a JSON object"));
  assert.throws(() => decodeServer('{"x": 1}'), new ProtocolError('missing field "type"'));
  assert.throws(() => decodeServer('{"type": "mark"}'), new ProtocolError('mark: missing or wrong field "name"'));
  assert.throws(() => decodeServer('{"type": "event", "event": null}'), new ProtocolError('event: missing or wrong field "event"'));
  assert.throws(() => decodeServer(new Uint8Array(3).buffer), new ProtocolError("odd audio frame: 3 bytes"));
});

test("unknown message types pass through (either side may add types)", () => {
  assert.deepEqual(decodeServer('{"type": "snapshot", "sessions": []}'), { type: "snapshot", sessions: [] });
});

test("binary frames are PCM16 little-endian", () => {
  const bytes = new Uint8Array([0x01, 0x00, 0xff, 0x7f, 0x00, 0x80]);
  const m = decodeServer(bytes.buffer);
  assert.equal(m.type, "audio");
  assert.deepEqual([...m.pcm], [1, 32767, -32768]);
});

test("float <-> PCM16 round trip, clipped at full scale", () => {
  assert.deepEqual([...floatToPcm16(Float32Array.from([0, 1, -1, 2, -2, 0.5]))], [0, 32767, -32768, 32767, -32768, 16384]);
  const back = pcm16ToFloat(Int16Array.from([0, 16384, -32768]));
  assert.deepEqual([...back], [0, 0.5, -1]);
});

test("levels: -60 dBFS is silent, full scale is 1", () => {
  assert.equal(levelOf(0), 0);
  assert.equal(levelOf(0.001), 0);
  assert.equal(levelOf(1), 1);
  assert.ok(Math.abs(levelOf(0.1) - 2 / 3) < 1e-9);
});

test("frames of 320 samples whatever the block size", () => {
  const chunker = new FrameChunker();
  const sizes = [];
  for (let i = 0; i < 10; i++) for (const f of chunker.push(new Int16Array(128).fill(i))) sizes.push(f.length);
  assert.deepEqual(sizes, [320, 320, 320, 320]);
  assert.equal(chunker.filled, 1280 - 4 * 320);
});

test("the resampler keeps the rate and the tone", () => {
  const from = 48000;
  const r = new Resampler(from, 16000);
  const out = [];
  for (let block = 0; block < 375; block++) {
    // 1 s of a 440 Hz tone in 128-sample render quanta
    const input = new Float32Array(128).map((_, i) => Math.sin((2 * Math.PI * 440 * (block * 128 + i)) / from));
    out.push(...r.process(input));
  }
  assert.ok(Math.abs(out.length - 16000) <= 1, `got ${out.length} samples`);
  let crossings = 0;
  for (let i = 1; i < out.length; i++) if (out[i - 1] < 0 && out[i] >= 0) crossings += 1;
  assert.ok(Math.abs(crossings - 440) <= 2, `got ${crossings} cycles`);
});

test("marks are reported only when everything before them has played", () => {
  const q = new PlaybackQueue();
  assert.deepEqual(q.mark("r0:1"), ["r0:1"], "nothing buffered: echoed at once");
  q.push(new Float32Array(300).fill(0.5));
  assert.deepEqual(q.mark("r1:1"), []);
  q.push(new Float32Array(100).fill(0.25));
  assert.deepEqual(q.mark("r1:2"), []);
  const out = new Float32Array(128);
  assert.deepEqual(q.pull(out), { samples: 128, marks: [] });
  assert.deepEqual(q.pull(out), { samples: 128, marks: [] });
  const third = q.pull(out);
  assert.deepEqual(third.marks, ["r1:1"]); // 384 >= 300
  assert.equal(out[43], 0.5);
  assert.equal(out[44], 0.25);
  assert.deepEqual(q.pull(out), { samples: 16, marks: ["r1:2"] });
  assert.equal(out[16], 0, "silence after the queue");
});

test("clear drops the audio and the unreached marks, which are never reported", () => {
  const q = new PlaybackQueue();
  q.push(new Float32Array(1000).fill(0.5));
  q.mark("r2:1");
  q.push(new Float32Array(1000).fill(0.5));
  q.mark("r2:2");
  const out = new Float32Array(128);
  q.pull(out);
  assert.deepEqual(q.clear(), { dropped: 2000 - 128, marks: ["r2:1", "r2:2"] });
  assert.deepEqual(q.pull(out), { samples: 0, marks: [] });
  assert.ok(out.every((v) => v === 0), "nothing plays after clear");
  q.push(new Float32Array(10).fill(0.1));
  assert.deepEqual(q.mark("r3:1"), []);
  assert.deepEqual(q.pull(out).marks, ["r3:1"], "a new reply's marks still work");
});
