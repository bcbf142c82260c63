// Microphone -> 20 ms frames of PCM16 at the call's rate, on the audio rendering thread.
// The AudioContext normally runs at 16 kHz, so Chromium has already resampled the
// microphone and this only converts and frames; at any other context rate it resamples.
import { FrameChunker, Resampler, floatToPcm16, levelOf, rms } from "./protocol.js";

const LEVEL_EVERY = 6; // render quanta between level reports (~48 ms at 16 kHz)

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const target = options.processorOptions.targetRate;
    this.resampler = target === sampleRate ? null : new Resampler(sampleRate, target);
    this.chunker = new FrameChunker(Math.round(target / 50));
    this.quanta = 0;
    this.peak = 0;
    this.stopped = false;
    this.port.onmessage = (e) => {
      if (e.data === "stop") this.stopped = true;
    };
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (input) {
      const samples = this.resampler ? this.resampler.process(input) : input;
      const frames = this.chunker.push(floatToPcm16(samples));
      for (const frame of frames) {
        // Date.now(): when the frame's last sample reached us (for the latency benchmark)
        this.port.postMessage({ type: "frame", pcm: frame.buffer, at: Date.now() }, [frame.buffer]);
      }
      this.peak = Math.max(this.peak, rms(input));
    }
    if (++this.quanta % LEVEL_EVERY === 0) {
      this.port.postMessage({ type: "level", level: levelOf(this.peak) });
      this.peak = 0;
    }
    return !this.stopped;
  }
}

registerProcessor("voxgate-capture", CaptureProcessor);
