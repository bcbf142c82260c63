// Replaying a finished call from its events (GET /api/sessions/{id}/events) at real or
// faster speed. The replay has its own dashboard state and its own clock in server time;
// the render loop calls tick() every frame, so nothing here sets timers and the tests
// drive it with a fake clock.
import { applyEvent, createState } from "./reducer.js";

export class Replay {
  constructor(events, { speed = 1, now = () => performance.now() } = {}) {
    if (!events.length) throw new Error("nothing to replay: the call has no events");
    this.events = [...events].sort((a, b) => a.seq - b.seq);
    this.start = this.events[0].ts;
    this.end = this.events[this.events.length - 1].ts;
    this.now = now;
    this.speed = speed;
    this.reset(this.start);
    this.playing = false;
  }

  reset(position) {
    this.state = createState();
    this.next = 0;
    this.position = this.start;
    this._anchor(position);
    this._catchUp(position);
  }

  _anchor(position) {
    this.anchorPos = position;
    this.anchorReal = this.now();
  }

  // The replay's current time, in the server's clock (seconds, like event.ts).
  time() {
    if (!this.playing) return this.position;
    return Math.min(this.end, this.anchorPos + ((this.now() - this.anchorReal) / 1000) * this.speed);
  }

  play() {
    if (this.done) this.reset(this.start);
    this._anchor(this.position);
    this.playing = true;
  }

  pause() {
    this.position = this.time();
    this.playing = false;
  }

  setSpeed(speed) {
    this.position = this.time();
    this._anchor(this.position);
    this.speed = speed;
  }

  // Jump to a fraction (0..1) of the call.
  seek(fraction) {
    const playing = this.playing;
    this.playing = false;
    this.reset(this.start + Math.max(0, Math.min(1, fraction)) * (this.end - this.start));
    if (playing) this.play();
  }

  get done() {
    return this.next >= this.events.length && this.position >= this.end;
  }

  get progress() {
    return this.end > this.start ? (this.position - this.start) / (this.end - this.start) : 1;
  }

  // Apply every event due by now; returns the ids of the sessions that changed.
  tick() {
    const target = this.time();
    const changed = this._catchUp(target);
    if (this.playing && target >= this.end && this.next >= this.events.length) this.playing = false;
    return changed;
  }

  _catchUp(target) {
    const changed = new Set();
    while (this.next < this.events.length && this.events[this.next].ts <= target) {
      for (const id of applyEvent(this.state, this.events[this.next++])) changed.add(id);
    }
    this.position = Math.max(this.position, target);
    return [...changed];
  }
}
