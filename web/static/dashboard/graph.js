// Lay out a workflow graph (GET /api/workflows/{name} -> graph: {start, nodes, edges}) in
// layers: each state one step further from the start than the nearest state before it.
// Pure geometry, no DOM: panels.js draws it as SVG, web/test/graph.test.js checks it.

export const NODE_W = 132;
export const NODE_H = 30;
const GAP_X = 28;
const GAP_Y = 34;

export function layout(graph) {
  const ids = graph.nodes.map((n) => n.id);
  const next = new Map(ids.map((id) => [id, []]));
  for (const e of graph.edges) if (next.has(e.from) && next.has(e.to)) next.get(e.from).push(e.to);
  const depth = new Map([[graph.start, 0]]);
  const queue = [graph.start];
  while (queue.length) {
    const id = queue.shift();
    for (const to of next.get(id) || []) {
      if (!depth.has(to)) {
        depth.set(to, depth.get(id) + 1);
        queue.push(to);
      }
    }
  }
  let deepest = Math.max(0, ...depth.values());
  for (const id of ids) if (!depth.has(id)) depth.set(id, ++deepest); // unreachable: below
  const layers = [];
  for (const id of ids) (layers[depth.get(id)] ||= []).push(id);
  const widest = Math.max(1, ...layers.map((l) => (l ? l.length : 0)));
  const width = widest * NODE_W + (widest + 1) * GAP_X;
  const nodes = {};
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  layers.forEach((layer, row) => {
    if (!layer) return;
    const span = layer.length * NODE_W + (layer.length - 1) * GAP_X;
    layer.forEach((id, col) => {
      const n = byId.get(id);
      nodes[id] = {
        id, kind: n.kind, label: n.label || id, status: n.status,
        x: (width - span) / 2 + col * (NODE_W + GAP_X), y: GAP_Y / 2 + row * (NODE_H + GAP_Y),
        w: NODE_W, h: NODE_H,
      };
    });
  });
  const edges = graph.edges
    .filter((e) => nodes[e.from] && nodes[e.to])
    .map((e) => ({ ...e, points: route(nodes[e.from], nodes[e.to]) }));
  return { nodes, edges, width, height: layers.length * (NODE_H + GAP_Y) + GAP_Y / 2 };
}

function route(a, b) {
  const from = { x: a.x + a.w / 2, y: a.y + a.h };
  const to = { x: b.x + b.w / 2, y: b.y };
  if (b.y <= a.y) {
    // a loop back up: leave from the side
    return [{ x: a.x + a.w, y: a.y + a.h / 2 }, { x: Math.max(a.x, b.x) + a.w + 14, y: (a.y + b.y) / 2 + a.h / 2 }, { x: b.x + b.w, y: b.y + b.h / 2 }];
  }
  return [from, { x: (from.x + to.x) / 2, y: (from.y + to.y) / 2 }, to];
}
