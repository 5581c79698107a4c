// Easel studio: live protection progress on a work's page. The page works without this
// script (reload to see the state); with it, each image's <progress> follows its job and
// the page says when the work is published. Same-origin JSON only (CSP connect-src 'self').
(function () {
  "use strict";
  var POLL_MS = 1500;
  var items = document.querySelectorAll("[data-progress-url]");
  if (!items.length) { return; }

  function update(item, answer) {
    var bar = item.querySelector("progress");
    var label = item.querySelector("[data-role=state]");
    if (bar) {
      bar.value = answer.progress;
      bar.textContent = Math.round(answer.progress * 100) + " %";
    }
    if (label) {
      var text = answer.protection;
      if (answer.reason) { text += " (" + answer.reason + ")"; }
      label.textContent = text;
    }
    item.setAttribute("data-state", answer.state);
    var placeholder = item.querySelector("[data-role=placeholder]");
    if (placeholder && answer.preview_url) {
      var image = document.createElement("img");
      image.src = answer.preview_url;
      image.alt = placeholder.getAttribute("data-alt") || "";
      placeholder.parentNode.replaceChild(image, placeholder);
    }
  }

  function published(url) {
    var notice = document.getElementById("published-notice");
    var state = document.getElementById("work-state");
    if (state) { state.setAttribute("data-published", "true"); state.hidden = true; }
    if (notice) {
      var link = notice.querySelector("a");
      if (link && url) { link.href = url; }
      notice.hidden = false;
    }
  }

  function anyFailed() {
    for (var i = 0; i < items.length; i++) {
      if (items[i].getAttribute("data-state") === "failed") { return true; }
    }
    return false;
  }

  function poll(item) {
    var request = new XMLHttpRequest();
    request.open("GET", item.getAttribute("data-progress-url"));
    request.setRequestHeader("Accept", "application/json");
    request.onload = function () {
      if (request.status !== 200) { return; }  // signed out or deleted: stop quietly
      var answer;
      try { answer = JSON.parse(request.responseText); } catch (e) { return; }
      update(item, answer);
      if (answer.published) { published(answer.url); }
      if (answer.state === "processing" && !answer.published) {
        window.setTimeout(function () { poll(item); }, POLL_MS);
      } else if (answer.state === "ready" && !answer.published && !anyFailed()) {
        // This image is done; the work waits for its other images (unless one has
        // failed: then the author must choose, and polling stops).
        window.setTimeout(function () { poll(item); }, POLL_MS * 2);
      }
    };
    request.send();
  }

  var state = document.getElementById("work-state");
  if (state && state.getAttribute("data-published") === "true") { return; }
  for (var i = 0; i < items.length; i++) { poll(items[i]); }
})();
