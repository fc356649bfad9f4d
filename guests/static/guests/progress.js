/* Progress bars of the guest import and bulk send pages: poll the page's JSON view, update
   each <progress data-bar>, and reload the page when the job moves to another status (the
   page then shows the preview, the result or the error). No dependencies. */
(function () {
  "use strict";

  function poll(box) {
    var url = box.getAttribute("data-progress-url");
    var shown = box.getAttribute("data-status");
    var text = box.querySelector("[data-text]");

    function update(data) {
      Object.keys(data.bars || {}).forEach(function (name) {
        var bar = box.querySelector('progress[data-bar="' + name + '"]');
        var done = data.bars[name][0], total = data.bars[name][1];
        if (!bar) { return; }
        if (total > 0) {
          bar.max = total;
          bar.value = Math.min(done, total);
        } else {
          bar.removeAttribute("value"); /* indeterminate */
        }
      });
      if (text) { text.textContent = data.text || ""; }
    }

    function tick() {
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (data) {
          update(data);
          if (data.status !== shown) {
            window.location.reload();
          } else if (!data.finished) {
            window.setTimeout(tick, 1000);
          }
        })
        .catch(function () { window.setTimeout(tick, 5000); });
    }

    tick();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var boxes = document.querySelectorAll("[data-progress-url]");
    Array.prototype.forEach.call(boxes, function (box) {
      if (!box.hasAttribute("data-finished")) { poll(box); }
    });
  });
})();
