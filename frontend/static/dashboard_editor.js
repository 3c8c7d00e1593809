/* The dashboard editor (pages_dashboard_editor.py): a 12-column gridstack grid of report
 * widgets. Reports are dragged in from the palette (GridStack.setupDragIn) or added with
 * their button, then moved and resized; the selected widget's title, chart override and
 * phone order are edited in its panel; shared parameters list the widgets they reach
 * (a widget's report declares a parameter with the same key); roles are checkboxes.
 * Save sends the DashboardSpec to the API (POST to create, PUT for a new version) and
 * shows the API's problems in place (widgets.N.… marks widget N). No inline styles:
 * gridstack places items through the CSSOM and --gs-cell-height (a CSS variable). */
(function () {
  "use strict";
  var K = window.QiaoKit, $ = K.$, el = K.el;
  var setup = JSON.parse($("editor-setup").textContent);
  var words = $("t-words").dataset;
  var reports = {};
  setup.reports.forEach(function (r) { reports[r.key] = r; });
  var state = new WeakMap();  // item element → {report, title, chart, order}
  var params = [];
  var selected = null;
  var spec = setup.dashboard ? setup.dashboard.spec : null;

  var grid = window.GridStack.init({
    column: 12, cellHeight: 70, margin: 6, float: true, acceptWidgets: ".palette-item",
    removable: false
  }, $("grid"));

  function nameOf(key) { return reports[key] ? reports[key].name : key; }

  function paint(item) {
    var s = state.get(item);
    var content = item.querySelector(".grid-stack-item-content");
    content.className = "grid-stack-item-content dw";
    content.textContent = "";
    var chart = s.chart || (reports[s.report] ? reports[s.report].chart : "");
    content.appendChild(el("strong", { text: s.title || nameOf(s.report) }));
    content.appendChild(el("span", { "class": "badge", text: chart === "kpi" ? words.kpi : chart }));
    if (!reports[s.report]) { content.appendChild(el("span", { "class": "muted small", text: words.unknown })); }
    content.appendChild(el("span", { "class": "muted small", text: s.report }));
    item.setAttribute("data-report", s.report);
  }

  function add(report, opts, extra) {
    var item = el("div", { "class": "grid-stack-item" }, [el("div", { "class": "grid-stack-item-content" })]);
    state.set(item, Object.assign({ report: report }, extra || {}));
    paint(item);
    grid.makeWidget(item, Object.assign({ w: 6, h: 4 }, opts || {}));
    changed();
    return item;
  }

  // -- the palette ---------------------------------------------------------------------
  setup.reports.forEach(function (r) {
    var drag = el("div", { "class": "grid-stack-item palette-item", "data-report": r.key, "gs-w": "6", "gs-h": "4" },
      [el("div", { "class": "grid-stack-item-content", text: r.name })]);
    $("palette-list").appendChild(el("li", {}, [drag,
      el("button", { type: "button", "class": "small", "data-add": r.key, text: words.add,
                     onclick: function () { select(add(r.key, {})); } })]));
  });
  window.GridStack.setupDragIn(".palette .palette-item", { appendTo: "body", helper: "clone" });
  grid.on("dropped", function (_e, _prev, node) {
    var report = node.el.getAttribute("data-report");
    var at = { x: node.x, y: node.y, w: node.w, h: node.h };
    grid.removeWidget(node.el, true, false);
    select(add(report, at));
  });
  grid.on("change", changed);

  // -- the selected widget -------------------------------------------------------------
  ["table"].concat(setup.charts).forEach(function (c, i) {
    $("w-chart").appendChild(el("option", { value: i === 0 ? "" : c, text: i === 0 ? words["default"] : (c === "kpi" ? words.kpi + " (kpi)" : c) }));
  });
  function select(item) {
    if (selected) { selected.classList.remove("selected"); }
    selected = item;
    $("widget-panel").hidden = !item;
    if (!item) { return; }
    item.classList.add("selected");
    var s = state.get(item);
    $("w-title").value = s.title || "";
    $("w-chart").value = s.chart || "";
    $("w-order").value = s.order === undefined || s.order === null ? "" : s.order;
  }
  $("grid").addEventListener("click", function (e) {
    var item = e.target.closest(".grid-stack-item");
    if (item && state.has(item)) { select(item); }
  });
  function edit(field, value) {
    if (!selected) { return; }
    state.get(selected)[field] = value;
    paint(selected);
  }
  $("w-title").addEventListener("input", function () { edit("title", this.value.trim() || null); });
  $("w-chart").addEventListener("change", function () { edit("chart", this.value || null); });
  $("w-order").addEventListener("input", function () { edit("order", this.value === "" ? null : Number(this.value)); });
  $("w-remove").addEventListener("click", function () {
    if (!selected) { return; }
    grid.removeWidget(selected);
    select(null);
    changed();
  });

  // -- shared parameters: which widgets each one reaches --------------------------------
  setup.parameter_types.forEach(function (t) { $("np-type").appendChild(el("option", { value: t, text: t })); });
  function items() { return grid.getGridItems().filter(function (i) { return state.has(i); }); }
  function drawParams() {
    var list = $("param-list");
    list.textContent = "";
    params.forEach(function (p, i) {
      var reach = items().filter(function (it) {
        var r = reports[state.get(it).report];
        return r && r.parameters.indexOf(p.key) >= 0;
      }).map(function (it) { var s = state.get(it); return s.title || nameOf(s.report); });
      list.appendChild(el("li", { "data-param": p.key }, [
        el("strong", { text: (p.label || p.key) + " " }), el("code", { text: p.key + " · " + p.type }), " ",
        el("span", { "class": "muted small reaches", text: reach.length ? words.reaches + reach.join("、") : words.none }), " ",
        el("button", { type: "button", "class": "small", text: words.remove,
                       onclick: function () { params.splice(i, 1); drawParams(); } })]));
    });
  }
  $("np-add").addEventListener("click", function () {
    var key = $("np-key").value.trim();
    if (!key) { $("np-key").focus(); return; }
    params.push({ key: key, type: $("np-type").value, label: $("np-label").value.trim() || null });
    $("np-key").value = ""; $("np-label").value = "";
    drawParams();
  });
  function changed() { $("grid-empty").hidden = items().length > 0; drawParams(); }

  // -- roles -----------------------------------------------------------------------------
  var roleKeys = setup.roles.map(function (r) { return r.key; });
  var chosen = spec && spec.roles ? spec.roles : [];
  chosen.forEach(function (k) { if (roleKeys.indexOf(k) < 0) { setup.roles.push({ key: k, name: k }); } });
  setup.roles.forEach(function (r) {
    var id = "role-" + r.key;
    $("d-roles").appendChild(el("label", { "for": id, "class": "check" }, [
      el("input", { type: "checkbox", id: id, value: r.key, checked: chosen.indexOf(r.key) >= 0 }), " " + r.name]));
  });

  // -- load, build, save -----------------------------------------------------------------
  if (spec) {
    $("d-name").value = spec.name; $("d-key").value = spec.key;
    $("d-description").value = spec.description || "";
    params = (spec.parameters || []).map(function (p) { return Object.assign({}, p); });
    grid.batchUpdate();
    spec.widgets.forEach(function (w) {
      add(w.report, { x: w.x || 0, y: w.y || 0, w: w.w || 6, h: w.h || 4 },
          { title: w.title || null, chart: w.chart || null, order: w.order === undefined ? null : w.order });
    });
    grid.batchUpdate(false);
  }
  changed();

  function build() {
    var widgets = items().map(function (it) {
      var n = it.gridstackNode, s = state.get(it), w = { report: s.report, x: n.x, y: n.y, w: n.w, h: n.h };
      if (s.title) { w.title = s.title; }
      if (s.chart) { w.chart = s.chart; }
      if (s.order !== null && s.order !== undefined && !isNaN(s.order)) { w.order = s.order; }
      return w;
    });
    widgets.sort(function (a, b) { return a.y - b.y || a.x - b.x; });
    var roles = Array.prototype.map.call($("d-roles").querySelectorAll("input:checked"), function (i) { return i.value; });
    var out = { key: $("d-key").value.trim(), name: $("d-name").value.trim(), parameters: params.map(function (p) {
      var q = { key: p.key, type: p.type };
      if (p.label) { q.label = p.label; }
      if (p["default"] !== undefined && p["default"] !== null) { q["default"] = p["default"]; }
      return q;
    }), widgets: widgets };
    if ($("d-description").value.trim()) { out.description = $("d-description").value.trim(); }
    if (roles.length) { out.roles = roles; }
    return { doc: out, items: items().sort(function (a, b) {
      var p = a.gridstackNode, q = b.gridstackNode; return p.y - q.y || p.x - q.x; }) };
  }

  function show(kind, text, problems) {
    var box = $("editor-msg");
    box.textContent = "";
    var msg = el("div", { "class": "msg " + kind, role: kind === "error" ? "alert" : "status", id: "editor-result" }, [text]);
    if (problems && problems.length) {
      msg.appendChild(el("ul", { id: "editor-problems" }, problems.map(function (p) { return el("li", { text: p }); })));
    }
    box.appendChild(msg);
  }

  $("save").addEventListener("click", function () {
    var built = build(), doc = built.doc;
    built.items.forEach(function (it) { it.classList.remove("bad"); });
    var base = "/api/v1/apps/" + encodeURIComponent(setup.app) + "/dashboards";
    var editing = !!setup.dashboard;
    K.send(editing ? "PUT" : "POST", editing ? base + "/" + encodeURIComponent(spec.key) : base, doc)
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (res.ok) {
          show("ok", K.fmt(words.saved, { version: res.body.version }));
          if (!editing) {
            window.location.assign("/apps/" + setup.app + "/dashboards/" + res.body.key + "/edit");
          } else {
            setup.dashboard.version = res.body.version;
          }
          return;
        }
        var problems = res.body.problems || [];
        problems.forEach(function (p) {
          var m = /^widgets\.(\d+)/.exec(p);
          if (m && built.items[Number(m[1])]) { built.items[Number(m[1])].classList.add("bad"); }
        });
        show("error", res.body.detail || res.body.title || "error", problems);
      });
  });
}());
