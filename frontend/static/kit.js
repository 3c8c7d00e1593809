/* Small helpers the admin editors share (designer.js, menus.js): building elements,
 * filling "{name}" placeholders, and JSON calls to the API with the session's CSRF
 * token (from <meta name="csrf-token">). Loaded before them. */
(function () {
  "use strict";

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) { return; }
      if (k === "text") { node.textContent = v; }
      else if (k === "value") { node.value = v; }
      else if (k === "checked") { node.checked = true; }
      else if (k.indexOf("on") === 0) { node.addEventListener(k.slice(2), v); }
      else { node.setAttribute(k, v === true ? "" : v); }
    });
    (children || []).forEach(function (c) {
      if (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); }
    });
    return node;
  }
  function fmt(text, values) {
    return text.replace(/\{(\w+)\}/g, function (_m, k) { return values[k]; });
  }
  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  function send(method, url, body) {
    return fetch(url, {
      method: method, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf(),
                 "Accept": "application/json, text/html" }
    });
  }

  window.QiaoKit = { el: el, fmt: fmt, csrf: csrf, send: send,
                     $: function (id) { return document.getElementById(id); } };
})();
