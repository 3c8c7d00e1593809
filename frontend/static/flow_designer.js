/* The flow designer (templates/designer/flow.html): the flow drawn on an X6 canvas
 * (vendor/x6), nodes dragged from the palette, edges drawn from a node's ports, the
 * property panel of the selected node or edge (flow_props.js), and the draft → check →
 * publish → migrate path through the flows API.
 *
 * The working spec is the draft the page was given: each node's dict lives in its cell's
 * data and each edge's in its edge's, so keys the designer does not edit survive a save
 * as they were; saving rebuilds nodes, edges and layout from the canvas and keeps every
 * other key of the spec.
 *
 * CSP: X6 injects its CSS as <style> elements, which style-src 'self' refuses; the page
 * loads vendor/x6/x6.css instead, sets X6.Config.autoInsertCSS = false, and creates the
 * plugins (whose constructors inject their CSS regardless) inside quietly(), which makes
 * X6's CSS loader believe a hot-module reload is running, the one case it skips. */
(function () {
  "use strict";
  var K = window.QiaoKit, el = K.el, $ = K.$;
  var D = JSON.parse($("flow-data").textContent);
  var T = JSON.parse($("flow-text").textContent);
  D.typeNames = T.types;
  var spec = JSON.parse(JSON.stringify(D.draft));
  var API = "/api/v1/apps/" + D.app + "/flows";
  var ROUND = ["start", "end"], DIAMOND = ["gateway", "parallel", "join"];
  var graph, dnd, history, selection, keyboard, selected = null, marks = { nodes: {}, edges: [] };
  var wide = window.matchMedia("(min-width: 64rem)");

  function quietly(fn) {
    var had = Object.prototype.hasOwnProperty.call(window, "module"), old = window.module;
    window.module = { hot: { status: function () { return "apply"; } } };
    try { return fn(); } finally { if (had) { window.module = old; } else { delete window.module; } }
  }
  function status(msg) { $("f-status").textContent = msg; }
  function outcomesOf(n) {
    var t = D.options.types[n.type];
    if (!t) { return []; }
    return t.outcomes === null ? (n.outcomes || ["submit"]) : t.outcomes;
  }
  function outcomeLabel(o) { return D.outcomes[o] ? D.outcomes[o] + " (" + o + ")" : o; }
  function nameOf(id) {
    var cell = graph.getCellById(id);
    return cell ? (cell.getData().spec.name || id) : id;
  }

  // -- how a node and an edge look -----------------------------------------------------
  var PORT = { r: 5, magnet: true, stroke: "#1664ff", strokeWidth: 1, fill: "#fff" };
  var PORTS = { groups: {}, items: [] };
  ["top", "right", "bottom", "left"].forEach(function (side) {
    PORTS.groups[side] = { position: side, attrs: { circle: PORT } };
    PORTS.items.push({ id: side, group: side });
  });
  function hint(n) {
    if (n.type === "approval") { return T.types.approval + " · " + T["mode_" + (n.mode || "single")]; }
    if (n.type === "user_task" || n.type === "approval") { return T.types[n.type]; }
    return DIAMOND.indexOf(n.type) >= 0 || ROUND.indexOf(n.type) >= 0 ? "" : T.types[n.type] || n.type;
  }
  function nodeMeta(n, pos) {
    var size = D.sizes[n.type] || [168, 56], label = n.name || T.types[n.type] || n.id;
    var shape = ROUND.indexOf(n.type) >= 0 ? "circle" : DIAMOND.indexOf(n.type) >= 0 ? "polygon" : "rect";
    var body = { stroke: "#8f959e", strokeWidth: 1.5, fill: "#fff" };
    var text = { text: hint(n) ? label + "\n" + hint(n) : label, fontSize: 13, fill: "#1f2329" };
    if (shape === "rect") { body.rx = 8; body.ry = 8; text.textWrap = { width: -16, height: -8, ellipsis: true }; }
    if (n.type === "start") { body.fill = "#ecf8ea"; body.stroke = "#2ea121"; }
    if (n.type === "end") { body.fill = "#fdecec"; body.stroke = "#d83931"; body.strokeWidth = 3; }
    if (n.type === "approval") { body.fill = "#f3f7ff"; body.stroke = "#1664ff"; }
    if (shape === "polygon") {
      body.refPoints = "0,10 10,0 20,10 10,20"; body.fill = "#fff7e8"; body.stroke = "#d48806";
      text.refY = "100%"; text.refY2 = 4; text.textVerticalAnchor = "top";
      text.text = label + (n.type === "gateway" ? "" : " (" + T.types[n.type] + ")");
    }
    return { id: n.id, shape: shape, x: pos.x, y: pos.y, width: size[0], height: size[1],
             ports: PORTS, data: { spec: n }, attrs: { body: body, label: text } };
  }
  function edgeLabel(e) {
    if (e["default"]) { return T.default_edge; }
    if (e.name) { return e.name; }
    if (e.condition) { return e.condition; }
    return e.on ? (D.outcomes[e.on] || e.on) : "";
  }
  function edgeAttrs(e) {
    return { line: { stroke: "#646a73", strokeWidth: 1.5, strokeDasharray: e["default"] ? "6 4" : null,
                     targetMarker: { name: "block", width: 8, height: 6 } } };
  }
  function restyleEdge(edge) {
    var e = edge.getData().spec, label = edgeLabel(e), view = graph.findViewByCell(edge);
    if (view) {  // which edge this is, for tests and assistive technology
      view.container.setAttribute("data-edge", edge.getSourceCellId() + ">" + edge.getTargetCellId());
    }
    edge.setAttrs(edgeAttrs(e));
    edge.setLabels(label ? [{ attrs: { label: { text: label, fontSize: 12, fill: "#1f2329" },
                                       body: { fill: "#f5f6f8", stroke: "none" } } }] : []);
  }
  function restyleNode(node) {
    var meta = nodeMeta(node.getData().spec, node.getPosition());
    node.setAttrs(meta.attrs, { overwrite: true });
  }

  // -- the graph -----------------------------------------------------------------------
  function typeOf(id) { var c = graph.getCellById(id); return c ? c.getData().spec.type : null; }
  function build() {
    X6.Config.autoInsertCSS = false;
    quietly(function () {
      graph = new X6.Graph({
        container: $("f-canvas"), autoResize: true, async: false,
        grid: { size: 10, visible: true },
        panning: { enabled: true, eventTypes: ["leftMouseDown"] },
        mousewheel: { enabled: true, modifiers: ["ctrl", "meta"], zoomAtMousePosition: true,
                      minScale: 0.25, maxScale: 2 },
        interacting: function () { return wide.matches ? true : { nodeMovable: false }; },
        connecting: {
          router: { name: "manhattan", args: { padding: 12 } }, connector: { name: "rounded" },
          anchor: "center", connectionPoint: "boundary", allowBlank: false, allowLoop: false,
          allowNode: true, allowEdge: false, allowMulti: true, highlight: true, snap: { radius: 30 },
          createEdge: function () {
            return this.createEdge({ shape: "edge", attrs: edgeAttrs({}), data: { spec: {} } });
          },
          validateConnection: function (args) {
            if (!args.targetCell || !args.targetCell.isNode() || args.sourceCell === args.targetCell) { return false; }
            return typeOf(args.targetCell.id) !== "start" && typeOf(args.sourceCell.id) !== "end";
          }
        },
        highlighting: { magnetAdsorbed: { name: "stroke", args: { attrs: { stroke: "#1664ff", strokeWidth: 3 } } } }
      });
      graph.use(new X6.Snapline({ enabled: true, sharp: true }));
      selection = new X6.Selection({ enabled: true, multiple: false, rubberband: false,
                                     showNodeSelectionBox: true });
      keyboard = new X6.Keyboard({ enabled: true });
      history = new X6.History({ enabled: true });
      graph.use(selection); graph.use(keyboard); graph.use(history);
      dnd = new X6.Dnd({ target: graph,  // the dragged copies get new ids: keep the node's
        getDragNode: function (n) { return n.clone({ keepId: true }); },
        getDropNode: function (n) { return n.clone({ keepId: true }); } });
    });
    load();
    selection.on("selection:changed", function (args) { select(args.selected[0] || null); });
    graph.on("blank:click", function () { selection.clean(); });
    graph.on("edge:connected", function (args) { connected(args.edge, args.isNew); });
    graph.on("cell:change:data", function (args) {
      if (args.cell.isNode()) { restyleNode(args.cell); } else { restyleEdge(args.cell); }
    });
    history.on("change", function () {
      $("f-undo").disabled = !history.canUndo(); $("f-redo").disabled = !history.canRedo();
    });
    keyboard.bindKey(["delete", "backspace"], function () { removeSelected(); return false; });
    keyboard.bindKey(["ctrl+z", "meta+z"], function () { history.undo(); return false; });
    keyboard.bindKey(["ctrl+shift+z", "meta+shift+z"], function () { history.redo(); return false; });
    fit();
  }
  function load() {
    var pos = Object.assign({}, D.positions, spec.layout || {});
    graph.fromJSON({ cells: [] });
    spec.nodes.forEach(function (n) { graph.addNode(nodeMeta(n, pos[n.id] || { x: 0, y: 0 })); });
    spec.edges.forEach(function (e) {
      if (!graph.getCellById(e.from) || !graph.getCellById(e.to)) { return; }
      var edge = graph.addEdge({ shape: "edge", source: { cell: e.from }, target: { cell: e.to },
                                 attrs: edgeAttrs(e), data: { spec: e } });
      restyleEdge(edge);
    });
    history.clean();
  }
  function fit() {  // the whole flow, but never so small its words cannot be read
    graph.zoomToFit({ padding: 24, maxScale: 1, minScale: wide.matches ? 0.8 : 0.4 });
    graph.positionContent("top", { padding: 24 });
  }

  function connected(edge, isNew) {
    var from = edge.getSourceCellId(), to = edge.getTargetCellId();
    edge.setSource({ cell: from }); edge.setTarget({ cell: to });
    var e = Object.assign({}, edge.getData().spec, { from: from, to: to });
    if (isNew) {
      var source = graph.getCellById(from).getData().spec, outs = outcomesOf(source);
      var taken = graph.getOutgoingEdges(from).map(function (x) { return x.getData().spec.on; });
      var free = outs.filter(function (o) { return o !== "done" && o !== "completed" && taken.indexOf(o) < 0; });
      if (source.type !== "gateway" && free.length) { e.on = free[0]; }
    }
    edge.setData({ spec: e }, { overwrite: true });
    selection.clean(); selection.select(edge);
  }
  function nextId(type) {
    var i = 1;
    while (graph.getCellById(type + "_" + i)) { i += 1; }
    return type + "_" + i;
  }
  function newNode(type) {
    var n = { id: nextId(type), type: type };
    if (type === "approval") { n.assignee = { strategy: "role" }; }
    if (type === "user_task") { n.assignee = { strategy: "initiator" }; }
    return n;
  }

  // -- palette ---------------------------------------------------------------------------
  function palette() {
    var list = $("f-palette");
    Object.keys(D.options.types).sort(function (a, b) {
      return T.order.indexOf(a) - T.order.indexOf(b);
    }).forEach(function (type) {
      var b = el("button", { type: "button", "class": "f-type", "data-type": type,
        text: T.types[type] || type, title: T.palette_hint });
      b.addEventListener("mousedown", function (ev) {
        if (ev.button !== 0) { return; }
        var n = newNode(type);
        dnd.start(graph.createNode(nodeMeta(n, { x: 0, y: 0 })), ev);
      });
      b.addEventListener("click", function (ev) {  // keyboard (Enter) / a tap: at the centre
        if (ev.detail !== 0 && wide.matches) { return; }
        var c = graph.getGraphArea().getCenter(), n = newNode(type);
        graph.addNode(nodeMeta(n, { x: c.x - 84, y: c.y - 28 }));
        selection.clean(); selection.select(graph.getCellById(n.id));
      });
      list.appendChild(el("li", {}, [b]));
    });
  }

  // -- selection, property panel, problems -------------------------------------------------
  var panel = new window.QiaoFlowPanel({
    D: D, T: T, outcomesOf: outcomesOf, outcomeLabel: outcomeLabel, nameOf: nameOf,
    update: function (value) {
      if (!selected) { return; }
      if (selected.isEdge()) {
        value.from = selected.getSourceCellId(); value.to = selected.getTargetCellId();
      }
      selected.setData({ spec: value }, { overwrite: true });
    },
    remove: function () { removeSelected(); },
    reselect: function () { select(selected); },
    earlierSteps: earlierSteps,
    checkCondition: function (text) {
      return K.send("POST", "/apps/" + D.app + "/flows/design/check", { spec: current(), text: text })
        .then(function (r) { return r.json(); })
        .then(function (r) { return r.detail ? { ok: false, message: r.detail } : r; });
    }
  });
  function problemsOf(cell) {
    if (!cell) { return []; }
    if (cell.isNode()) { return marks.nodes[cell.id] || []; }
    var s = cell.getData().spec;
    return marks.edges.filter(function (m) { return m.from === s.from && m.to === s.to; })
      .map(function (m) { return m.message; });
  }
  function select(cell) {
    selected = cell;
    $("f-delete").disabled = !cell;
    var box = $("f-props");
    box.textContent = "";
    if (!cell) {
      box.appendChild(el("p", { "class": "muted small", text: T.select_hint })); return;
    }
    if (cell.isNode()) { panel.node(box, cell.getData().spec, problemsOf(cell)); }
    else {
      var src = graph.getCellById(cell.getSourceCellId());
      panel.edge(box, Object.assign({}, cell.getData().spec, { from: cell.getSourceCellId(),
        to: cell.getTargetCellId() }), src ? src.getData().spec : null, problemsOf(cell));
    }
  }
  function removeSelected() {
    if (!wide.matches) { return; }
    var cells = selection.getSelectedCells();
    if (cells.length) { graph.removeCells(cells); select(null); }
  }
  function mark(located) {
    graph.getNodes().forEach(function (n) {
      var v = graph.findViewByCell(n);
      if (v) { v.removeClass("f-bad"); v.container.removeAttribute("data-problem"); }
      var t = v && v.container.querySelector("title.f-problem");
      if (t) { t.remove(); }
    });
    graph.getEdges().forEach(function (e) { var v = graph.findViewByCell(e); if (v) { v.removeClass("f-bad"); } });
    marks = { nodes: {}, edges: [] };
    (located || []).forEach(function (p) {
      if (p.node) { (marks.nodes[p.node] = marks.nodes[p.node] || []).push(p.message); }
      if (p.edge) { marks.edges.push({ from: p.edge.from, to: p.edge.to, message: p.message }); }
    });
    Object.keys(marks.nodes).forEach(function (id) {
      var cell = graph.getCellById(id), v = cell && graph.findViewByCell(cell);
      if (!v) { return; }
      v.addClass("f-bad");
      v.container.setAttribute("data-problem", marks.nodes[id].join("\n"));
      var title = document.createElementNS("http://www.w3.org/2000/svg", "title");
      title.setAttribute("class", "f-problem"); title.textContent = marks.nodes[id].join("\n");
      v.container.insertBefore(title, v.container.firstChild);
    });
    graph.getEdges().forEach(function (e) {
      if (problemsOf(e).length) { var v = graph.findViewByCell(e); if (v) { v.addClass("f-bad"); } }
    });
    var box = $("f-problems");
    box.textContent = "";
    box.hidden = !(located && located.length);
    if (!box.hidden) {
      box.appendChild(el("p", { text: T.problems.replace("{n}", located.length) }));
      box.appendChild(el("ul", {}, located.map(function (p) {
        var where = p.node ? nameOf(p.node) + ": " : p.edge ? nameOf(p.edge.from) + " → " + nameOf(p.edge.to) + ": " : "";
        return el("li", { text: where + p.message });
      })));
    }
    select(selected && graph.hasCell(selected) ? selected : null);
  }

  // -- the spec the canvas holds ----------------------------------------------------------
  function earlierSteps(id) {
    // the steps people act on from which an edge path leads to ``id`` (where a reject
    // may send the work back), in the canvas's top-to-bottom order
    var s = current(), seen = {}, todo = [id];
    while (todo.length) {
      var at = todo.pop();
      s.edges.forEach(function (e) {
        if (e.to === at && !seen[e.from]) { seen[e.from] = true; todo.push(e.from); }
      });
    }
    return s.nodes.filter(function (n) {
      var t = D.options.types[n.type];
      return n.id !== id && seen[n.id] && t && t.user;
    }).sort(function (a, b) { return s.layout[a.id].y - s.layout[b.id].y; })
      .map(function (n) { return { key: n.id, name: n.name || n.id }; });
  }
  function current() {
    var out = JSON.parse(JSON.stringify(spec));
    out.key = meta.key.value.trim(); out.name = meta.name.value.trim();
    out.form = meta.form.value; out.description = meta.description.value.trim() || undefined;
    if (!out.description) { delete out.description; }
    out.nodes = graph.getNodes().map(function (n) { return n.getData().spec; });
    out.edges = graph.getEdges().map(function (e) {
      return Object.assign({}, e.getData().spec, { from: e.getSourceCellId(), to: e.getTargetCellId() });
    });
    out.layout = {};
    graph.getNodes().forEach(function (n) {
      var p = n.getPosition(); out.layout[n.id] = { x: Math.round(p.x), y: Math.round(p.y) };
    });
    return out;
  }
  var meta = {};
  function metaForm() {
    var box = $("f-meta");
    function field(key, label, control) {
      meta[key] = control; control.id = "f-" + key;
      box.appendChild(el("div", { "class": "d-row" }, [el("label", { "for": control.id, text: label }), control]));
    }
    field("name", T.flow_name, el("input", { type: "text", value: spec.name || "", maxlength: "100" }));
    field("key", T.flow_key, el("input", { type: "text", value: spec.key || "", readonly: !!D.flow,
      pattern: "[a-z][a-z0-9_]{0,62}", placeholder: "loan_review" }));
    var form = el("select", { disabled: !!D.version });
    D.forms.forEach(function (f) { form.appendChild(el("option", { value: f.key, text: f.name + " (" + f.key + ")" })); });
    form.value = spec.form || "";
    field("form", T.flow_form, form);
    field("description", T.description, el("input", { type: "text", value: spec.description || "" }));
  }

  // -- save, check, publish, migrate ----------------------------------------------------------
  function problemOf(r) {
    return r.json().catch(function () { return { detail: r.statusText }; });
  }
  function failed(body) {
    status(body.detail || T.failed);
    mark(body.located || (body.problems || []).map(function (m) { return { message: m }; }));
  }
  function save() {
    var body = current();
    var req = D.flow ? K.send("PUT", API + "/" + D.flow, body) : K.send("POST", API, body);
    return req.then(function (r) {
      if (!r.ok) { return problemOf(r).then(function (b) { failed(b); return false; }); }
      if (!D.flow) { window.location.assign("/apps/" + D.app + "/flows/" + body.key + "/design"); return false; }
      status(T.saved); return true;
    });
  }
  function check() {
    if (!D.flow) { status(T.save_first); return; }
    K.send("POST", API + "/" + (D.flow || "_") + "/validate", current()).then(function (r) {
      if (r.ok) { mark([]); status(T.check_ok); return; }
      return problemOf(r).then(failed);
    });
  }
  function autoLayout() {
    K.send("POST", "/apps/" + D.app + "/flows/design/layout", { spec: current() })
      .then(function (r) { return r.json(); }).then(function (body) {
        graph.startBatch("layout");
        Object.keys(body.positions || {}).forEach(function (id) {
          var n = graph.getCellById(id);
          if (n) { n.position(body.positions[id].x, body.positions[id].y); }
        });
        graph.stopBatch("layout");
        fit();
      });
  }

  var dialog = $("f-publish-dialog"), report = $("f-report"), preview = null;
  function section(title, items) {
    if (!items.length) { return null; }
    return el("div", {}, [el("h3", { text: title }), el("ul", { "class": "d-changes" },
      items.map(function (t) { return el("li", { text: t }); }))]);
  }
  function edgeText(e) {
    return nameOf(e.from) + " → " + nameOf(e.to) + (e.on ? " [" + (D.outcomes[e.on] || e.on) + "]" : "") +
      (e.condition ? " [" + e.condition + "]" : "");
  }
  function showPreview(p) {
    preview = p;
    report.textContent = "";
    var diff = p.diff || { nodes: {}, edges: {} }, n = diff.nodes || {}, e = diff.edges || {};
    report.appendChild(el("p", { text: p.published_version ?
      T.publish_next.replace("{v}", p.published_version + 1).replace("{old}", p.published_version) :
      T.publish_first }));
    if (!p.valid) {
      report.appendChild(el("div", { "class": "msg error", role: "alert" }, [el("p", { text: T.cannot_publish }),
        el("ul", {}, p.problems.map(function (x) { return el("li", { text: x.message }); }))]));
      mark(p.problems);
    }
    [section(T.nodes_added, (n.added || []).map(nameOf)),
     section(T.nodes_removed, (n.removed || []).map(function (id) { return id; })),
     section(T.nodes_changed, (n.changed || []).map(function (c) { return nameOf(c.id) + ": " + c.changes.join("; "); })),
     section(T.edges_added, (e.added || []).map(edgeText)),
     section(T.edges_removed, (e.removed || []).map(edgeText)),
     section(T.edges_changed, (e.changed || []).map(function (c) { return edgeText(c); }))
    ].forEach(function (s) { if (s) { report.appendChild(s); } });
    var running = p.running || { total: 0, by_node: {} };
    report.appendChild(el("p", { id: "f-running", text: T.running.replace("{n}", running.total) }));
    if (running.total) {
      report.appendChild(el("ul", { "class": "d-impact" }, Object.keys(running.by_node).map(function (id) {
        return el("li", { text: nameOf(id) + " (" + id + "): " + running.by_node[id] });
      })));
    }
    $("f-confirm").disabled = !p.valid;
  }
  function openPublish() {
    report.textContent = T.preparing;
    $("f-confirm").disabled = true;
    dialog.showModal();
    save().then(function (ok) {
      if (!ok) { dialog.close(); return; }
      return K.send("POST", API + "/" + D.flow + "/publish-preview").then(function (r) {
        return r.ok ? r.json().then(showPreview) : problemOf(r).then(function (b) { report.textContent = b.detail || T.failed; });
      });
    });
  }
  function publish() {
    $("f-confirm").disabled = true;
    K.send("POST", API + "/" + D.flow + "/publish").then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { report.appendChild(el("p", { "class": "msg error", text: body.detail || T.failed })); failed(body); return; }
        D.version = body.version; mark([]);
        status(T.published.replace("{v}", body.version));
        report.appendChild(el("p", { "class": "msg ok", id: "f-published", text: T.published.replace("{v}", body.version) }));
        if (preview && preview.running && preview.running.total) { migration(body.version, body.spec); }
      });
    });
  }
  function migration(version, newSpec) {
    var ids = newSpec.nodes.map(function (n) { return n.id; }), selects = {};
    var box = el("fieldset", { "class": "d-fieldset", id: "f-migrate" }, [el("legend", { text: T.migrate_title }),
      el("p", { "class": "small muted", text: T.migrate_hint })]);
    Object.keys(preview.running.by_node).forEach(function (id) {
      if (ids.indexOf(id) >= 0) { return; }
      var s = el("select", { "data-node": id });
      newSpec.nodes.forEach(function (n) { s.appendChild(el("option", { value: n.id, text: (n.name || n.id) + " (" + n.id + ")" })); });
      selects[id] = s;
      box.appendChild(el("div", { "class": "d-row" }, [el("label", {}, [T.migrate_from.replace("{node}", id), s])]));
    });
    var out = el("div", { id: "f-migrate-report", "aria-live": "polite" });
    function run(dry) {
      var mapping = {};
      Object.keys(selects).forEach(function (id) { mapping[id] = selects[id].value; });
      K.send("POST", API + "/" + D.flow + "/migrations", { to_version: version, mapping: mapping, dry_run: dry })
        .then(function (r) { return r.json().then(function (b) { return [r.ok, b]; }); })
        .then(function (res) {
          var b = res[1].report || res[1];
          out.textContent = "";
          if (!res[0]) { out.appendChild(el("p", { "class": "msg error", text: res[1].detail })); }
          out.appendChild(el("p", { "class": "msg " + (res[0] ? "ok" : "warn"), text: (dry ? T.dry_run_result : T.migrated_result)
            .replace("{movable}", b.movable).replace("{blocked}", b.blocked).replace("{n}", b.migrated || 0) }));
          if (dry && res[0] && !b.blocked) { go.disabled = false; }
        });
    }
    var go = el("button", { type: "button", "class": "primary", id: "f-migrate-go", disabled: true,
      text: T.migrate, onclick: function () { go.disabled = true; run(false); } });
    box.appendChild(el("div", { "class": "actions" }, [el("button", { type: "button", id: "f-migrate-dry",
      text: T.dry_run, onclick: function () { run(true); } }), go]));
    box.appendChild(out);
    report.appendChild(box);
  }

  // -- start ---------------------------------------------------------------------------------
  metaForm();
  build();
  palette();
  select(null);
  $("f-zoom-in").addEventListener("click", function () { graph.zoom(0.1); });
  $("f-zoom-out").addEventListener("click", function () { graph.zoom(-0.1); });
  $("f-fit").addEventListener("click", fit);
  $("f-layout").addEventListener("click", autoLayout);
  $("f-undo").addEventListener("click", function () { history.undo(); });
  $("f-redo").addEventListener("click", function () { history.redo(); });
  $("f-delete").addEventListener("click", removeSelected);
  $("f-save").addEventListener("click", save);
  $("f-check").addEventListener("click", check);
  $("f-publish").addEventListener("click", openPublish);
  $("f-confirm").addEventListener("click", publish);
  $("f-cancel").addEventListener("click", function () { dialog.close(); });
  document.body.setAttribute("data-flow-ready", "1");
})();
