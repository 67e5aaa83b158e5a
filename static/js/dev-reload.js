// Dev mode only (make dev): reload this page as soon as a post, page, template, stylesheet or the site file
// changes. The server sends one "reload" event over Server-Sent Events when the site differs from the
// version this page was made from; EventSource reconnects by itself when the server restarts.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !window.EventSource) {
    return;
  }
  var events = new EventSource(script.getAttribute("data-events"));
  events.addEventListener("reload", function () {
    events.close();
    window.location.reload();
  });
})();
