// The widget's LiveKit transport turning the worker's messages into the widget's own
// events and states. The room itself is tested in Chromium (tests/web/test_livekit_widget.py);
// here a FakeWidget records what the transport asks of the <voxgate-call> element.
import assert from "node:assert/strict";
import { test } from "node:test";
import { LiveKitCall } from "../static/widget/livekit-call.js";

class FakeWidget {
  constructor() {
    this.stats = { events: 0, clears: 0, errors: [], protocolErrors: 0, endReason: null, sessionId: null };
    this.handled = [];
    this.captions = [];
    this.errorBox = { textContent: "" };
  }
  $(selector) {
    assert.equal(selector, ".error");
    return this.errorBox;
  }
  _onEvent(event) {
    this.stats.events += 1;
    this.handled.push(event);
  }
  _caption(who, text) {
    this.captions.push([who, text]);
  }
  _ended(reason) {
    this.endedWith = reason;
  }
}

const bytes = (value) => new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));

test("a worker event reaches the widget as {seq, ts, type, data}", () => {
  const w = new FakeWidget();
  const call = new LiveKitCall(w);
  // as gateway/livekit/worker.py publishes it on voxgate.events: the data spread flat
  call._event(bytes({ seq: 7, ts: 1764112970.25, type: "tts.started", text: "Hello,", reply_id: "r1" }));
  assert.deepEqual(w.handled, [{ seq: 7, ts: 1764112970.25, type: "tts.started", data: { text: "Hello,", reply_id: "r1" } }]);
});

test("the session's end gives the reason; a barge-in counts as a clear", () => {
  const w = new FakeWidget();
  const call = new LiveKitCall(w);
  call._event(bytes({ seq: 1, ts: 1, type: "tts.interrupted", reply_id: "r1", cleared: true }));
  call._event(bytes({ seq: 2, ts: 2, type: "session.ended", reason: "agent hung up" }));
  assert.equal(w.stats.clears, 1);
  assert.equal(w.stats.endReason, "agent hung up");
});

test("a worker that refuses the call: the line is busy and the room is left", () => {
  const w = new FakeWidget();
  const call = new LiveKitCall(w);
  call._event(bytes({ seq: 1, ts: 1, type: "call.refused", code: "capacity", reason: "node full" }));
  assert.equal(w.errorBox.textContent, "The line is busy: node full.");
  assert.deepEqual(w.stats.errors, ["capacity"]);
  assert.equal(w.endedWith, "you hung up"); // no room yet: hangUp ends the call at once
});

test("a malformed message is counted, never thrown", () => {
  const w = new FakeWidget();
  const call = new LiveKitCall(w);
  call._event(bytes("{not json"));
  assert.equal(w.stats.protocolErrors, 1);
  assert.deepEqual(w.handled, []);
});

test("the room's metadata names the session; other metadata is ignored", () => {
  const w = new FakeWidget();
  const call = new LiveKitCall(w);
  call._metadata("");
  call._metadata("plain text");
  call._metadata(JSON.stringify({ other: 1 }));
  assert.equal(w.stats.sessionId, null);
  call._metadata(JSON.stringify({ "voxgate.session": "4c1f0e9a" }));
  assert.equal(w.stats.sessionId, "4c1f0e9a");
});
