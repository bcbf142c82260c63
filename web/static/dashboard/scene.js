// The 3D view: one station per live call, laid out on a grid. Each station shows the
// caller, the agent hierarchy (the supervisor above, sub-agents around it, lines between),
// which agent is active (its halo), the turn state (the rim's colour, a spinner while
// thinking), both sides' audio levels (caller node and agent halo scale with them), tool
// calls as pulses travelling to tool satellites, and barge-ins, escalations and policy
// denials as flashes. Geometries are shared and materials are per station, so 20 calls
// stay well under 200 draw calls.
import * as THREE from "three";
import { levelAt } from "./reducer.js";

export const STATE_COLORS = {
  idle: 0x64748b, listening: 0x38bdf8, user_speaking: 0x22c55e, thinking: 0xf59e0b,
  agent_speaking: 0xa78bfa, ended: 0x475569, unknown: 0x475569,
};
const FLASH = { tool: 0x22d3ee, handoff: 0xe879f9, barge: 0xef4444, escalation: 0xf97316, denial: 0xd946ef };
const FLASH_S = { tool: 0.8, handoff: 1.0, barge: 1.6, escalation: 3.0, denial: 2.0 };
const SPACING = 5.2;
const ORIGIN = new THREE.Vector3();

const GEO = {
  base: new THREE.CircleGeometry(1.95, 48).rotateX(-Math.PI / 2),
  rim: new THREE.RingGeometry(1.85, 2.0, 64).rotateX(-Math.PI / 2),
  node: new THREE.SphereGeometry(1, 20, 14),
  halo: new THREE.TorusGeometry(1, 0.06, 8, 48),
  spinner: new THREE.TorusGeometry(1, 0.035, 6, 40, Math.PI * 1.3),
  tool: new THREE.BoxGeometry(0.24, 0.24, 0.24),
  pulse: new THREE.SphereGeometry(0.1, 10, 8),
  wave: new THREE.RingGeometry(0.92, 1.0, 48).rotateX(-Math.PI / 2),
  beam: new THREE.CylinderGeometry(0.05, 0.05, 3.2, 10, 1, true),
};

const basic = (color, opacity = 1) =>
  new THREE.MeshBasicMaterial({ color, transparent: opacity < 1, opacity, depthWrite: opacity >= 1 });

class Station {
  constructor(session) {
    this.id = session.id;
    this.group = new THREE.Group();
    this.group.userData.sessionId = session.id;
    this.base = new THREE.Mesh(GEO.base, basic(0x1e293b, 0.55));
    this.base.userData.sessionId = session.id;
    this.rim = new THREE.Mesh(GEO.rim, basic(STATE_COLORS.idle));
    this.caller = new THREE.Mesh(GEO.node, new THREE.MeshLambertMaterial({ color: 0x4ade80, emissive: 0x14532d }));
    this.caller.position.set(0, 0.35, 1.35);
    this.caller.scale.setScalar(0.26);
    this.halo = new THREE.Mesh(GEO.halo, basic(0xc4b5fd, 0.9));
    this.spinner = new THREE.Mesh(GEO.spinner, basic(0xfbbf24));
    this.links = new THREE.LineSegments(new THREE.BufferGeometry(), new THREE.LineBasicMaterial({ color: 0x94a3b8, transparent: true, opacity: 0.6 }));
    this.beam = new THREE.Mesh(GEO.beam, basic(FLASH.escalation, 0.7));
    this.beam.position.set(-1.55, 1.6, 0.4); // beside the station, clear of the label
    this.waves = [0, 1, 2].map(() => new THREE.Mesh(GEO.wave, basic(0xffffff, 0.8)));
    this.pulses = [0, 1, 2, 3].map(() => new THREE.Mesh(GEO.pulse, basic(FLASH.tool)));
    this.label = makeLabel();
    this.label.position.set(0, 2.35, 0);
    this.agents = new Map(); // name -> mesh
    this.tools = new Map(); // name -> mesh
    this.group.add(this.base, this.rim, this.caller, this.halo, this.spinner, this.links, this.beam, this.label, ...this.waves, ...this.pulses);
    this.labelKey = "";
    this.structureKey = "";
  }

  dispose() {
    this.group.traverse((o) => {
      if (o.material) {
        if (o.material.map) o.material.map.dispose();
        o.material.dispose();
      }
    });
    this.links.geometry.dispose();
  }

