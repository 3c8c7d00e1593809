/* Report and dashboard charts (pages_reports.py). The CSP allows no inline script, so
 * each chart's figure and drill-down links come in a <script type="application/json">
 * block named by the chart's data-chart attribute:
 * - a dashboard widget is placed on the 12-column grid from its data-x/y/w/h (CSS custom
 *   properties: reports.css decides, and stacks the widgets on a phone, by data-order
 *   when the dashboard gives one);
 * - each widget's body is fetched on its own from its data-src (one request per widget,
 *   so the browser loads them in parallel; the server answers the widgets of one page
 *   load from one shared read, see frontend/dashboard_loads.py), then drawn as it
 *   arrives; an error shows in the widget's own box;
 * - Plotly.newPlot draws the figure (a widget's chart fills its cell: no fixed height);
 * - clicking a bar, slice or point opens the page of the records behind it
 *   (links[trace][point], built by the server: same-site paths only).
 */
(function () {
  "use strict";

  function place(widget) {
    var x = Number(widget.getAttribute("data-x")) || 0;
    var y = Number(widget.getAttribute("data-y")) || 0;
    var w = Number(widget.getAttribute("data-w")) || 6;
    var h = Number(widget.getAttribute("data-h")) || 4;
    widget.style.setProperty("--col", (x + 1) + " / span " + w);
    widget.style.setProperty("--row", (y + 1) + " / span " + h);
    widget.style.setProperty("--h", String(h));
    var order = widget.getAttribute("data-order");
    if (order !== null && order !== "") { widget.style.setProperty("--order", order); }
  }

  function load(widget) {
    var body = widget.querySelector(".widget-body");
    fetch(widget.getAttribute("data-src"), { credentials: "same-origin",
                                              headers: { "Accept": "text/html" } })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        body.innerHTML = html;
        body.removeAttribute("aria-busy");
        widget.classList.add("loaded");
        if (window.Plotly) { body.querySelectorAll("[data-chart]").forEach(draw); }
      })
      .catch(function () {
        body.removeAttribute("aria-busy");
        body.textContent = "";
        var p = document.createElement("p");
        p.className = "msg error widget-error";
        p.textContent = widget.getAttribute("data-failed") || "⚠";
        body.appendChild(p);
        widget.classList.add("loaded");
      });
  }

  function sameSite(url) {
    return typeof url === "string" && url.charAt(0) === "/" && url.charAt(1) !== "/" &&
      url.charAt(1) !== "\\";
  }

  function draw(holder) {
    var source = document.getElementById(holder.getAttribute("data-chart"));
    if (!source) { return; }
    var payload = JSON.parse(source.textContent);
    var figure = payload.figure || {};
    var layout = figure.layout || {};
    if (holder.classList.contains("fit")) {
      delete layout.height;
    } else if (layout.height) {
      holder.style.height = layout.height + "px";
    }
    window.Plotly.newPlot(holder, figure.data || [], layout, figure.config || {})
      .then(function () {
        if (!payload.links) { return; }
        holder.classList.add("drillable");
        holder.on("plotly_click", function (event) {
          var point = event && event.points && event.points[0];
          var links = point ? payload.links[point.curveNumber] : null;
          var url = links ? links[point.pointNumber] : null;
          if (sameSite(url)) { window.location.assign(url); }
        });
      });
  }

  function start() {
    document.querySelectorAll(".widget[data-w]").forEach(place);
    document.querySelectorAll(".widget[data-src]").forEach(load);
    if (!window.Plotly) { return; }
    document.querySelectorAll("[data-chart]").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
