import assert from "node:assert/strict";
import { test } from "node:test";
import { Replay } from "../static/dashboard/replay.js";

const events = [
  { seq: 1, ts: 100, session_id: "s", type: "session.started", data: { caller: "+1" } },
  { seq: 2, ts: 101, session_id: "s", type: "agent.state", data: { state: "listening" } },
  { seq: 3, ts: 104, session_id: "s", type: "stt.final", data: { text: "hi" } },
  { seq: 4, ts: 110, session_id: "s", type: "session.ended", data: { reason: "bye" } },
];

function fakeClock() {
  let ms = 0;
  const now = () => ms;
  now.advance = (s) => (ms += s * 1000);
  return now;
}

test("real speed: events arrive when their time comes", () => {
  const now = fakeClock();
  const r = new Replay(events, { now });
  assert.equal(r.state.sessions.s.caller, "+1", "the first event is applied at once");
  r.play();
  now.advance(0.5);
  assert.deepEqual(r.tick(), []);
  now.advance(0.6);
  assert.deepEqual(r.tick(), ["s"]);
  assert.equal(r.state.sessions.s.state, "listening");
  now.advance(3);
  r.tick();
  assert.equal(r.state.sessions.s.turns, 1);
  assert.ok(Math.abs(r.progress - 0.41) < 0.01);
});

test("faster: 8x plays a 10 s call in 1.25 s; pause holds, seek jumps", () => {
  const now = fakeClock();
  const r = new Replay(events, { now, speed: 8 });
  r.play();
  now.advance(0.5); // 4 s of call
  r.tick();
  assert.equal(r.state.sessions.s.turns, 1);
  r.pause();
  now.advance(10);
  r.tick();
  assert.equal(r.state.sessions.s.live, true, "paused: nothing more");
  r.play();
  now.advance(0.8);
  r.tick();
  assert.equal(r.state.sessions.s.live, false);
  assert.ok(r.done);
  assert.equal(r.playing, false);
  r.seek(0.2); // back to t=102: the turn is not there yet
  assert.equal(r.state.sessions.s.turns, 0);
  assert.equal(r.state.sessions.s.state, "listening");
  r.setSpeed(1);
  r.play();
  now.advance(2);
  r.tick();
  assert.equal(r.state.sessions.s.turns, 1);
});

test("a call without events cannot be replayed", () => {
  assert.throws(() => new Replay([]), /nothing to replay/);
});