  // Agents and tools: rebuilt only when the set changes.
  structure(session) {
    const key = `${session.agents.join(",")}|${session.tools.join(",")}|${session.supervisor}`;
    if (key === this.structureKey) return;
    this.structureKey = key;
    for (const mesh of [...this.agents.values(), ...this.tools.values()]) {
      this.group.remove(mesh);
      mesh.material.dispose();
    }
    this.agents.clear();
    this.tools.clear();
    const subs = session.agents.filter((a) => a !== session.supervisor);
    const sup = new THREE.Mesh(GEO.node, new THREE.MeshLambertMaterial({ color: 0x818cf8, emissive: 0x1e1b4b }));
    sup.position.set(0, 1.05, -0.1);
    sup.scale.setScalar(0.42);
    this.agents.set(session.supervisor, sup);
    subs.forEach((name, i) => {
      // sub-agents in a row behind the supervisor, never hidden behind it
      const x = subs.length === 1 ? 1.25 : -1.45 + (2.9 * i) / (subs.length - 1);
      const m = new THREE.Mesh(GEO.node, new THREE.MeshLambertMaterial({ color: 0x60a5fa, emissive: 0x172554 }));
      m.position.set(x, 0.55, -0.95 + 0.35 * Math.abs(x) / 1.45);
      m.scale.setScalar(0.24);
      this.agents.set(name, m);
    });
    session.tools.forEach((name, i) => {
      const angle = -Math.PI / 2 + (i / Math.max(1, session.tools.length)) * Math.PI * 2 + 0.4;
      const m = new THREE.Mesh(GEO.tool, new THREE.MeshLambertMaterial({ color: 0x67e8f9, emissive: 0x083344 }));
      m.position.set(Math.cos(angle) * 1.6, 0.25, Math.sin(angle) * 1.6);
      this.tools.set(name, m);
    });
    this.group.add(...this.agents.values(), ...this.tools.values());
    const points = [this.caller.position, sup.position];
    for (const name of subs) points.push(sup.position, this.agents.get(name).position);
    this.links.geometry.setFromPoints(points);
  }

  update(session, now, focused) {
    this.structure(session);
    const color = STATE_COLORS[session.state] ?? STATE_COLORS.idle;
    this.rim.material.color.setHex(color);
    this.rim.scale.setScalar(focused ? 1.06 : 1);
    this.base.material.opacity = focused ? 0.85 : 0.55;
    const inLevel = levelAt(session, "in", now);
    const outLevel = levelAt(session, "out", now);
    this.caller.scale.setScalar(0.26 * (1 + 0.9 * inLevel));
    this.caller.material.emissive.setHex(inLevel > 0.05 ? 0x15803d : 0x14532d);
    const active = this.agents.get(session.agent) || this.agents.get(session.supervisor);
    for (const [name, mesh] of this.agents) {
      mesh.material.emissive.setHex(name === session.agent ? 0x4c1d95 : 0x111827);
    }
    const speaking = session.state === "agent_speaking" || outLevel > 0;
    this.halo.visible = session.live;
    this.halo.position.copy(active.position);
    this.halo.rotation.x = Math.PI / 2;
    this.halo.scale.setScalar(active.scale.x * (1.5 + (speaking ? 1.1 * outLevel : 0.15 * Math.sin(now * 3))));
    this.halo.material.opacity = speaking ? 0.95 : 0.45;
    this.spinner.visible = session.state === "thinking";
    if (this.spinner.visible) {
      this.spinner.position.copy(active.position);
      this.spinner.scale.setScalar(active.scale.x * 2.1);
      this.spinner.rotation.set(Math.PI / 2, 0, now * 4);
    }
    this.flashes(session, now, active);
    const labelKey = `${session.caller || session.id.slice(0, 8)}|${session.state}|${session.agent}`;
    if (labelKey !== this.labelKey) {
      this.labelKey = labelKey;
      drawLabel(this.label, session.caller || session.id.slice(0, 8), `${session.state.replace("_", " ")} · ${session.agent}`, color);
    }
  }

