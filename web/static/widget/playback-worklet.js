// The speaker: agent audio queued on the rendering thread, marks reported when played,
// and `clear` obeyed at the next render quantum (8 ms at 16 kHz).
import { PlaybackQueue, levelOf, pcm16ToFloat, rms } from "./protocol.js";

const LEVEL_EVERY = 6;

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = new PlaybackQueue();
    this.starts = []; // {index, at}: where each received chunk begins in the queue
    this.quanta = 0;
    this.peak = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(m) {
    if (m.type === "audio") {
      this.starts.push({ index: m.index, at: this.queue.written });
      this.queue.push(pcm16ToFloat(new Int16Array(m.pcm)));
    } else if (m.type === "mark") {
      for (const name of this.queue.mark(m.name)) this.port.postMessage({ type: "played", name });
    } else if (m.type === "clear") {
      const { dropped, marks } = this.queue.clear();
      this.starts = [];
      this.port.postMessage({ type: "cleared", dropped, marks, at: Date.now() });
    }
  }

  process(inputs, outputs) {
    const channels = outputs[0];
    const out = channels[0];
    const before = this.queue.played;
    const { samples, marks } = this.queue.pull(out);
    for (let c = 1; c < channels.length; c++) channels[c].set(out);
    while (this.starts.length && this.starts[0].at < before + samples) {
      // Date.now(): when the chunk's first sample went to the output (benchmark)
      this.port.postMessage({ type: "started", index: this.starts.shift().index, at: Date.now() });
    }
    for (const name of marks) this.port.postMessage({ type: "played", name });
    if (samples > 0) this.peak = Math.max(this.peak, rms(out));
    if (++this.quanta % LEVEL_EVERY === 0) {
      this.port.postMessage({
        type: "level",
        level: levelOf(this.peak),
        queued: this.queue.queued,
        played: this.queue.played,
      });
      this.peak = 0;
    }
    return true;
  }
}

registerProcessor("voxgate-playback", PlaybackProcessor);
