// Copy the front-end's npm dependencies into static/vendor/, which the server serves:
// the pages load three.js and livekit-client from this server only (no CDN), so the
// dashboard and the widget work offline.
// Run by `npm install` (postinstall) and `npm run build`; static/vendor/ is not committed.
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "static", "vendor");
const files = [
  // [from node_modules, to static/vendor]
  // three.module.js imports ./three.core.js: they stay side by side
  ["three/build/three.module.js", "three.module.js"],
  ["three/build/three.core.js", "three.core.js"],
  ["three/LICENSE", "three.LICENSE.txt"],
  // the widget's LiveKit transport (data-transport="livekit"), loaded only by it: the ESM
  // build bundles its own dependencies (MIT, Apache-2.0, BSD; docs/dashboard.md)
  ["livekit-client/dist/livekit-client.esm.mjs", "livekit-client.esm.js"],
  ["livekit-client/LICENSE", "livekit-client.LICENSE.txt"],
];

mkdirSync(out, { recursive: true });
for (const [from, to] of files) {
  const source = join(root, "node_modules", from);
  if (!existsSync(source)) {
    console.error(`vendor: ${source} is missing; run \`npm ci\` in ${root}`);
    process.exit(1);
  }
  copyFileSync(source, join(out, to));
}
const version = (name) =>
  JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")).version;
console.log(`vendor: three ${version("three")}, livekit-client ${version("livekit-client")} -> ${out}`);
