/* Qiao pages' only script of their own. The CSP allows scripts from this site only and no
 * inline script, so everything a page does in the browser is here:
 * - htmx requests carry the session's CSRF token (from <meta name="csrf-token">) in the
 *   X-CSRF-Token header; plain forms carry it in their hidden csrf_token field;
 * - a failed htmx request shows the problem's detail in the page's alert box;
 * - forms with data-confirm ask first; forms with data-drop-empty do not send selects
 *   left at their empty default (keeps a large permission matrix under the server's
 *   field limit; an absent field means the same as an empty one);
 * - [data-copy] buttons copy the text of the element they name;
 * - [data-qr] elements get a QR code of their value (vendored qrcode-generator).
 * Its own two messages follow the page's language (<html lang>, set by the server from
 * the user's choice or the browser's); the pages' text comes from the gettext catalogues.
 */
(function () {
  "use strict";

  var TEXT = {
    "zh-CN": {networkError: "网络错误，请重试。", copied: "已复制"},
    "en": {networkError: "Network error: try again.", copied: "Copied"}
  };

  function message(key) {
    var lang = document.documentElement.getAttribute("lang") || "";
    return (TEXT[lang] || TEXT[lang.split("-")[0]] || TEXT["zh-CN"])[key];
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function showError(text) {
    var box = document.getElementById("alert");
    if (!box) { return; }
    box.textContent = text;
    box.hidden = false;
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token) { event.detail.headers["X-CSRF-Token"] = token; }
  });

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var text = xhr.status + " " + (xhr.statusText || "");
    try {
      var problem = JSON.parse(xhr.responseText);
      if (problem && problem.detail) { text = problem.detail; }
    } catch (ignored) { /* not problem+json: keep the status line */ }
    showError(text);
  });

  document.addEventListener("htmx:sendError", function () {
    showError(message("networkError"));
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    if (form.hasAttribute("data-drop-empty")) {
      form.querySelectorAll("select[data-optional]").forEach(function (select) {
        if (select.value === "") { select.disabled = true; }
      });
    }
  }, true);

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button || !navigator.clipboard) { return; }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (source) {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        button.textContent = message("copied");
      });
    }
  });

  function drawQrCodes() {
    if (typeof window.qrcode !== "function") { return; }
    document.querySelectorAll("[data-qr]").forEach(function (holder) {
      var code = window.qrcode(0, "M");
      code.addData(holder.getAttribute("data-qr"));
      code.make();
      var image = new Image();
      image.src = code.createDataURL(4, 8);
      image.alt = holder.getAttribute("data-qr-alt") || "QR code";
      image.className = "qr";
      holder.appendChild(image);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawQrCodes);
  } else {
    drawQrCodes();
  }
}());
