/* The import page (frontend/workspace/pages_import.py): small conveniences over plain forms
 * that work without it.
 * - the upload form: a chosen or dropped file is sent at once (drag-and-drop onto the box);
 * - a changed sheet re-reads the file (its GET form is sent);
 * - choosing a saved mapping opens the map step with it (?mapping=name).
 * The column mapping itself refreshes through htmx attributes (no code here).
 */
(function () {
  "use strict";

  function setUp() {
    var upload = document.querySelector("form[data-import-upload]");
    if (upload) {
      var input = upload.querySelector("input[type=file]");
      var drop = upload.querySelector(".import-drop");
      input.addEventListener("change", function () {
        if (input.files && input.files.length) { upload.requestSubmit(); }
      });
      ["dragenter", "dragover"].forEach(function (kind) {
        drop.addEventListener(kind, function (event) {
          event.preventDefault();
          drop.classList.add("over");
        });
      });
      drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
      drop.addEventListener("drop", function (event) {
        event.preventDefault();
        drop.classList.remove("over");
        if (event.dataTransfer && event.dataTransfer.files.length) {
          input.files = event.dataTransfer.files;
          upload.requestSubmit();
        }
      });
    }
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.requestSubmit(); });
    });
    var load = document.getElementById("load-mapping");
    if (load) {
      load.addEventListener("change", function () {
        if (load.value) {
          window.location.assign(load.getAttribute("data-load-mapping") + "&mapping=" +
                                 encodeURIComponent(load.value));
        }
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