  flashes(session, now, active) {
    let wave = 0;
    let pulse = 0;
    let beam = false;
    for (let i = session.highlights.length - 1; i >= 0; i--) {
      const h = session.highlights[i];
      const age = now - h.ts;
      const life = FLASH_S[h.kind] || 1;
      if (age < 0 || age > life) continue;
      const t = age / life;
      if (h.kind === "escalation") {
        beam = true;
        this.beam.material.opacity = 0.8 * (1 - t) + 0.2 * Math.abs(Math.sin(now * 8));
      } else if ((h.kind === "tool" || h.kind === "handoff") && pulse < this.pulses.length) {
        const p = this.pulses[pulse++];
        const target = h.kind === "tool" ? this.tools.get(h.to) : this.agents.get(h.to);
        const from = (h.kind === "handoff" && this.agents.get(h.from)) || active;
        if (!target) continue;
        p.visible = true;
        p.material.color.setHex(FLASH[h.kind]);
        p.position.lerpVectors(from.position, target.position, Math.min(1, t * 1.4));
        p.scale.setScalar(1 + 0.6 * Math.sin(t * Math.PI));
      } else if ((h.kind === "barge" || h.kind === "denial") && wave < this.waves.length) {
        const w = this.waves[wave++];
        w.visible = true;
        w.material.color.setHex(FLASH[h.kind]);
        w.material.opacity = 0.9 * (1 - t);
        const at = h.kind === "barge" ? this.caller.position : active.position;
        w.position.set(at.x, at.y, at.z);
        w.scale.setScalar(0.3 + 2.2 * t);
      }
    }
    for (let i = pulse; i < this.pulses.length; i++) this.pulses[i].visible = false;
    for (let i = wave; i < this.waves.length; i++) this.waves[i].visible = false;
    this.beam.visible = beam;
  }
}

function makeLabel() {
  const canvas = document.createElement("canvas");
  canvas.width = 256;
  canvas.height = 64;
  const texture = new THREE.CanvasTexture(canvas);
  texture.colorSpace = THREE.SRGBColorSpace;
  const sprite = new THREE.Sprite(new THREE.SpriteMaterial({ map: texture, transparent: true, depthWrite: false }));
  sprite.scale.set(2.6, 0.65, 1);
  return sprite;
}

function drawLabel(sprite, title, subtitle, color) {
  const canvas = sprite.material.map.image;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.fillStyle = "rgba(15, 23, 42, 0.78)";
  g.beginPath();
  g.roundRect(2, 2, canvas.width - 4, canvas.height - 4, 12);
  g.fill();
  g.fillStyle = `#${color.toString(16).padStart(6, "0")}`;
  g.fillRect(10, 12, 6, 40);
  g.fillStyle = "#f8fafc";
  g.font = "600 22px system-ui, sans-serif";
  g.fillText(String(title).slice(0, 18), 26, 29);
  g.fillStyle = "#cbd5e1";
  g.font = "17px system-ui, sans-serif";
  g.fillText(String(subtitle).slice(0, 24), 26, 52);
  sprite.material.map.needsUpdate = true;
}

