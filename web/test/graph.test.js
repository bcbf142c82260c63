import assert from "node:assert/strict";
import { test } from "node:test";
import { layout } from "../static/dashboard/graph.js";

const graph = {
  name: "booking",
  start: "ask",
  nodes: [
    { id: "ask", kind: "wait" }, { id: "book", kind: "task" }, { id: "decide", kind: "choice" },
    { id: "done", kind: "end" }, { id: "operator", kind: "end" }, { id: "orphan", kind: "end" },
  ],
  edges: [
    { from: "ask", to: "book", kind: "signal" }, { from: "ask", to: "operator", kind: "timer" },
    { from: "book", to: "decide", kind: "ok" }, { from: "decide", to: "done", kind: "rule" },
    { from: "decide", to: "ask", kind: "default" }, { from: "book", to: "nowhere", kind: "ok" },
  ],
};

test("states are layered by their distance from the start", () => {
  const g = layout(graph);
  const row = (id) => g.nodes[id].y;
  assert.ok(row("ask") < row("book"));
  assert.equal(row("book"), row("operator"));
  assert.ok(row("book") < row("decide") && row("decide") < row("done"));
  assert.ok(row("orphan") > row("done"), "unreachable states go below");
  for (const n of Object.values(g.nodes)) assert.ok(n.x >= 0 && n.x + n.w <= g.width && n.y + n.h <= g.height);
});

test("edges join existing states; a loop back leaves from the side", () => {
  const g = layout(graph);
  assert.equal(g.edges.length, 5, "the edge to an unknown state is dropped");
  const back = g.edges.find((e) => e.from === "decide" && e.to === "ask");
  assert.equal(back.points[0].x, g.nodes.decide.x + g.nodes.decide.w);
});
