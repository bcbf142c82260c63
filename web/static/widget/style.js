// The widget's shadow-DOM styles; pages theme it with the CSS variables (docs/dashboard.md).
export const STYLE = `
:host {
  --voxgate-accent: #2563eb; --voxgate-bg: #ffffff; --voxgate-fg: #111827;
  --voxgate-muted: #6b7280; --voxgate-radius: 14px; --voxgate-danger: #dc2626;
  --voxgate-font: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  --voxgate-shadow: 0 8px 28px rgba(15, 23, 42, 0.18);
  display: inline-block; font-family: var(--voxgate-font); color: var(--voxgate-fg);
}
:host([theme="dark"]) { --voxgate-bg: #111827; --voxgate-fg: #f9fafb; --voxgate-muted: #9ca3af; }
:host([position="bottom-right"]), :host([position="bottom-left"]) {
  position: fixed; bottom: 20px; z-index: 2147483000;
}
:host([position="bottom-right"]) { right: 20px; }
:host([position="bottom-left"]) { left: 20px; }
.panel { background: var(--voxgate-bg); border-radius: var(--voxgate-radius);
  box-shadow: var(--voxgate-shadow); padding: 12px; width: 300px; box-sizing: border-box; }
.row { display: flex; align-items: center; gap: 10px; }
button.call { all: unset; box-sizing: border-box; cursor: pointer; display: inline-flex;
  align-items: center; gap: 8px; padding: 10px 16px; border-radius: 999px; font-weight: 600;
  background: var(--voxgate-accent); color: #fff; font-size: 15px; }
button.call[aria-pressed="true"] { background: var(--voxgate-danger); }
button.call:focus-visible { outline: 3px solid var(--voxgate-fg); outline-offset: 2px; }
button.call:disabled { opacity: 0.6; cursor: progress; }
.dot { width: 10px; height: 10px; border-radius: 50%; background: currentColor;
  transform: scale(calc(0.6 + var(--level, 0) * 1.2)); transition: transform 60ms linear; }
.state { font-size: 14px; color: var(--voxgate-muted); display: flex; align-items: center; gap: 6px; }
.meter { width: 46px; height: 6px; border-radius: 3px; background: rgba(127,127,127,.25); overflow: hidden; }
.meter > i { display: block; height: 100%; width: calc(var(--level, 0) * 100%);
  background: var(--voxgate-accent); transition: width 60ms linear; }
.captions { margin: 10px 0 0; padding: 0; list-style: none; max-height: 9.5em; overflow-y: auto;
  font-size: 14px; line-height: 1.35; }
.captions:empty { display: none; }
.captions li { margin: 4px 0; }
.captions .who { font-weight: 600; margin-right: 4px; }
.captions .agent .who { color: var(--voxgate-accent); }
.captions .cut { text-decoration: line-through; opacity: .6; }
.error { color: var(--voxgate-danger); font-size: 13px; margin-top: 6px; }
.error:empty { display: none; }
:host([captions="off"]) .captions { display: none; }
@media (prefers-reduced-motion: reduce) { .dot, .meter > i { transition: none; } }
`;