export class DashboardScene {
  constructor(canvas, { onPick = () => {} } = {}) {
    this.canvas = canvas;
    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: !softwareGL(), powerPreference: "high-performance" });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color(0x0b1020);
    this.scene.fog = new THREE.Fog(0x0b1020, 30, 80);
    this.camera = new THREE.PerspectiveCamera(45, 1, 0.1, 200);
    this.scene.add(new THREE.HemisphereLight(0xdbeafe, 0x0f172a, 1.6));
    const sun = new THREE.DirectionalLight(0xffffff, 1.4);
    sun.position.set(5, 12, 8);
    this.scene.add(sun);
    const grid = new THREE.GridHelper(120, 60, 0x1e293b, 0x131a2e);
    grid.position.y = -0.01;
    this.scene.add(grid);
    this.stations = new Map();
    this.focus = null;
    this.cameraTarget = new THREE.Vector3();
    this.cameraGoal = new THREE.Vector3(0, 12, 14);
    this.camera.position.copy(this.cameraGoal);
    this.raycaster = new THREE.Raycaster();
    canvas.addEventListener("pointerdown", (e) => {
      const id = this.pick(e);
      if (id) onPick(id);
    });
    this.resize();
    new ResizeObserver(() => this.resize()).observe(canvas);
  }

  resize() {
    const { clientWidth: w, clientHeight: h } = this.canvas;
    if (!w || !h) return;
    this.renderer.setSize(w, h, false);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
  }

  pick(event) {
    const rect = this.canvas.getBoundingClientRect();
    const pointer = new THREE.Vector2(((event.clientX - rect.left) / rect.width) * 2 - 1, -((event.clientY - rect.top) / rect.height) * 2 + 1);
    this.raycaster.setFromCamera(pointer, this.camera);
    const bases = [...this.stations.values()].map((s) => s.base);
    const hit = this.raycaster.intersectObjects(bases, false)[0];
    return hit ? hit.object.userData.sessionId : null;
  }

  // Draw one frame of `sessions` (live calls, or the replayed one) at server time `now`.
  render(sessions, now, focusId, dt) {
    const wanted = new Set(sessions.map((s) => s.id));
    let moved = false;
    for (const [id, station] of this.stations) {
      if (!wanted.has(id)) {
        this.scene.remove(station.group);
        station.dispose();
        this.stations.delete(id);
        moved = true;
      }
    }
    for (const s of sessions) {
      if (!this.stations.has(s.id)) {
        const station = new Station(s);
        this.stations.set(s.id, station);
        this.scene.add(station.group);
        moved = true;
      }
    }
    const cols = Math.max(1, Math.ceil(Math.sqrt(sessions.length)));
    const rows = Math.max(1, Math.ceil(sessions.length / cols));
    sessions.forEach((s, i) => {
      const station = this.stations.get(s.id);
      if (moved) {
        const col = i % cols;
        const row = Math.floor(i / cols);
        station.group.position.set((col - (cols - 1) / 2) * SPACING, 0, (row - (rows - 1) / 2) * SPACING);
      }
      station.update(s, now, s.id === focusId);
    });
    const focused = focusId && this.stations.get(focusId);
    if (focused) {
      this.cameraTarget.lerp(focused.group.position, Math.min(1, dt * 4));
      this.cameraGoal.set(focused.group.position.x, 5.5, focused.group.position.z + 7);
    } else {
      const extent = Math.max(cols, rows) * SPACING;
      this.cameraTarget.lerp(ORIGIN, Math.min(1, dt * 4));
      this.cameraGoal.set(0, 4 + extent * 0.95, 5 + extent * 1.05);
    }
    this.camera.position.lerp(this.cameraGoal, Math.min(1, dt * 3));
    this.camera.lookAt(this.cameraTarget);
    this.renderer.render(this.scene, this.camera);
  }

  // What the canvas shows right now, sampled on a grid: for tests (the drawing buffer is
  // read in the same task as the render, so preserveDrawingBuffer is not needed).
  sample(step = 8) {
    const gl = this.renderer.getContext();
    const w = gl.drawingBufferWidth;
    const h = gl.drawingBufferHeight;
    const pixels = new Uint8Array(w * h * 4);
    this.renderer.render(this.scene, this.camera);
    gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
    const bg = [0x0b, 0x10, 0x20];
    const colors = new Set();
    let lit = 0;
    let total = 0;
    for (let y = 0; y < h; y += step) {
      for (let x = 0; x < w; x += step) {
        const i = (y * w + x) * 4;
        total += 1;
        const d = Math.abs(pixels[i] - bg[0]) + Math.abs(pixels[i + 1] - bg[1]) + Math.abs(pixels[i + 2] - bg[2]);
        if (d > 40) lit += 1;
        colors.add((pixels[i] >> 4) * 256 + (pixels[i + 1] >> 4) * 16 + (pixels[i + 2] >> 4));
      }
    }
    return { width: w, height: h, lit: lit / total, colors: colors.size, drawCalls: this.renderer.info.render.calls };
  }
}

// A software rasteriser (SwiftShader, llvmpipe) pays for multisampling on the CPU: without
// a GPU the scene is drawn without antialiasing, which keeps 20 calls above 25 fps there.
function softwareGL() {
  const scratch = document.createElement("canvas");
  const probe = scratch.getContext("webgl2") || scratch.getContext("webgl");
  if (!probe) return false;
  const info = probe.getExtension("WEBGL_debug_renderer_info");
  const name = info ? String(probe.getParameter(info.UNMASKED_RENDERER_WEBGL)) : "";
  probe.getExtension("WEBGL_lose_context")?.loseContext();
  return /swiftshader|llvmpipe|software/i.test(name);
}
