/* voxgate voice widget loader.
 *
 *   <script src="https://HOST/widget.js" data-caller="..." data-label="Talk to us"
 *           data-position="bottom-right" data-theme="dark" data-accent="#0f766e"></script>
 *
 * A classic script, so it works in any page: it finds its own <script> element, and
 * loads the widget's modules from the same server it came from (docs/dashboard.md lists
 * every data- attribute and CSS variable).
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var server = new URL(".", script.src).href;
  import(new URL("static/widget/voice-widget.js", server).href)
    .then(function (widget) {
      var el = widget.mount(script, server);
      script.dispatchEvent(new CustomEvent("voxgate:ready", { detail: { element: el } }));
    })
    .catch(function (err) {
      console.error("voxgate widget failed to load:", err);
    });
})();
