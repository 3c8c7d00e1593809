/* Attachment previews on the record, edit and task pages (loaded only where a field is an
 * attachment field). A link marked data-preview="pdf" or "image" (the record page's files,
 * the attachment widget's files, an upload just made) opens the page's preview dialog
 * (templates/workspace/_preview.html) instead of leaving the page; a click with a
 * modifier key, or a page without this script, follows the link as before (the server
 * sends the file).
 *
 * Opening a PDF, in order: the vendored pdf.js is imported (on the first PDF, not on page
 * load); the document is fetched from the same origin with the session's cookie; one
 * canvas per page (at most MAX_PAGES, a note says when there are more) is laid out at the
 * dialog's width; each is drawn when it scrolls near the dialog's view. Closing the dialog
 * (Esc, ✕, a click outside) stops the drawing, frees the document and its worker, and the
 * focus goes back to the link.
 *
 * Under the CSP: pdf.js runs without eval (isEvalSupported: false) and without
 * WebAssembly (useWasm: false; its JavaScript fallbacks instead), its worker and
 * fallbacks from /static. Its texts come from the dialog's data-text-* attributes, which
 * the server translates.
 */
(function () {
  "use strict";

  var MAX_PAGES = 30;  // canvases cost memory: a phone holds about 3 MB per drawn page
  var MAX_SCALE = 2;  // device pixels per CSS pixel, at most (sharp enough, half the memory of 3)
  var pdfjs = null;  // the promise of the pdf.js module, once asked for
  var opened = null;  // what the open dialog shows: {link, task, observer}

  function dialog() { return document.getElementById("preview"); }

  function text(name, values) {
    var template = dialog().getAttribute("data-text-" + name) || "";
    return template.replace(/\{(\w+)\}/g, function (all, key) {
      return key in values ? String(values[key]) : all;
    });
  }

  function loadPdfjs(box) {
    if (!pdfjs) {
      pdfjs = import(box.getAttribute("data-pdfjs")).then(function (lib) {
        lib.GlobalWorkerOptions.workerSrc = box.getAttribute("data-pdfjs-worker");
        return lib;
      });
      pdfjs.catch(function () { pdfjs = null; });  // a later click tries again
    }
    return pdfjs;
  }

  function say(message, isError) {
    var meta = document.getElementById("preview-meta");
    meta.textContent = message;
    meta.classList.toggle("error", Boolean(isError));
  }

  function failed(current) {
    if (opened !== current) { return; }
    document.getElementById("preview-body").textContent = "";
    say(text("failed", {}), true);
  }

  /* -- PDF ------------------------------------------------------------------------- */

  function draw(current, pdf, canvas) {
    var number = parseInt(canvas.getAttribute("data-page"), 10);
    return pdf.getPage(number).then(function (page) {
      if (opened !== current) { return null; }
      var width = canvas.clientWidth || 600;  // its CSS width: the dialog's, less padding
      var scale = Math.min(window.devicePixelRatio || 1, MAX_SCALE);
      var natural = page.getViewport({ scale: 1 });
      var viewport = page.getViewport({ scale: (width * scale) / natural.width });
      canvas.width = Math.floor(viewport.width);
      canvas.height = Math.floor(viewport.height);
      var task = page.render({ canvas: canvas, viewport: viewport });
      return task.promise.then(function () {
        canvas.setAttribute("data-drawn", "");
        page.cleanup();
      });
    }).catch(function () {
      if (opened === current) { canvas.classList.add("error"); }
    });
  }

  function layOut(current, pdf, first) {
    var body = document.getElementById("preview-body");
    var shown = Math.min(pdf.numPages, MAX_PAGES);
    var size = first.getViewport({ scale: 1 });
    say(text("pages", { n: pdf.numPages }), false);
    current.observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (!entry.isIntersecting) { return; }
        current.observer.unobserve(entry.target);
        draw(current, pdf, entry.target);
      });
    }, { root: body, rootMargin: "50% 0px" });
    for (var n = 1; n <= shown; n++) {
      var canvas = document.createElement("canvas");
      canvas.className = "preview-page";
      canvas.setAttribute("data-page", String(n));
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", text("page", { n: n, total: pdf.numPages }));
      // The first page's proportions hold the place until a page is drawn at its own.
      canvas.width = Math.round(size.width);
      canvas.height = Math.round(size.height);
      body.appendChild(canvas);
      current.observer.observe(canvas);
    }
    if (pdf.numPages > shown) {
      var note = document.createElement("p");
      note.className = "muted small preview-note";
      note.textContent = text("more", { shown: shown, n: pdf.numPages });
      body.appendChild(note);
    }
  }

  function showPdf(current, box, url) {
    loadPdfjs(box).then(function (lib) {
      if (opened !== current) { return null; }
      current.task = lib.getDocument({
        url: url,
        isEvalSupported: false,  // no new Function(): the CSP has no 'unsafe-eval'
        useWasm: false,  // no WebAssembly: the CSP has no 'wasm-unsafe-eval'
        wasmUrl: box.getAttribute("data-pdfjs-wasm"),  // where the JS fallbacks are
        cMapUrl: box.getAttribute("data-pdfjs-cmaps"),
        cMapPacked: true,
        enableXfa: false
      });
      return current.task.promise.then(function (pdf) {
        return pdf.getPage(1).then(function (first) {
          if (opened === current) {
            document.getElementById("preview-body").textContent = "";
            layOut(current, pdf, first);
          }
        });
      });
    }).catch(function () { failed(current); });
  }

  /* -- images ---------------------------------------------------------------------- */

  function showImage(current, url, name) {
    var body = document.getElementById("preview-body");
    var image = new Image();
    image.className = "preview-image";
    image.alt = name;
    image.addEventListener("load", function () {
      if (opened !== current) { return; }
      say(image.naturalWidth + " × " + image.naturalHeight, false);
      body.textContent = "";
      body.appendChild(image);
    });
    image.addEventListener("error", function () { failed(current); });
    image.src = url;
  }

  /* -- the dialog ------------------------------------------------------------------- */

  function open(link) {
    var box = dialog();
    if (!box || typeof box.showModal !== "function") { return false; }
    close();
    var url = link.getAttribute("href");
    var name = link.textContent.trim();
    var current = opened = { link: link, task: null, observer: null };
    document.getElementById("preview-title").textContent = name;
    var download = document.getElementById("preview-download");
    download.href = url;
    download.setAttribute("download", name);
    var body = document.getElementById("preview-body");
    body.textContent = "";
    body.scrollTop = 0;
    say(text("loading", {}), false);
    if (!box.open) { box.showModal(); }
    if (link.getAttribute("data-preview") === "pdf") { showPdf(current, box, url); }
    else { showImage(current, url, name); }
    return true;
  }

  function close() {
    var current = opened;
    opened = null;
    if (!current) { return; }
    if (current.observer) { current.observer.disconnect(); }
    if (current.task) { current.task.destroy(); }
    var body = document.getElementById("preview-body");
    if (body) { body.textContent = ""; }
  }

  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0 || event.ctrlKey || event.metaKey ||
        event.shiftKey || event.altKey) { return; }
    var link = event.target.closest("a[data-preview]");
    var thumb = !link && event.target.closest("[data-file] img.thumb");
    if (thumb) { link = thumb.parentNode.querySelector("a[data-preview]"); }
    if (link && open(link)) { event.preventDefault(); }
  });

  document.addEventListener("close", function (event) {
    if (event.target !== dialog() || !opened) { return; }
    var link = opened.link;
    close();
    if (link.isConnected) { link.focus(); }
  }, true);
}());
