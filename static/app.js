// Batchboard console behaviour. No inline script anywhere (the CSP allows only 'self').
// 1. Every <time datetime> shows the viewer's local time; the UTC text moves to title.
// 2. <time class="relative"> shows "in 3 min" / "5 min ago", refreshed every 30 s.
// 3. htmx polling never replaces a region that holds the keyboard focus.
(function () {
  "use strict";

  var absolute = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit"
  });
  var relative = typeof Intl.RelativeTimeFormat === "function"
    ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" })
    : null;

  function describeRelative(date) {
    var seconds = Math.round((date.getTime() - Date.now()) / 1000);
    var steps = [["second", 60], ["minute", 60], ["hour", 24], ["day", 365], ["year", Infinity]];
    var value = seconds;
    for (var i = 0; i < steps.length; i++) {
      if (Math.abs(value) < steps[i][1] || i === steps.length - 1) {
        return relative ? relative.format(value, steps[i][0]) : absolute.format(date);
      }
      value = Math.round(value / steps[i][1]);
    }
    return absolute.format(date);
  }

  function localise(root) {
    var times = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var el = times[i];
      var date = new Date(el.getAttribute("datetime"));
      if (isNaN(date.getTime())) { continue; }
      if (!el.dataset.utc) { el.dataset.utc = el.getAttribute("title") || el.textContent; }
      var local = absolute.format(date);
      if (el.classList.contains("relative")) {
        el.textContent = describeRelative(date);
        el.setAttribute("title", local + " (" + el.dataset.utc + ")");
      } else {
        el.textContent = local;
        el.setAttribute("title", el.dataset.utc);
      }
    }
  }

  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  document.addEventListener("htmx:load", function (event) { localise(event.target); });
  document.addEventListener("htmx:afterSwap", function () { localise(document); });
  setInterval(function () { localise(document); }, 30000);

  // A poll that would swap away the focused element (a link in the jobs table, say)
  // waits for the next tick instead.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var source = event.detail && event.detail.elt;
    var trigger = source && source.getAttribute("hx-trigger");
    if (!trigger || trigger.indexOf("every") !== 0) { return; }
    var focused = document.activeElement;
    if (focused && focused !== document.body && source.contains(focused)) {
      event.preventDefault();
    }
  });
})();
