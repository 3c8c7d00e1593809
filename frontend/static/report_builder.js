/* The report builder (pages_report_builder.py). The working report spec lives here; each
 * change redraws the controls it affects and, 400 ms after the last one:
 * - POST …/reports/builder/check: the problems saving would report (a measure's own
 *   problem is shown beside it) and, per chart type, why this shape cannot draw it (that
 *   option is disabled and the reason listed);
 * - POST …/reports/builder/preview: the chart and table as the viewer would see them.
 * Dimensions are dragged from the field chips into the 维度 zone (SortableJS, max 3) or
 * added with ＋. Saving sends the spec to the API (POST, or PUT for an existing report);
 * its problem+json is shown in place, and a measure's problem beside that measure.
 */
(function () {
  "use strict";
  var K = window.QiaoKit, el = K.el, $ = K.$;
  var D = JSON.parse($("builder-data").textContent);
  var L = D.labels, W = D.labels.words;
  var NUMERIC = ["number", "money", "integer"];
  var DATES = ["date", "datetime", "timestamp"];
  var MAX_DIMS = 3, WAIT = 400;
  var state, timer = null, seq = 0;

  // -- the state ⇄ the spec --------------------------------------------------------------

  function sourceId(src) {
    if (!src) { return D.sources.length ? D.sources[0].id : ""; }
    if (src.of === "audit") { return "audit"; }
    if (src.flow) { return (src.of || "instances") + ":" + src.flow; }
    return "form:" + src.form;
  }
  function source() {
    return D.sources.filter(function (s) { return s.id === state.source; })[0] ||
      { fields: [], source: {} };
  }
  function plainNumber(f) {  // a number or money, not an id of a relation, user …
    return NUMERIC.indexOf(f.kind) >= 0 && f.display === f.kind && f.key !== "id" &&
      f.key !== "row_version";
  }
  function field(key) {
    return source().fields.filter(function (f) { return f.key === key; })[0];
  }

  function load(spec) {
    spec = spec || {};
    var all = !spec.filters ? [] : spec.filters.and ? spec.filters.and : [spec.filters];
    var leaves = all.filter(function (l) { return l.field && L.ops[l.op]; });
    var sort = (spec.sort || [])[0];
    state = {
      key: spec.key || "", name: spec.name || "", description: spec.description || "",
      source: sourceId(spec.source),
      dims: (spec.dimensions || []).map(function (d) {
        return { field: d.field, bucket: d.bucket || "", bins: (d.bins || []).join(", "),
                 label: d.label || "" };
      }),
      measures: (spec.measures || []).map(function (m) {
        var w = m.where && m.where.and ? m.where.and[0] : m.where;
        return { key: m.key || "", label: m.label || "", agg: m.agg || "", field: m.field || "",
                 expr: m.expr === undefined ? null : m.expr, format: m.format || "",
                 where: w ? { field: w.field, op: w.op, value: valueText(w.value) } : null };
      }),
      other: all.filter(function (l) { return leaves.indexOf(l) < 0; }),
      filters: leaves.map(function (l) {
        return { field: l.field, op: l.op, value: valueText(l.value) };
      }),
      params: (spec.parameters || []).map(function (p) {
        return { key: p.key, type: p.type, field: p.field || "", label: p.label || "" };
      }),
      chart: { type: (spec.chart || {}).type || "table", title: (spec.chart || {}).title || "",
               colors: (spec.chart || {}).colors || [] },
      sort: sort ? (sort.measure !== undefined ? "m" + sort.measure : "d" + sort.dimension) +
        (sort.desc ? ":desc" : ":asc") : "",
      limit: spec.limit || "",
      roles: spec.roles || [],
      schedule: spec.schedule ? { on: true, every: spec.schedule.every || "monday",
        at: spec.schedule.at || "09:00", period: spec.schedule.period || "last_week",
        roles: spec.schedule.roles || [] } :
        { on: false, every: "monday", at: "09:00", period: "last_week", roles: [] },
      segment: spec.segment ? { on: true, field: spec.segment.field,
        at: spec.segment.at || "02:00", rules: spec.segment.rules.slice() } :
        { on: false, field: "", at: "02:00", rules: [] }
    };
    if (!state.measures.length && !spec.key) {
      state.measures.push({ key: "n", label: "", agg: "count", field: "", expr: null,
                            format: "", where: null });
    }
  }

  function valueText(v) {
    if (v === undefined || v === null) { return ""; }
    return Array.isArray(v) ? v.join(", ") : String(v);
  }
  function typed(fieldKey, text) {
    var f = field(fieldKey);
    if (f && (f.kind === "number" || f.kind === "integer") && text !== "" && !isNaN(Number(text))) {
      return Number(text);
    }
    if (f && f.kind === "boolean") { return text === "true" || text === "是"; }
    return text;
  }
  function leaf(row) {
    var out = { field: row.field, op: row.op };
    if (row.op === "in" || row.op === "not_in") {
      out.value = String(row.value).split(/[,，]\s*/).filter(Boolean).map(function (v) {
        return typed(row.field, v.trim());
      });
    } else if (row.op !== "is_empty" && row.op !== "is_not_empty") {
      out.value = typed(row.field, row.value);
    }
    return out;
  }

  function toSpec() {
    var spec = { key: state.key.trim(), name: state.name.trim(), source: source().source };
    if (state.description.trim()) { spec.description = state.description.trim(); }
    // conditions the rows cannot show (or / not) are kept as they were
    var filters = state.other.concat(
      state.filters.filter(function (r) { return r.field && r.op; }).map(leaf));
    if (filters.length) { spec.filters = { and: filters }; }
    if (state.params.length) {
      spec.parameters = state.params.map(function (p) {
        var out = { key: p.key, type: p.type };
        if (p.field) { out.field = p.field; }
        if (p.label) { out.label = p.label; }
        return out;
      });
    }
    spec.dimensions = state.dims.map(function (d) {
      var out = { field: d.field };
      if (d.bucket) { out.bucket = d.bucket; }
      var bins = d.bins.split(/[,，\s]+/).filter(Boolean).map(Number);
      if (bins.length) { out.bins = bins; }
      if (d.label) { out.label = d.label; }
      return out;
    });
    spec.measures = state.measures.map(function (m) {
      var out = {};
      if (m.key) { out.key = m.key; }
      if (m.label) { out.label = m.label; }
      if (m.expr !== null) { out.expr = m.expr; } else {
        out.agg = m.agg || "count";
        if (m.field && out.agg !== "count") { out.field = m.field; }
        if (m.field && out.agg === "count") { out.agg = "count"; }
        if (m.where && m.where.field && m.where.op) { out.where = leaf(m.where); }
      }
      if (m.format) { out.format = m.format; }
      return out;
    });
    spec.chart = { type: state.chart.type };
    if (state.chart.title.trim()) { spec.chart.title = state.chart.title.trim(); }
    if (state.chart.colors.length) { spec.chart.colors = state.chart.colors.slice(); }
    if (state.sort) {
      var kind = state.sort.charAt(0), index = Number(state.sort.slice(1).split(":")[0]);
      var key = { desc: state.sort.split(":")[1] === "desc" };
      key[kind === "m" ? "measure" : "dimension"] = index;
      spec.sort = [key];
    }
    if (state.limit) { spec.limit = Number(state.limit); }
    if (state.roles.length) { spec.roles = state.roles.slice(); }
    if (state.schedule.on) {
      spec.schedule = { every: state.schedule.every, at: state.schedule.at,
                        period: state.schedule.period, roles: state.schedule.roles.slice() };
    }
    if (state.segment.on) {
      spec.segment = { field: state.segment.field, at: state.segment.at,
                       rules: state.segment.rules.filter(function (r) { return r.value || r.when; }) };
    }
    return spec;
  }

  // -- controls --------------------------------------------------------------------------

  function options(select, pairs, current) {
    select.textContent = "";
    pairs.forEach(function (p) {
      select.appendChild(el("option", { value: p[0], text: p[1],
                                        selected: String(p[0]) === String(current) }));
    });
    select.value = current === undefined || current === null ? "" : current;
    return select;
  }
  function fieldPairs(filter, blank) {
    var out = blank ? [["", blank]] : [];
    source().fields.forEach(function (f) {
      if (!filter || filter(f)) { out.push([f.key, f.label]); }
    });
    return out;
  }
  function input(attrs, value, onInput) {
    var node = el("input", attrs);
    node.value = value === undefined || value === null ? "" : value;
    node.addEventListener("input", function () { onInput(node.value); changed(); });
    return node;
  }
  function select(attrs, pairs, value, onChange, redraw) {
    var node = options(el("select", attrs), pairs, value);
    node.addEventListener("change", function () {
      onChange(node.value);
      if (redraw) { draw(); }
      changed();
    });
    return node;
  }
  function labelled(text, control) {
    if (!control.id) { control.id = "b-" + Math.random().toString(36).slice(2); }
    return el("div", { "class": "field" }, [el("label", { "for": control.id, text: text }), control]);
  }
  function remove(list, item, name) {
    return el("button", { type: "button", "class": "link remove", "aria-label": name,
                          text: W.remove, onclick: function () {
                            list.splice(list.indexOf(item), 1); draw(); changed();
                          } });
  }

  function drawFields() {
    var box = $("b-fields");
    box.textContent = "";
    source().fields.forEach(function (f) {
      box.appendChild(el("li", { "class": "chip field-chip", "data-field": f.key,
                                 title: f.label + " (" + f.kind + ")" }, [
        el("span", { text: f.label }),
        el("button", { type: "button", "class": "add-dim", "aria-label": K.fmt(W.add_dim, { name: f.label }),
                       text: "＋", onclick: function () { addDim(f.key); } })
      ]));
    });
  }

  function addDim(key, at) {
    if (state.dims.length >= MAX_DIMS) { status(W.max_dims); return; }
    var f = field(key);
    var dim = { field: key, bucket: f && DATES.indexOf(f.kind) >= 0 ? "month" : "", bins: "",
                label: "" };
    state.dims.splice(at === undefined ? state.dims.length : at, 0, dim);
    draw();
    changed();
  }

  function drawDims() {
    var box = $("b-dims");
    box.textContent = "";
    state.dims.forEach(function (d, i) {
      var f = field(d.field) || { label: d.field, kind: "" };
      var extra = null;
      if (DATES.indexOf(f.kind) >= 0) {
        extra = labelled(W.bucket, select({ "class": "dim-bucket", id: "b-dim-" + i + "-bucket" },
          [["", W.by_value]].concat(D.buckets.map(function (b) { return [b, L.buckets[b]]; })),
          d.bucket, function (v) { d.bucket = v; }));
      } else if (plainNumber(f)) {
        extra = labelled(W.bins, input({ "class": "dim-bins", id: "b-dim-" + i + "-bins",
                                         placeholder: "100000, 500000" }, d.bins,
                                       function (v) { d.bins = v; }));
      }
      box.appendChild(el("li", { "class": "dim", "data-field": d.field }, [
        el("span", { "class": "chip", text: f.label }), extra, remove(state.dims, d, W.remove)
      ]));
    });
    if (!state.dims.length) {
      box.appendChild(el("li", { "class": "muted small empty", text: W.drop_here }));
    }
  }

  function whereRow(m, i) {
    if (!m.where) {
      return el("button", { type: "button", "class": "link", text: "+ " + W.add_where,
                            onclick: function () { m.where = { field: "", op: "eq", value: "" }; draw(); } });
    }
    return el("div", { "class": "row where" }, [
      labelled(W.only_when, select({ id: "b-m-" + i + "-wf" }, fieldPairs(null, "—"), m.where.field,
                                    function (v) { m.where.field = v; })),
      labelled(W.op, select({ id: "b-m-" + i + "-wo" }, Object.keys(L.ops).map(function (o) {
        return [o, L.ops[o]]; }), m.where.op, function (v) { m.where.op = v; })),
      labelled(W.value, input({ id: "b-m-" + i + "-wv" }, m.where.value,
                              function (v) { m.where.value = v; })),
      el("button", { type: "button", "class": "link remove", text: W.remove,
                     onclick: function () { m.where = null; draw(); changed(); } })
    ]);
  }

  function drawMeasures() {
    var box = $("b-measures");
    box.textContent = "";
    state.measures.forEach(function (m, i) {
      var parts = [];
      parts.push(labelled(W.key, input({ "class": "m-key", id: "b-m-" + i + "-key", maxlength: 63 },
                                       m.key, function (v) { m.key = v; })));
      if (m.expr !== null) {
        parts.push(labelled(W.expr, input({ "class": "m-expr", id: "b-m-" + i + "-expr",
                                            placeholder: "won / leads" }, m.expr,
                                          function (v) { m.expr = v; })));
      } else {
        parts.push(labelled(W.agg, select({ "class": "m-agg", id: "b-m-" + i + "-agg" },
          D.aggs.map(function (a) { return [a, L.aggs[a]]; }), m.agg,
          function (v) { m.agg = v; }, true)));
        if (m.agg !== "count") {
          parts.push(labelled(W.field, select({ "class": "m-field", id: "b-m-" + i + "-field" },
            fieldPairs(m.agg === "count_distinct" ? null : function (f) {
              return plainNumber(f) || DATES.indexOf(f.kind) >= 0;
            }, "—"), m.field, function (v) { m.field = v; })));
        }
      }
      parts.push(labelled(W.label, input({ "class": "m-label", id: "b-m-" + i + "-label",
                                           maxlength: 100 }, m.label, function (v) { m.label = v; })));
      parts.push(labelled(W.unit, select({ "class": "m-format", id: "b-m-" + i + "-format" },
        [["", L.formats[""]]].concat(D.formats.map(function (f) { return [f, L.formats[f]]; })),
        m.format, function (v) { m.format = v; })));
      var card = el("div", { "class": "measure", "data-index": i }, [
        el("div", { "class": "row" }, parts),
        m.expr === null ? whereRow(m, i) : null,
        el("p", { "class": "msg error measure-error", role: "alert", hidden: true }),
        remove(state.measures, m, W.remove)
      ]);
      box.appendChild(card);
    });
  }

  function drawFilters() {
    var box = $("b-filters");
    box.textContent = "";
    state.filters.forEach(function (r, i) {
      box.appendChild(el("div", { "class": "row filter-row" }, [
        labelled(W.field, select({ id: "b-f-" + i + "-field" }, fieldPairs(null, "—"), r.field,
                                 function (v) { r.field = v; })),
        labelled(W.op, select({ id: "b-f-" + i + "-op" }, Object.keys(L.ops).map(function (o) {
          return [o, L.ops[o]]; }), r.op, function (v) { r.op = v; })),
        labelled(W.value, input({ id: "b-f-" + i + "-value" }, r.value,
                                function (v) { r.value = v; })),
        remove(state.filters, r, W.remove)
      ]));
    });
  }

  function drawParams() {
    var box = $("b-params");
    box.textContent = "";
    state.params.forEach(function (p, i) {
      box.appendChild(el("div", { "class": "row param-row" }, [
        labelled(W.kind, select({ id: "b-p-" + i + "-type" }, Object.keys(L.params).map(function (t) {
          return [t, L.params[t]]; }), p.type, function (v) { p.type = v; })),
        labelled(W.field, select({ id: "b-p-" + i + "-field" }, fieldPairs(null, W.default_field),
                                 p.field, function (v) { p.field = v; })),
        labelled(W.key, input({ id: "b-p-" + i + "-key", maxlength: 63 }, p.key,
                              function (v) { p.key = v; })),
        labelled(W.label, input({ id: "b-p-" + i + "-label", maxlength: 100 }, p.label,
                                function (v) { p.label = v; })),
        remove(state.params, p, W.remove)
      ]));
    });
  }

  function drawSort() {
    var pairs = [["", W.no_sort]];
    state.dims.forEach(function (d, i) {
      var f = field(d.field) || { label: d.field };
      pairs.push(["d" + i + ":asc", f.label + " ↑"], ["d" + i + ":desc", f.label + " ↓"]);
    });
    state.measures.forEach(function (m, i) {
      var name = m.label || m.key || (L.aggs[m.agg] || W.measure) + " " + (i + 1);
      pairs.push(["m" + i + ":desc", name + " ↓"], ["m" + i + ":asc", name + " ↑"]);
    });
    if (!pairs.some(function (p) { return p[0] === state.sort; })) { state.sort = ""; }
    options($("b-sort"), pairs, state.sort);
  }

  function checks(box, chosen, prefix) {
    box.textContent = "";
    D.roles.forEach(function (r) {
      var box_ = el("input", { type: "checkbox", value: r.key, id: prefix + r.key,
                               checked: chosen.indexOf(r.key) >= 0 });
      box_.addEventListener("change", function () {
        var at = chosen.indexOf(r.key);
        if (box_.checked && at < 0) { chosen.push(r.key); }
        if (!box_.checked && at >= 0) { chosen.splice(at, 1); }
        changed();
      });
      box.appendChild(el("label", { "class": "check", "for": prefix + r.key }, [box_, " " + r.name]));
    });
  }

  function drawRules() {
    var box = $("b-segment-rules");
    box.textContent = "";
    state.segment.rules.forEach(function (r, i) {
      box.appendChild(el("div", { "class": "row rule-row" }, [
        labelled(W.tag, input({ id: "b-r-" + i + "-value", maxlength: 100 }, r.value,
                              function (v) { r.value = v; })),
        labelled(W.when, input({ id: "b-r-" + i + "-when", placeholder: "n >= 3" }, r.when,
                               function (v) { r.when = v; })),
        remove(state.segment.rules, r, W.remove)
      ]));
    });
  }

  function draw() {
    drawFields();
    drawDims();
    drawMeasures();
    drawFilters();
    drawParams();
    drawSort();
    drawRules();
  }

  // -- checking, preview, saving ---------------------------------------------------------

  function status(text) { $("b-preview-status").textContent = text || ""; }

  function changed() {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(refresh, WAIT);
  }

  function measureIndex(problem) {
    var m = /^measures[.[](\d+)/.exec(problem);
    return m ? Number(m[1]) : null;
  }

  function showProblems(problems) {
    var seen = {};
    document.querySelectorAll("#b-measures .measure-error").forEach(function (p) {
      p.hidden = true; p.textContent = "";
    });
    (problems || []).forEach(function (text) {
      var i = measureIndex(text);
      var box = i === null ? null :
        document.querySelector('#b-measures .measure[data-index="' + i + '"] .measure-error');
      if (box) {
        box.textContent = (seen[i] ? box.textContent + "；" : "") + text;
        box.hidden = false;
        seen[i] = true;
      }
    });
  }

  function applyCharts(rules) {
    var chart = $("b-chart"), reasons = $("b-chart-reasons");
    reasons.textContent = "";
    Array.prototype.forEach.call(chart.options, function (opt) {
      var why = rules ? rules[opt.value] : null;
      opt.disabled = !!why;
      opt.title = why || "";
      if (why) {
        reasons.appendChild(el("li", { "data-chart": opt.value },
                               [el("strong", { text: D.charts[opt.value] }), "：" + why]));
      }
    });
  }

  function drawPreview() {
    var holder = document.getElementById("preview-chart");
    if (!holder || !window.Plotly) { return; }
    var payload = JSON.parse(document.getElementById("preview-chart-data").textContent);
    var figure = payload.figure || {};
    var layout = figure.layout || {};
    if (layout.height) { holder.style.height = layout.height + "px"; }
    window.Plotly.newPlot(holder, figure.data || [], layout, figure.config || {});
  }

  function refresh() {
    var mine = ++seq, spec = toSpec();
    status(W.checking);
    K.send("POST", "/apps/" + D.app + "/reports/builder/preview", { spec: spec })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        if (mine !== seq) { return; }
        var box = $("b-preview");
        box.innerHTML = html;
        var rules = JSON.parse(document.getElementById("preview-rules").textContent);
        applyCharts(rules.charts);
        showProblems(rules.problems);
        drawPreview();
        status(rules.problems && rules.problems.length ? W.has_problems : W.up_to_date);
      })
      .catch(function () { if (mine === seq) { status(W.failed); } });
  }

  function save() {
    var spec = toSpec(), error = $("b-save-error");
    var url = "/api/v1/apps/" + D.app + "/reports" + (D.key ? "/" + D.key : "");
    error.hidden = true;
    $("b-save").disabled = true;
    K.send(D.key ? "PUT" : "POST", url, spec).then(function (r) {
      if (r.ok) {
        window.location.assign("/apps/" + D.app + "/reports/" + encodeURIComponent(spec.key));
        return null;
      }
      return r.json().catch(function () { return { detail: W.failed }; }).then(function (p) {
        var problems = p.problems || [];
        error.textContent = "";
        error.appendChild(el("p", { text: p.detail || p.title || W.failed }));
        if (problems.length) {
          error.appendChild(el("ul", {}, problems.map(function (t) { return el("li", { text: t }); })));
        }
        error.hidden = false;
        showProblems(problems);
        $("b-save").disabled = false;
      });
    }).catch(function () {
      error.textContent = W.failed; error.hidden = false; $("b-save").disabled = false;
    });
  }

  // -- start -----------------------------------------------------------------------------

  // the colour set: one of the page's palettes, or the colours the spec already had
  function palette() {
    var sets = D.palettes.slice(), now = state.chart.colors.join(",");
    var current = sets.filter(function (p) { return p.colors.join(",") === now; })[0];
    if (!current) {
      current = { key: "custom", label: D.labels.custom_colors, colors: state.chart.colors };
      sets.push(current);
    }
    options($("b-colors"), sets.map(function (p) { return [p.key, p.label]; }), current.key);
    function swatches() {
      var box = $("b-swatches");
      box.textContent = "";
      state.chart.colors.forEach(function (c) {
        var dot = document.createElement("span");
        dot.className = "swatch";
        dot.setAttribute("data-color", c);
        dot.title = c;
        box.appendChild(dot);
      });
      paint(box);
    }
    $("b-colors").addEventListener("change", function () {
      var chosen = sets.filter(function (p) { return p.key === $("b-colors").value; })[0];
      state.chart.colors = chosen ? chosen.colors.slice() : [];
      swatches(); changed();
    });
    swatches();
  }

  // inline styles are refused by the CSP; a swatch's colour is set through the CSSOM
  function paint(box) {
    Array.prototype.forEach.call(box.querySelectorAll(".swatch"), function (dot) {
      dot.style.setProperty("background", dot.getAttribute("data-color"));
    });
  }

  function bind(id, get, set) {
    var node = $(id);
    node.value = get();
    node.addEventListener(node.tagName === "SELECT" || node.type === "checkbox" ? "change" : "input",
      function () { set(node.type === "checkbox" ? node.checked : node.value); changed(); });
  }

  function start() {
    load(D.spec);
    options($("b-source"), D.sources.map(function (s) { return [s.id, s.label]; }), state.source);
    $("b-source").addEventListener("change", function () {
      state.source = $("b-source").value;
      state.dims = [];
      state.filters = [];
      state.other = [];
      state.measures.forEach(function (m) { m.field = ""; m.where = null; });
      draw(); changed();
    });
    options($("b-chart"), Object.keys(D.charts).map(function (c) { return [c, D.charts[c]]; }),
            state.chart.type);
    bind("b-chart", function () { return state.chart.type; }, function (v) { state.chart.type = v; });
    bind("b-name", function () { return state.name; }, function (v) { state.name = v; });
    bind("b-key", function () { return state.key; }, function (v) { state.key = v; });
    bind("b-description", function () { return state.description; },
         function (v) { state.description = v; });
    bind("b-title", function () { return state.chart.title; }, function (v) { state.chart.title = v; });
    palette();
    bind("b-sort", function () { return state.sort; }, function (v) { state.sort = v; });
    bind("b-limit", function () { return state.limit; }, function (v) { state.limit = v; });
    $("b-schedule-on").checked = state.schedule.on;
    bind("b-schedule-on", function () { return state.schedule.on; },
         function (v) { state.schedule.on = v; });
    bind("b-schedule-every", function () { return state.schedule.every; },
         function (v) { state.schedule.every = v; });
    bind("b-schedule-at", function () { return state.schedule.at; },
         function (v) { state.schedule.at = v; });
    bind("b-schedule-period", function () { return state.schedule.period; },
         function (v) { state.schedule.period = v; });
    $("b-segment-on").checked = state.segment.on;
    bind("b-segment-on", function () { return state.segment.on; },
         function (v) { state.segment.on = v; });
    bind("b-segment-field", function () { return state.segment.field; },
         function (v) { state.segment.field = v; });
    bind("b-segment-at", function () { return state.segment.at; },
         function (v) { state.segment.at = v; });
    checks($("b-roles"), state.roles, "b-role-");
    checks($("b-schedule-roles"), state.schedule.roles, "b-srole-");
    if (state.schedule.on) { $("b-schedule-panel").open = true; }
    if (state.segment.on) { $("b-segment-panel").open = true; }
    if (state.roles.length) { $("b-share-panel").open = true; }

    $("b-add-measure").addEventListener("click", function () {
      state.measures.push({ key: "", label: "", agg: "sum", field: "", expr: null, format: "",
                            where: null });
      draw(); changed();
    });
    $("b-add-calc").addEventListener("click", function () {
      state.measures.push({ key: "", label: "", agg: "", field: "", expr: "", format: "",
                            where: null });
      draw(); changed();
    });
    $("b-add-filter").addEventListener("click", function () {
      state.filters.push({ field: "", op: "eq", value: "" }); draw();
    });
    $("b-add-param").addEventListener("click", function () {
      state.params.push({ key: "p" + (state.params.length + 1), type: "date_range", field: "",
                          label: "" });
      draw(); changed();
    });
    $("b-add-rule").addEventListener("click", function () {
      state.segment.rules.push({ value: "", when: "" }); draw();
    });
    $("b-save").addEventListener("click", save);

    draw();
    if (window.Sortable) {
      window.Sortable.create($("b-fields"), {
        group: { name: "report-fields", pull: "clone", put: false }, sort: false,
        forceFallback: true, filter: ".add-dim", preventOnFilter: false
      });
      window.Sortable.create($("b-dims"), {
        group: { name: "report-fields", pull: false, put: true }, forceFallback: true,
        filter: ".empty, select, input, button", preventOnFilter: false,
        onAdd: function (event) {
          var key = event.item.getAttribute("data-field");
          event.item.remove();
          addDim(key, Math.min(event.newIndex, state.dims.length));
        },
        onUpdate: function (event) {
          var moved = state.dims.splice(event.oldIndex, 1)[0];
          state.dims.splice(event.newIndex, 0, moved);
          draw(); changed();
        }
      });
    }
    refresh();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
