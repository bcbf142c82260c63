// Fold events with the dashboard's reducer and print each session's summary fields:
//   node web/scripts/fold-events.js < events.json     (a JSON list of bus events)
// tests/web/test_reducer_parity.py compares the output with gateway/sessions.fold.
import { readFileSync } from "node:fs";
import { apply, createState } from "../static/dashboard/reducer.js";

const state = createState();
for (const event of JSON.parse(readFileSync(0, "utf8"))) apply(state, { type: "event", event });
const PANELS = ["captions", "timeline", "latencies", "highlights", "tools", "audio"];
const out = {};
for (const [id, session] of Object.entries(state.sessions)) {
  out[id] = Object.fromEntries(Object.entries(session).filter(([k]) => !PANELS.includes(k)));
}
process.stdout.write(JSON.stringify(out));
