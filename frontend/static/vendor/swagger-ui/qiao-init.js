/* Qiao's own start-up of Swagger UI on /docs (not part of the swagger-ui-dist tarball).
 * The CSP allows no inline script, so the document to show comes from the page
 * (#swagger-ui[data-spec-url]); choosing another app reloads the page with ?app=.
 * Same-origin requests carry the session cookie; writes also carry the CSRF token. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("swagger-ui");
    var choice = document.querySelector("[data-submit-on-change]");
    if (choice) {
      choice.addEventListener("change", function () { choice.form.submit(); });
    }
    if (!root || typeof window.SwaggerUIBundle !== "function") { return; }
    window.SwaggerUIBundle({
      url: root.getAttribute("data-spec-url"),
      domNode: root,
      deepLinking: true,
      validatorUrl: null,  // never ask an outside validator about the document
      tryItOutEnabled: false,
      requestInterceptor: function (request) {
        var method = (request.method || "GET").toUpperCase();
        if (method !== "GET" && method !== "HEAD") {
          request.headers["X-CSRF-Token"] = csrfToken();
        }
        return request;
      }
    });
  });
}());
