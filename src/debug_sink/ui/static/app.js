// debug-sink web view: the one script. Progressive only -- every page works without it.
// The Live page refreshes itself every 5 s while visible (a Pause button stops it); the
// new figures come from the same page, parsed, never evaluated as script.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var state = document.getElementById("live-state");
  var link = document.getElementById("live-refresh");
  var paused = false;
  var button = document.createElement("button");
  button.type = "button";
  button.textContent = "Pause";
  button.setAttribute("aria-pressed", "false");
  button.addEventListener("click", function () {
    paused = !paused;
    button.textContent = paused ? "Resume" : "Pause";
    button.setAttribute("aria-pressed", paused ? "true" : "false");
  });
  if (link && link.parentNode) { link.parentNode.insertBefore(button, link); }
  if (state) { state.setAttribute("aria-live", "polite"); }

  function refresh() {
    if (paused || document.hidden) { return; }
    fetch(live.getAttribute("data-refresh"), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("live");
        var freshState = page.getElementById("live-state");
        if (fresh) { live.replaceChildren.apply(live, Array.prototype.slice.call(fresh.childNodes)); }
        if (state && freshState) { state.textContent = freshState.textContent; }
      })
      .catch(function (error) {
        if (state) { state.textContent = "refresh failed (" + error.message + "), retrying"; }
      });
  }
  window.setInterval(refresh, 5000);
}());
