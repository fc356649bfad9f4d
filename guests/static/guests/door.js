/* The Door page (guests/admin_door.py): the camera scanner, the guest search and the live
   counts. Every check-in (a scanned token or a guest's "Check in" button) is one POST to the
   page's check-in URL, which answers what to show in big letters. The QR reader is jsQR,
   vendored in guests/static/guests/vendor/jsqr/ (served by Herald: no CDN). No other
   dependency. */
(function () {
  "use strict";

  var root = document.getElementById("door");
  if (!root) { return; }
  var $ = function (id) { return document.getElementById(id); };
  var csrf = root.querySelector("[name=csrfmiddlewaretoken]").value;
  var SAME_TOKEN_PAUSE = 4000; /* ms before the same code held in front of the camera counts again */
  var SCAN_EVERY = 150; /* ms between two frames read */

  /* --- the result, in big letters -------------------------------------------------------- */

  function show(result, title, detail) {
    var box = $("door-result");
    box.className = "door-result door-" + result;
    $("door-result-title").textContent = title;
    $("door-result-detail").textContent = detail || "";
  }

  function setCounts(counts) {
    if (!counts) { return; }
    $("door-checked-in").textContent = counts.checkedIn;
    $("door-expected").textContent = counts.expected;
    var bar = $("door-progress");
    bar.max = Math.max(counts.expected, 1);
    bar.value = counts.checkedIn;
  }

  var busy = false;

  function checkIn(fields) {
    if (busy) { return Promise.resolve(); }
    busy = true;
    $("door-result").classList.add("door-busy");
    var body = new URLSearchParams(fields);
    body.append("csrfmiddlewaretoken", csrf);
    return fetch(root.dataset.checkInUrl, {
      method: "POST", body: body, credentials: "same-origin",
      headers: {"X-CSRFToken": csrf, "Accept": "application/json"}
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (said) {
      show(said.result, said.title, said.detail);
      setCounts(said.counts);
      if (said.guest) { markGuest(said.guest); }
      if (said.result === "welcome") { refreshCounts(); }
    }).catch(function (error) {
      show("refused", "Not checked in", "Herald could not be reached (" + error.message + "): try again.");
    }).then(function () {
      busy = false;
      $("door-result").classList.remove("door-busy");
    });
  }

  /* --- live counts ------------------------------------------------------------------------ */

  function refreshCounts() {
    return fetch(root.dataset.countsUrl, {credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(setCounts).catch(function () { /* the next poll tries again */ });
  }
  setInterval(refreshCounts, parseInt(root.dataset.every, 10) || 5000);

  /* --- search ----------------------------------------------------------------------------- */

  var asked = 0, timer = null;

  function guestItem(guest) {
    var li = document.createElement("li");
    li.className = "door-guest";
    li.dataset.guest = guest.id;
    var who = document.createElement("div");
    who.className = "door-guest-who";
    var name = document.createElement("div");
    name.className = "door-guest-name";
    name.textContent = guest.name;
    var more = document.createElement("div");
    more.className = "door-guest-more";
    more.textContent = [guest.email, guest.reference].filter(Boolean).join(" · ");
    who.appendChild(name);
    who.appendChild(more);
    li.appendChild(who);
    li.appendChild(guestAction(guest));
    return li;
  }

  function guestAction(guest) {
    if (guest["in"] || !root.dataset.canOperate) {
      var done = document.createElement("span");
      done.className = guest["in"] ? "door-guest-in" : "door-guest-out";
      done.textContent = guest["in"] || "Not checked in yet";
      return done;
    }
    var button = document.createElement("button");
    button.type = "button";
    button.className = "door-button door-primary";
    button.textContent = "Check in";
    button.setAttribute("aria-label", "Check in " + guest.name);
    button.addEventListener("click", function () {
      button.disabled = true;
      checkIn({attendee: guest.id}).then(function () {
        button.disabled = false;
        /* On a phone the list is below the fold: bring the answer into view. */
        $("door-result").scrollIntoView({block: "nearest"});
      });
    });
    return button;
  }

  function markGuest(guest) {
    var li = root.querySelector('.door-guest[data-guest="' + guest.id + '"]');
    if (li) { li.replaceChild(guestAction(guest), li.lastChild); }
  }

  function search() {
    var query = $("door-search").value.trim();
    var mine = ++asked;
    if (!query) {
      $("door-guests").textContent = "";
      $("door-search-said").textContent = "";
      return;
    }
    fetch(root.dataset.searchUrl + "?q=" + encodeURIComponent(query), {credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (found) {
        if (mine !== asked) { return; } /* a later keystroke's answer is coming */
        var list = $("door-guests");
        list.textContent = "";
        found.guests.forEach(function (guest) { list.appendChild(guestItem(guest)); });
        $("door-search-said").textContent = found.guests.length ? "" : "No guest of this event matches “" + query + "”.";
      }).catch(function () {
        $("door-search-said").textContent = "The search did not answer: try again.";
      });
  }

  $("door-search").addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(search, 200);
  });

  /* --- the camera ------------------------------------------------------------------------- */

  var stream = null, loop = null, last = "", lastAt = 0;
  var video = $("door-video"), canvas = $("door-canvas");

  function cameraSaid(text) {
    var said = $("door-camera-said");
    said.hidden = !text;
    said.textContent = text || "";
  }

  function frame() {
    if (!stream || video.readyState < 2 || !video.videoWidth) { return; }
    var scale = Math.min(1, 640 / video.videoWidth);
    var width = Math.round(video.videoWidth * scale), height = Math.round(video.videoHeight * scale);
    canvas.width = width;
    canvas.height = height;
    var context = canvas.getContext("2d", {willReadFrequently: true});
    context.drawImage(video, 0, 0, width, height);
    var code = window.jsQR(context.getImageData(0, 0, width, height).data, width, height,
                           {inversionAttempts: "attemptBoth"});
    if (!code || !code.data || busy) { return; }
    var now = Date.now();
    if (code.data === last && now - lastAt < SAME_TOKEN_PAUSE) { return; }
    last = code.data;
    lastAt = now;
    root.dataset.scanned = String((parseInt(root.dataset.scanned || "0", 10)) + 1);
    checkIn({token: code.data});
  }

  function start() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      cameraSaid("This browser cannot use a camera on this page (it needs HTTPS): find guests by name below.");
      return;
    }
    if (typeof window.jsQR !== "function") {
      cameraSaid("The QR reader did not load: reload the page.");
      return;
    }
    $("door-camera-start").disabled = true;
    navigator.mediaDevices.getUserMedia({video: {facingMode: {ideal: "environment"}}, audio: false})
      .then(function (camera) {
        stream = camera;
        video.srcObject = camera;
        return video.play();
      }).then(function () {
        $("door-video-box").hidden = false;
        $("door-camera-start").hidden = true;
        $("door-camera-stop").hidden = false;
        cameraSaid("Hold the ticket's QR code inside the frame.");
        loop = setInterval(frame, SCAN_EVERY);
      }).catch(function (error) {
        stop();
        cameraSaid("The camera could not start (" + (error.name || error.message) + "): allow the camera for this site, or find guests by name below.");
      });
  }

  function stop() {
    clearInterval(loop);
    loop = null;
    if (stream) { stream.getTracks().forEach(function (track) { track.stop(); }); }
    stream = null;
    video.srcObject = null;
    $("door-video-box").hidden = true;
    $("door-camera-start").hidden = false;
    $("door-camera-start").disabled = false;
    $("door-camera-stop").hidden = true;
    cameraSaid("");
  }

  if ($("door-camera-start")) { /* only for who may let guests in */
    $("door-camera-start").addEventListener("click", start);
    $("door-camera-stop").addEventListener("click", stop);
  }
}());
