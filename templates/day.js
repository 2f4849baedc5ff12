// The day view shows what the modalities report (MPPS) as it happens: it reloads itself
// every minute, but never while someone is typing in one of its forms, and only when the
// page is visible. A script rather than <meta http-equiv="refresh">, so that people who
// need more time are not interrupted mid-form (WCAG 2.2.1).
(function () {
  "use strict";
  var PERIOD_MS = 60000;
  var touched = false;
  document.addEventListener("input", function () { touched = true; });
  function busy() {
    var active = document.activeElement;
    return touched || (active && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName));
  }
  window.setInterval(function () {
    if (!document.hidden && !busy()) {
      window.location.reload();
    }
  }, PERIOD_MS);
})();
