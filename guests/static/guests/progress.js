/* Progress of the guest import and bulk send pages: poll the page's JSON view every second,
   update each <progress data-bar> with its "n of m" ([data-bar-count]), the text, the state
   ([data-state]) and the statuses table ([data-rows]: a row per status with its count and
   link), until the job is finished (a bulk send's statuses for ten minutes more: delivered,
   opened and bounced arrive after the send); reload the page when the job moves to another
   status (the import page then shows its preview, result or error). No dependencies. */
(function () {
  "use strict";

  function setBars(box, bars) {
    Object.keys(bars || {}).forEach(function (name) {
      var bar = box.querySelector('progress[data-bar="' + name + '"]');
      var count = box.querySelector('[data-bar-count="' + name + '"]');
      var done = bars[name][0], total = bars[name][1];
      if (bar && total > 0) {
        bar.max = total;
        bar.value = Math.min(done, total);
      } else if (bar) {
        bar.removeAttribute("value"); /* indeterminate */
      }
      if (count) { count.textContent = total > 0 ? done + " of " + total : ""; }
    });
  }

  function setRows(table, rows) {
    var body = table.tBodies[0];
    while (body.firstChild) { body.removeChild(body.firstChild); }
    rows.forEach(function (row) {
      var tr = body.insertRow(), label = tr.insertCell(), count = tr.insertCell();
      var link = document.createElement("a");
      tr.setAttribute("data-status", row.status);
      link.href = row.url;
      link.textContent = row.label;
      label.appendChild(link);
      count.className = "num";
      count.textContent = row.count;
    });
  }

  function poll(box) {
    var url = box.getAttribute("data-progress-url");
    var shown = box.getAttribute("data-status");
    var text = box.querySelector("[data-text]");
    var state = document.querySelector("[data-state]");
    var table = document.querySelector("table[data-rows]");
    var settled = 0;

    function update(data) {
      setBars(box, data.bars);
      if (text) { text.textContent = data.text || ""; }
      if (state && data.state) { state.textContent = data.state; }
      if (table && data.rows && data.rows.length) { setRows(table, data.rows); }
      if (data.finished) { box.setAttribute("data-finished", "1"); }
    }

    function tick() {
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (data) {
          update(data);
          if (data.status !== shown && !data.rows) {
            window.location.reload();
          } else if (!data.finished) {
            /* a send scheduled for later: the server says to ask less often */
            window.setTimeout(tick, 1000 * (data.pollSeconds || 1));
          } else if (data.rows && settled < 200) {
            /* every ticket left Herald: outcomes (delivered, bounced) keep arriving */
            settled += 1;
            window.setTimeout(tick, 3000);
          }
        })
        .catch(function () { window.setTimeout(tick, 5000); });
    }

    tick();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var boxes = document.querySelectorAll("[data-progress-url]");
    Array.prototype.forEach.call(boxes, function (box) {
      if (!box.hasAttribute("data-finished") || document.querySelector("table[data-rows]")) {
        poll(box);
      }
    });
  });
})();
