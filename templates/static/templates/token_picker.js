/* The template form's token picker: a click on a token inserts it at the cursor of the
   subject or body that last had the focus (the subject when none had). */
(function () {
  "use strict";
  var FIELDS = ["id_subject", "id_text_body", "id_html_body"];
  var last = null;

  function insert(field, text) {
    var start = field.selectionStart != null ? field.selectionStart : field.value.length;
    var end = field.selectionEnd != null ? field.selectionEnd : start;
    field.value = field.value.slice(0, start) + text + field.value.slice(end);
    var at = start + text.length;
    field.focus();
    field.setSelectionRange(at, at);
    field.dispatchEvent(new Event("input", { bubbles: true }));
    field.dispatchEvent(new Event("change", { bubbles: true }));
  }

  document.addEventListener("focusin", function (event) {
    if (FIELDS.indexOf(event.target.id) !== -1) last = event.target;
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-token]") : null;
    if (!button) return;
    event.preventDefault();
    var field = last || document.getElementById(FIELDS[0]);
    if (field) insert(field, button.getAttribute("data-token"));
  });
})();
