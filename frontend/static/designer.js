/* The form designer (templates/designer/design.html, frontend/designer/).
 *
 * The page holds one working copy of the form definition (the same JSON the API takes)
 * and redraws the palette, the canvas of sections and the property panel from it after
 * every change. Each change is one step of the undo history. Nothing here validates: the
 * working copy is sent to the API's check while the admin types, and the problems it
 * returns are shown beside the field and the box they belong to; saving and publishing
 * are the API's own PUT and publish calls.
 *
 * Keyboard: a palette button adds its field to the current section; a selected field
 * moves with Alt+↑/↓ (across sections too); Ctrl+Z / Ctrl+Shift+Z undo and redo.
 */
(function () {
  "use strict";

  var data, T, spec, history = [], at = -1, dirty = false, selected = null;
  var problems = [], autoKeys = {}, checkTimer = null, previewTimer = null, lastCoalesce = null;
  var viewPanel = null, tab = "layout";

  var K = window.QiaoKit, $ = K.$, el = K.el, fmt = K.fmt, csrf = K.csrf, api = K.send;
  function clone(x) { return JSON.parse(JSON.stringify(x)); }
  function apiBase() { return "/api/v1/apps/" + data.app + "/forms/" + data.form; }


  /* -- the model ------------------------------------------------------------------- */

  function sections() {
    var out = [];
    (spec.layout || []).forEach(function (item) {
      if (item.tab !== undefined) { item.sections.forEach(function (s) { out.push(s); }); }
      else { out.push(item); }
    });
    return out;
  }
  function field(key) {
    for (var i = 0; i < spec.fields.length; i++) { if (spec.fields[i].key === key) { return spec.fields[i]; } }
    return null;
  }
  function sectionOf(key) {
    var all = sections();
    for (var i = 0; i < all.length; i++) { if (all[i].fields.indexOf(key) >= 0) { return i; } }
    return -1;
  }
  function normalise() {
    spec.fields = spec.fields || [];
    spec.layout = spec.layout || [];
    if (!sections().length) { spec.layout.push({ section: T.section_default, columns: 2, fields: [] }); }
    var placed = {};
    sections().forEach(function (s) { s.fields.forEach(function (k) { placed[k] = true; }); });
    var rest = spec.fields.filter(function (f) { return !placed[f.key]; }).map(function (f) { return f.key; });
    if (rest.length) { spec.layout.push({ section: T.section_other, columns: 2, fields: rest }); }
  }
  function isPublished(key) { return data.published.indexOf(key) >= 0; }
  function label(item) { return item.label || item.section || item.key; }

  function snapshot() { return JSON.stringify(spec); }
  function change(mutate, coalesce) {
    mutate(spec);
    if (coalesce && coalesce === lastCoalesce && at === history.length - 1) {
      history[at] = snapshot();
    } else {
      history = history.slice(0, at + 1);
      history.push(snapshot());
      if (history.length > 200) { history.shift(); }
      at = history.length - 1;
    }
    lastCoalesce = coalesce || null;
    setDirty(true);
    if (!coalesce) { draw(); } else { drawCanvas(); drawButtons(); }
    later();
  }
  function travel(step) {
    var to = at + step;
    if (to < 0 || to >= history.length) { return; }
    at = to;
    spec = JSON.parse(history[at]);
    lastCoalesce = null;
    if (selected && selected.kind === "field" && !field(selected.key)) { selected = null; }
    setDirty(true);
    draw();
    later();
  }
  function setDirty(on) {
    dirty = on;
    $("d-status").textContent = on ? T.unsaved : T.saved;
  }
  function later() {
    clearTimeout(checkTimer);
    clearTimeout(previewTimer);
    checkTimer = setTimeout(check, 350);
    previewTimer = setTimeout(preview, 700);
  }

  /* -- drawing --------------------------------------------------------------------- */

  function draw() { drawFormProps(); drawCanvas(); drawProps(); drawView(); drawButtons(); }
  function drawView() { if (viewPanel && tab === "view") { viewPanel.draw($("d-view"), problems); } }

  /* the canvas's two tabs: the fields and their layout, the record page (designer_view.js) */
  function showTab(name, focus) {
    tab = name;
    ["layout", "view"].forEach(function (t) {
      var button = $("d-tab-" + t), on = t === name;
      button.setAttribute("aria-selected", on ? "true" : "false");
      button.tabIndex = on ? 0 : -1;
      $("d-" + t).hidden = !on;
      if (on && focus) { button.focus(); }
    });
    drawView();
  }
  function tabKey(e) {
    if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") { return; }
    e.preventDefault();
    showTab(tab === "layout" ? "view" : "layout", true);
  }
  function drawButtons() {
    $("d-undo").disabled = at <= 0;
    $("d-redo").disabled = at >= history.length - 1;
  }

  function drawPalette() {
    var box = $("d-palette");
    box.textContent = "";
    data.palette.groups.forEach(function (g) {
      var list = el("ul", { "class": "d-types", "data-group": g.key, "aria-label": g.label });
      g.types.forEach(function (t) {
        var info = data.palette.types[t];
        list.appendChild(el("li", { "data-type": t }, [
          el("button", { type: "button", "class": "d-type", "data-type": t,
                         "aria-label": fmt(T.add_type, { type: info.label }),
                         onclick: function () { addField(t, currentSection(), null); } },
             [info.label])]));
      });
      box.appendChild(el("h3", { text: g.label }));
      box.appendChild(list);
      if (window.Sortable) {
        window.Sortable.create(list, { group: { name: "fields", pull: "clone", put: false },
                                       sort: false, animation: 120 });
      }
    });
  }

  function drawFormProps() {
    var box = $("d-form-props");
    box.textContent = "";
    var titles = spec.fields.filter(function (f) {
      return ["text", "phone", "email", "auto_number", "formula", "id_card"].indexOf(f.type) >= 0;
    });
    box.appendChild(row(T.form_name, input("text", spec.name || "", function (v) {
      change(function (s) { s.name = v; }, "form-name");
    }, { id: "d-form-name", required: true })));
    box.appendChild(row(T.english_name, input("text", (spec.labels || {}).en || "", function (v) {
      change(function (s) { setLabel(s, "en", v); }, "form-en");
    }, { id: "d-form-en" })));
    var pick = el("select", { id: "d-title-field" }, [el("option", { value: "", text: "—" })]);
    titles.forEach(function (f) {
      pick.appendChild(el("option", { value: f.key, text: label(f), selected: f.key === spec.title_field }));
    });
    pick.addEventListener("change", function () {
      change(function (s) { if (pick.value) { s.title_field = pick.value; } else { delete s.title_field; } });
    });
    box.appendChild(row(T.title_field, pick));
  }

  function problemFor(key, attr) {
    return problems.filter(function (p) { return p.field === key && (attr === undefined || p.attr === attr); });
  }

  function drawCanvas() {
    var box = $("d-sections");
    var focusKey = document.activeElement && document.activeElement.getAttribute("data-field");
    box.textContent = "";
    sections().forEach(function (s, i) {
      var list = el("ul", { "class": "d-fields cols-" + (s.columns || 1), "data-section": i,
                            "aria-label": label(s) });
      s.fields.forEach(function (k) {
        var f = field(k);
        if (!f) { return; }
        var info = data.palette.types[f.type] || { label: f.type };
        var flags = [];
        if (f.required) { flags.push(T.flag_required); }
        if (f.required_if) { flags.push(T.flag_required_if); }
        if (f.visible_if) { flags.push(T.flag_visible_if); }
        if (problemFor(k).length) { flags.push("⚠ " + T.flag_problem); }
        var isSel = selected && selected.kind === "field" && selected.key === k;
        list.appendChild(el("li", { "data-key": k }, [
          el("button", { type: "button", "class": "d-field" + (problemFor(k).length ? " bad" : ""),
                         "data-field": k, "aria-pressed": isSel ? "true" : "false",
                         onclick: function () { select({ kind: "field", key: k }); },
                         onkeydown: function (e) { fieldKey(e, k); } }, [
            el("span", { "class": "d-field-label", text: label(f) }),
            el("span", { "class": "small muted", text: info.label + " · " + k }),
            flags.length ? el("span", { "class": "d-flags small", text: flags.join(" · ") }) : null
          ])]));
      });
      var isSel = selected && selected.kind === "section" && selected.index === i;
      var card = el("div", { "class": "card d-section" + (isSel ? " on" : ""), "data-index": i }, [
        el("div", { "class": "d-section-head" }, [
          el("span", { "class": "d-handle", "aria-hidden": "true", text: "⠿" }),
          el("button", { type: "button", "class": "link d-section-title", "data-section-title": i,
                         "aria-pressed": isSel ? "true" : "false",
                         onclick: function () { select({ kind: "section", index: i }); } },
             [label(s) + " · " + fmt(T.columns_n, { n: s.columns || 1 })])
        ]),
        list,
        s.fields.length ? null : el("p", { "class": "small muted d-empty", text: T.drop_here })
      ]);
      box.appendChild(card);
      if (window.Sortable) {
        window.Sortable.create(list, { group: { name: "fields", pull: true, put: true }, animation: 120,
                                       onAdd: dropped, onUpdate: moved, onRemove: function () {} });
      }
    });
    if (window.Sortable && !(spec.layout || []).some(function (x) { return x.tab !== undefined; })) {
      window.Sortable.create(box, { handle: ".d-handle", animation: 120, onUpdate: function (e) {
        change(function (s) { var moved = s.layout.splice(e.oldIndex, 1)[0]; s.layout.splice(e.newIndex, 0, moved); });
      } });
    }
    if (focusKey) {
      var again = box.querySelector('[data-field="' + focusKey + '"]');
      if (again) { again.focus(); }
    }
  }

  function dropped(e) {
    var type = e.item.getAttribute("data-type");
    var to = +e.to.getAttribute("data-section");
    if (type && !e.item.getAttribute("data-key")) {
      e.item.parentNode.removeChild(e.item);
      addField(type, to, e.newIndex);
      return;
    }
    orderFromDom();
  }
  function moved() { orderFromDom(); }
  function orderFromDom() {
    var lists = document.querySelectorAll("#d-sections .d-fields");
    change(function () {
      var all = sections();
      lists.forEach(function (list) {
        var i = +list.getAttribute("data-section");
        all[i].fields = Array.prototype.map.call(list.querySelectorAll("li[data-key]"), function (li) {
          return li.getAttribute("data-key");
        });
      });
    });
  }

  function currentSection() {
    if (selected && selected.kind === "section") { return selected.index; }
    if (selected && selected.kind === "field") { return Math.max(sectionOf(selected.key), 0); }
    return sections().length - 1;
  }

  function addField(type, sectionIndex, position) {
    var info = data.palette.types[type];
    var taken = spec.fields.map(function (f) { return f.key; });
    var base = "field", n = 1, key;
    do { key = base + "_" + n; n++; } while (taken.indexOf(key) >= 0);
    var f = { key: key, label: info.label, type: type };
    info.config.forEach(function (p) {
      if (p.kind === "options") { f.options = [{ value: "option_1", label: T.option + " 1" }]; }
      else if (p.required && p.kind === "expression") { f.expression = "1"; }
      else if (p.required && p.kind === "form" && data.forms.length) { f[p.key] = data.forms[0].key; }
      else if (p.required && p.kind === "enum") { f[p.key] = p.choices[0].value; }
      else if (p.required && p.key === "pattern") { f.pattern = "NO-{YYYY}{MM}-{####}"; }
      else if (p.required && p.kind === "json") { f[p.key] = [{ key: "item", label: T.item, type: "text" }]; }
    });
    autoKeys[key] = true;
    change(function (s) {
      s.fields.push(f);
      var target = sections()[sectionIndex] || sections()[sections().length - 1];
      var at = position === null || position === undefined ? target.fields.length : position;
      target.fields.splice(at, 0, key);
    });
    select({ kind: "field", key: key });
    var labelBox = $("p-label");
    if (labelBox) { labelBox.focus(); labelBox.select(); }
    renameFromLabel(key, f.label);
  }

  function moveField(key, step) {
    var all = sections(), i = sectionOf(key);
    if (i < 0) { return; }
    var list = all[i].fields, pos = list.indexOf(key);
    change(function () {
      var s2 = sections(), from = s2[i].fields;
      from.splice(pos, 1);
      if (pos + step >= 0 && pos + step <= from.length && !(step > 0 && pos === list.length - 1)) {
        from.splice(pos + step, 0, key);
      } else if (step < 0 && i > 0) {
        s2[i - 1].fields.push(key);
      } else if (step > 0 && i < s2.length - 1) {
        s2[i + 1].fields.unshift(key);
      } else {
        from.splice(pos, 0, key);
      }
    });
    var again = document.querySelector('#d-sections [data-field="' + key + '"]');
    if (again) { again.focus(); }
    $("d-status").textContent = fmt(T.moved, { field: label(field(key)) });
  }

  function fieldKey(e, key) {
    if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
      e.preventDefault();
      moveField(key, e.key === "ArrowUp" ? -1 : 1);
    } else if (e.key === "Delete" && e.shiftKey) {
      e.preventDefault();
      removeField(key);
    }
  }

  function removeField(key) {
    change(function (s) {
      s.fields = s.fields.filter(function (f) { return f.key !== key; });
      sections().forEach(function (sec) { sec.fields = sec.fields.filter(function (k) { return k !== key; }); });
      if (s.title_field === key) { delete s.title_field; }
      window.QiaoView.drop(s, key);
    });
    selected = null;
    drawProps();
  }

  function select(what) {
    selected = what;
    drawCanvas();
    drawProps();
  }

  /* -- the property panel ------------------------------------------------------------ */

  var uid = 0;
  function row(text, control, help) {
    var id = control.id || ("p-" + (++uid));
    control.id = id;
    var target = control.matches && control.matches("input, select, textarea") ? control
      : control.querySelector("input, select, textarea");
    var forId = target ? (target.id || (target.id = id + "-in")) : id;
    return el("div", { "class": "d-row" }, [el("label", { "for": forId, text: text }), control,
      help ? el("p", { "class": "small muted", text: help }) : null]);
  }
  function input(type, value, onInput, attrs) {
    var box = el("input", Object.assign({ type: type }, attrs || {}));
    if (type === "checkbox") {
      box.checked = !!value;
      box.addEventListener("change", function () { onInput(box.checked); });
    } else {
      box.value = value === undefined || value === null ? "" : value;
      box.addEventListener("input", function () { onInput(box.value); });
    }
    return box;
  }
  function check_(text, value, onInput) {
    var box = input("checkbox", value, onInput);
    box.id = "p-" + (++uid);
    return el("label", { "class": "check", "for": box.id }, [box, " " + text]);
  }
  function setLabel(obj, lang, v) {
    if (v) { obj.labels = obj.labels || {}; obj.labels[lang] = v; }
    else if (obj.labels) { delete obj.labels[lang]; if (!Object.keys(obj.labels).length) { delete obj.labels; } }
  }

  function drawProps() {
    var box = $("d-props");
    box.textContent = "";
    if (!selected) { box.appendChild(el("p", { "class": "muted small", text: T.pick_something })); return; }
    if (selected.kind === "section") { sectionProps(box, selected.index); return; }
    var f = field(selected.key);
    if (!f) { return; }
    fieldProps(box, f);
  }

  function sectionProps(box, i) {
    var s = sections()[i];
    if (!s) { return; }
    box.appendChild(row(T.section_title, input("text", s.section, function (v) {
      change(function () { sections()[i].section = v; }, "sec-title-" + i);
    }, { id: "p-section-title" })));
    box.appendChild(row(T.english_name, input("text", (s.labels || {}).en || "", function (v) {
      change(function () { setLabel(sections()[i], "en", v); }, "sec-en-" + i);
    })));
    var cols = el("select", {}, [1, 2, 3].map(function (n) {
      return el("option", { value: n, text: fmt(T.columns_n, { n: n }), selected: (s.columns || 1) === n });
    }));
    cols.addEventListener("change", function () { change(function () { sections()[i].columns = +cols.value; }); });
    box.appendChild(row(T.columns, cols));
    if (sections().length > 1) {
      box.appendChild(el("button", { type: "button", "class": "danger", onclick: function () {
        change(function (sp) {
          var all = sections(), gone = all[i], into = all[i > 0 ? i - 1 : 1];
          into.fields = into.fields.concat(gone.fields);
          sp.layout = sp.layout.filter(function (x) { return x !== gone; });
          sp.layout.forEach(function (x) { if (x.tab !== undefined) { x.sections = x.sections.filter(function (y) { return y !== gone; }); } });
        });
        selected = null; drawProps();
      } }, [T.remove_section]));
    }
  }

  function fieldProps(box, f) {
    var key = f.key, info = data.palette.types[f.type] || { label: f.type, config: [], computed: false };
    /* the panel's field by its current key: an automatic key may arrive while typing */
    function set(mutate, coalesce) { change(function () { mutate(field(selected.key)); }, coalesce); }
    box.appendChild(el("p", { "class": "small muted", text: fmt(T.field_of_type, { type: info.label }) }));
    box.appendChild(row(T.label, input("text", f.label, function (v) {
      set(function (x) { x.label = v; }, "label");
      renameFromLabel(selected.key, v);
    }, { id: "p-label", required: true })));
    box.appendChild(row(T.english_name, input("text", (f.labels || {}).en || "", function (v) {
      set(function (x) { setLabel(x, "en", v); }, "en-" + key);
    })));
    var locked = isPublished(key);
    var keyBox = input("text", key, function () {}, { id: "p-key", pattern: "[a-z][a-z0-9_]{0,62}",
                                                      readonly: locked, "class": "mono" });
    keyBox.addEventListener("change", function () { renameKey(selected.key, keyBox.value.trim()); });
    box.appendChild(row(T.key, keyBox, locked ? T.key_locked : T.key_help));
    box.appendChild(row(T.help_text, input("text", f.help || "", function (v) {
      set(function (x) { if (v) { x.help = v; } else { delete x.help; } }, "help-" + key);
    })));
    if (!info.computed) {
      var flags = el("div", { "class": "d-checks" }, [
        check_(T.required, f.required, function (v) { set(function (x) { if (v) { x.required = true; } else { delete x.required; } }); }),
        check_(T.unique, f.unique, function (v) { set(function (x) { if (v) { x.unique = true; } else { delete x.unique; } }); }),
        check_(T.indexed, f.indexed, function (v) { set(function (x) { if (v) { x.indexed = true; } else { delete x.indexed; } }); }),
        check_(T.mask, f.sensitive && f.sensitive.mask, function (v) { set(function (x) { sensitive(x, "mask", v); }); }),
        check_(T.encrypt, f.sensitive && f.sensitive.encrypt, function (v) { set(function (x) { sensitive(x, "encrypt", v); }); })
      ]);
      box.appendChild(el("fieldset", { "class": "d-fieldset" }, [el("legend", { text: T.rules }), flags]));
      box.appendChild(defaultRow(f, set));
    }
    info.config.forEach(function (p) { box.appendChild(configRow(f, p, set)); });
    box.appendChild(exprBox(f, "visible_if", T.visible_if, T.visible_if_help));
    if (!info.computed) {
      box.appendChild(exprBox(f, "required_if", T.required_if, T.required_if_help));
      validations(box, f, set);
    }
    box.appendChild(el("div", { "class": "d-move" }, [
      el("button", { type: "button", onclick: function () { moveField(key, -1); } }, ["↑ " + T.move_up]),
      el("button", { type: "button", onclick: function () { moveField(key, 1); } }, ["↓ " + T.move_down]),
      el("button", { type: "button", "class": "danger", onclick: function () { removeField(key); } }, [T.remove_field])
    ]));
  }

  function sensitive(x, flag, on) {
    x.sensitive = x.sensitive || {};
    if (on) { x.sensitive[flag] = true; } else { delete x.sensitive[flag]; }
    if (!Object.keys(x.sensitive).length) { delete x.sensitive; }
  }

  function renameFromLabel(key, text) {
    if (!autoKeys[key] || isPublished(key) || !text) { return; }
    var taken = spec.fields.map(function (f) { return f.key; }).filter(function (k) { return k !== key; });
    fetch("/apps/" + data.app + "/design/key?label=" + encodeURIComponent(text) + "&taken=" +
          encodeURIComponent(taken.join(",")), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (answer) {
        if (!answer || !field(key) || field(key).label !== text) { return; }
        renameKey(key, answer.key, true);
      });
  }

  function renameKey(old, key, auto) {
    if (!key || key === old || field(key)) { return; }
    change(function (s) {
      field(old).key = key;
      sections().forEach(function (sec) { sec.fields = sec.fields.map(function (k) { return k === old ? key : k; }); });
      if (s.title_field === old) { s.title_field = key; }
      window.QiaoView.rename(s, old, key);
    }, auto ? "label" : null);
    if (auto) { autoKeys[key] = true; }
    document.querySelectorAll('[data-expr-field="' + old + '"]').forEach(function (w) {
      w.setAttribute("data-expr-field", key);
    });
    delete autoKeys[old];
    if (selected && selected.key === old) { selected.key = key; }
    var keyBox = $("p-key");
    if (keyBox) { keyBox.value = key; }
    drawCanvas();
  }

  function defaultRow(f, set) {
    var control;
    var options = f.options || [];
    if (f.type === "boolean" || f.type === "select") {
      var choices = f.type === "boolean" ? [{ value: "true", label: T.yes }, { value: "false", label: T.no }] : options;
      control = el("select", {}, [el("option", { value: "", text: "—" })].concat(choices.map(function (o) {
        return el("option", { value: o.value, text: o.label, selected: String(f["default"]) === String(o.value) });
      })));
      control.addEventListener("change", function () {
        var v = control.value;
        set(function (x) {
          if (!v) { delete x["default"]; }
          else { x["default"] = f.type === "boolean" ? v === "true" : v; }
        });
      });
    } else if (["text", "textarea", "number", "money", "percent", "email", "phone", "date"].indexOf(f.type) >= 0) {
      var numeric = ["number", "money", "percent"].indexOf(f.type) >= 0;
      control = input(numeric ? "number" : (f.type === "date" ? "date" : "text"), f["default"], function (v) {
        set(function (x) {
          if (v === "") { delete x["default"]; } else { x["default"] = numeric ? Number(v) : v; }
        }, "default-" + f.key);
      }, numeric ? { step: "any" } : {});
    } else {
      return el("span");
    }
    return row(T.default_value, control);
  }

  function configRow(f, p, set) {
    var value = f[p.key], control;
    function put(v, coalesce) {
      set(function (x) { if (v === undefined || v === "" || v === null) { delete x[p.key]; } else { x[p.key] = v; } }, coalesce);
    }
    if (p.kind === "options") { return optionsEditor(f, set); }
    if (p.kind === "expression") { return exprBox(f, p.key, p.label, T.formula_help); }
    if (p.kind === "bool") { return el("div", { "class": "d-row" }, [check_(p.label, value, function (v) { put(v ? true : undefined); })]); }
    if (p.kind === "number") {
      control = input("number", value, function (v) { put(v === "" ? undefined : Number(v), "cfg-" + f.key + p.key); }, { step: p.step });
    } else if (p.kind === "enum") {
      control = el("select", {}, (p.required ? [] : [el("option", { value: "", text: "—" })]).concat(p.choices.map(function (c) {
        return el("option", { value: c.value, text: c.label, selected: value === c.value });
      })));
      control.addEventListener("change", function () { put(control.value || undefined); });
    } else if (p.kind === "form") {
      control = el("select", {}, [el("option", { value: "", text: "—" })].concat(data.forms.map(function (x) {
        return el("option", { value: x.key, text: x.name, selected: value === x.key });
      })));
      control.addEventListener("change", function () { put(control.value || undefined); });
    } else if (p.kind === "relation") {
      control = el("select", {}, [el("option", { value: "", text: "—" })].concat(spec.fields.filter(function (x) {
        return x.type === "relation";
      }).map(function (x) { return el("option", { value: x.key, text: label(x), selected: value === x.key }); })));
      control.addEventListener("change", function () { put(control.value || undefined); });
    } else if (p.kind === "field_of") {
      var formKey = p.of === "relation" ? (field(f.relation || "") || {}).target : f.source;
      var target = data.forms.filter(function (x) { return x.key === formKey; })[0];
      var fields = target ? target.fields.filter(function (x) {
        return !p.types || (p.types.indexOf(x.type) >= 0 && (x.target === spec.key));
      }) : [];
      control = el("select", {}, [el("option", { value: "", text: target ? "—" : T.pick_form_first })].concat(fields.map(function (x) {
        return el("option", { value: x.key, text: x.label + " (" + x.key + ")", selected: value === x.key });
      })));
      control.addEventListener("change", function () { put(control.value || undefined); });
    } else if (p.kind === "list") {
      control = input("text", (value || []).join(", "), function (v) {
        var items = v.split(",").map(function (x) { return x.trim(); }).filter(Boolean);
        put(items.length ? items : undefined, "cfg-" + f.key + p.key);
      });
    } else if (p.kind === "json") {
      control = el("textarea", { rows: 5, "class": "mono", spellcheck: "false" });
      control.value = value === undefined ? "" : JSON.stringify(value, null, 1);
      var err = el("p", { "class": "error small", role: "alert" });
      control.addEventListener("change", function () {
        try { put(control.value.trim() ? JSON.parse(control.value) : undefined); err.textContent = ""; }
        catch (_e) { err.textContent = T.bad_json; }
      });
      var wrap = row(p.label, control);
      wrap.appendChild(err);
      return wrap;
    } else {
      control = input(p.kind === "date" ? "date" : "text", value, function (v) { put(v || undefined, "cfg-" + f.key + p.key); });
    }
    return row(p.label, control);
  }

  function optionsEditor(f, set) {
    var key = f.key;
    var list = el("ol", { "class": "d-options" });
    (f.options || []).forEach(function (o, i) {
      var text = input("text", o.label, function (v) {
        set(function (x) { x.options[i].label = v; }, "opt-" + key + i);
      }, { "aria-label": fmt(T.option_n, { n: i + 1 }) });
      var code = input("text", o.value, function (v) {
        set(function (x) { x.options[i].value = v; }, "optv-" + key + i);
      }, { "aria-label": fmt(T.option_code_n, { n: i + 1 }), "class": "mono" });
      list.appendChild(el("li", { "data-index": i, "data-value": o.value }, [
        el("span", { "class": "d-handle", "aria-hidden": "true", text: "⠿" }), text, code,
        el("button", { type: "button", "class": "link", "aria-label": fmt(T.option_up, { n: i + 1 }),
                       onclick: function () { moveOption(key, i, -1); } }, ["↑"]),
        el("button", { type: "button", "class": "link danger", "aria-label": fmt(T.option_remove, { n: i + 1 }),
                       onclick: function () { set(function (x) { x.options.splice(i, 1); }); drawProps(); } }, ["✕"])
      ]));
    });
    if (window.Sortable) {
      window.Sortable.create(list, { handle: ".d-handle", animation: 120, onUpdate: function (e) {
        set(function (x) { var o = x.options.splice(e.oldIndex, 1)[0]; x.options.splice(e.newIndex, 0, o); });
        drawProps();
      } });
    }
    var add = el("button", { type: "button", onclick: function () {
      var n = (f.options || []).length + 1, value = "option_" + n;
      while ((field(key).options || []).some(function (o) { return o.value === value; })) { n++; value = "option_" + n; }
      set(function (x) { x.options = (x.options || []).concat([{ value: value, label: T.option + " " + n }]); });
      drawProps();
    } }, ["+ " + T.add_option]);
    return el("fieldset", { "class": "d-fieldset" }, [el("legend", { text: T.options }), list, add,
      el("p", { "class": "small muted", text: T.options_help })]);
  }

  function moveOption(key, i, step) {
    if (i + step < 0) { return; }
    change(function () { var o = field(key).options; var x = o.splice(i, 1)[0]; o.splice(i + step, 0, x); });
    drawProps();
  }

  function validations(box, f, set) {
    var fs = el("fieldset", { "class": "d-fieldset" }, [el("legend", { text: T.validate })]);
    (f.validate || []).forEach(function (rule, i) {
      fs.appendChild(exprBox(f, "validate." + i, fmt(T.validate_n, { n: i + 1 }), T.validate_help));
      fs.appendChild(row(T.validate_message, input("text", rule.message, function (v) {
        set(function (x) { x.validate[i].message = v; }, "vmsg-" + f.key + i);
      })));
      fs.appendChild(el("button", { type: "button", "class": "link danger", onclick: function () {
        set(function (x) { x.validate.splice(i, 1); if (!x.validate.length) { delete x.validate; } }); drawProps();
      } }, [T.remove_validate]));
    });
    fs.appendChild(el("button", { type: "button", onclick: function () {
      set(function (x) { x.validate = (x.validate || []).concat([{ expression: "TRUE", message: T.validate_default }]); });
      drawProps();
    } }, ["+ " + T.add_validate]));
    box.appendChild(fs);
  }

  /* -- expression boxes: completion, the live check, "try it" --------------------------- */

  function exprGet(f, attr) {
    if (attr.indexOf("validate.") === 0) { return (f.validate || [])[+attr.split(".")[1]].expression; }
    return f[attr] || "";
  }
  function exprSet(x, attr, v) {
    if (attr.indexOf("validate.") === 0) { x.validate[+attr.split(".")[1]].expression = v; return; }
    if (v) { x[attr] = v; } else if (attr !== "expression") { delete x[attr]; } else { x[attr] = v; }
  }

  function exprBox(f, attr, title, help) {
    var key = f.key, id = "x-" + attr.replace(".", "-");
    var area = el("textarea", { id: id, rows: 2, "class": "mono d-expr-text", spellcheck: "false",
                                autocomplete: "off", "data-expr": attr, "aria-describedby": id + "-err " + id + "-help",
                                "aria-autocomplete": "list", "aria-controls": id + "-list" });
    area.value = exprGet(f, attr);
    var list = el("ul", { id: id + "-list", "class": "d-suggest", role: "listbox", hidden: true });
    var err = el("p", { id: id + "-err", "class": "error small d-expr-error", role: "alert" });
    var record = el("input", { type: "text", inputmode: "numeric", "class": "d-try-id",
                               placeholder: T.try_record, "aria-label": T.try_record });
    var out = el("output", { "class": "small d-try-out", "for": id });
    var tryButton = el("button", { type: "button", "class": "link", onclick: function () {
      tryIt(area.value, record.value, out);
    } }, [T.try_it]);
    area.addEventListener("input", function () {
      var now = wrap.getAttribute("data-expr-field");
      change(function () { exprSet(field(now), attr, area.value.trim()); }, "expr-" + attr);
      suggest(area, list);
    });
    area.addEventListener("keydown", function (e) { suggestKey(e, area, list); });
    area.addEventListener("blur", function () { setTimeout(function () { list.hidden = true; }, 150); });
    var wrap = el("div", { "class": "d-row d-expr", "data-expr-field": key, "data-expr-attr": attr }, [
      el("label", { "for": id, text: title }), area, list, err,
      el("p", { id: id + "-help", "class": "small muted", text: help }),
      data.form ? el("div", { "class": "d-try" }, [record, tryButton, out]) : null
    ]);
    showExprProblem(wrap);
    return wrap;
  }

  function showExprProblem(wrap) {
    var found = problemFor(wrap.getAttribute("data-expr-field"), wrap.getAttribute("data-expr-attr"))[0];
    var err = wrap.querySelector(".d-expr-error");
    var area = wrap.querySelector("textarea");
    if (!found) { err.textContent = ""; area.removeAttribute("aria-invalid"); return; }
    var message = data.lang === "en" ? found.message_en : found.message_zh;
    err.textContent = found.column ? fmt(T.at_column, { column: found.column, message: message }) : message;
    area.setAttribute("aria-invalid", "true");
  }

  function candidates(word) {
    var low = word.toLowerCase(), out = [];
    spec.fields.forEach(function (f) {
      if (f.key.indexOf(low) === 0 || (word && label(f).indexOf(word) >= 0)) {
        out.push({ insert: f.key, text: f.key + " · " + label(f) });
      }
    });
    (data.functions || []).forEach(function (fn) {
      if (fn.name.toLowerCase().indexOf(low) === 0) {
        out.push({ insert: fn.name + "(", text: fn.name + "() · " + fn.text });
      }
    });
    return out.slice(0, 8);
  }

  function suggest(area, list) {
    var before = area.value.slice(0, area.selectionStart);
    var m = /([A-Za-z_\u4e00-\u9fff][A-Za-z0-9_\u4e00-\u9fff]*)$/.exec(before);
    list.textContent = "";
    if (!m) { list.hidden = true; return; }
    var found = candidates(m[1]);
    if (!found.length || (found.length === 1 && found[0].insert === m[1])) { list.hidden = true; return; }
    found.forEach(function (c, i) {
      list.appendChild(el("li", { role: "option", id: list.id + "-" + i, "data-insert": c.insert,
                                  "aria-selected": i === 0 ? "true" : "false",
                                  onmousedown: function (e) { e.preventDefault(); accept(area, list, c.insert); } },
                          [c.text]));
    });
    list.hidden = false;
  }

  function suggestKey(e, area, list) {
    if (list.hidden) { return; }
    var items = list.querySelectorAll("li"), i = -1;
    items.forEach(function (li, n) { if (li.getAttribute("aria-selected") === "true") { i = n; } });
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      var next = (i + (e.key === "ArrowDown" ? 1 : -1) + items.length) % items.length;
      items.forEach(function (li, n) { li.setAttribute("aria-selected", n === next ? "true" : "false"); });
      area.setAttribute("aria-activedescendant", items[next].id);
    } else if (e.key === "Enter" || e.key === "Tab") {
      if (i >= 0) { e.preventDefault(); accept(area, list, items[i].getAttribute("data-insert")); }
    } else if (e.key === "Escape") {
      e.preventDefault(); e.stopPropagation(); list.hidden = true;
    }
  }

  function accept(area, list, insert) {
    var pos = area.selectionStart, before = area.value.slice(0, pos);
    var m = /([A-Za-z_\u4e00-\u9fff][A-Za-z0-9_\u4e00-\u9fff]*)$/.exec(before);
    var start = m ? pos - m[1].length : pos;
    area.value = area.value.slice(0, start) + insert + area.value.slice(pos);
    area.selectionStart = area.selectionEnd = start + insert.length;
    list.hidden = true;
    area.dispatchEvent(new Event("input"));
    list.hidden = true;
  }

  function tryIt(text, recordId, out) {
    out.textContent = T.trying;
    api("POST", "/apps/" + data.app + "/design/try", { spec: spec, text: text, record_id: recordId || null })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (!res.ok) { out.textContent = res.body.detail || T.failed; return; }
        var b = res.body;
        out.textContent = b.ok ? "= " + b.value : fmt(T.at_column, { column: b.column, message: b.message });
      })
      .catch(function () { out.textContent = T.failed; });
  }

  /* -- the API: check, save, publish; the preview -------------------------------------- */

  function check() {
    if (!data.form) { return; }
    api("POST", apiBase() + "/check", spec)
      .then(function (r) { return r.ok ? r.json() : { problems: [] }; })
      .then(function (body) {
        problems = body.problems || [];
        document.querySelectorAll(".d-expr").forEach(showExprProblem);
        var general = problems.filter(function (p) { return !p.attr; });
        showProblems(general.map(function (p) { return data.lang === "en" ? p.message_en : p.message_zh; }));
        drawCanvas();
        if (viewPanel) { viewPanel.showProblems(problems); }
      });
  }

  function showProblems(list) {
    var box = $("d-problems");
    box.textContent = "";
    box.hidden = !list.length;
    if (!list.length) { return; }
    box.appendChild(el("p", { text: T.problems }));
    box.appendChild(el("ul", {}, list.map(function (t) { return el("li", { text: t }); })));
  }

  function problemList(body) {
    var extra = (body && (body.problems || (body.extra && body.extra.problems))) || [];
    return extra.length ? extra : [(body && body.detail) || T.failed];
  }

  function save() {
    $("d-status").textContent = T.saving;
    return api("PUT", apiBase(), spec).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) {
          showProblems(problemList(body));
          $("d-status").textContent = T.not_saved;
          throw new Error("not saved");
        }
        setDirty(false);
        showProblems([]);
        $("d-status").textContent = fmt(T.saved_at, { time: new Date().toLocaleTimeString() });
        return body;
      });
    });
  }

  function preview() {
    var role = $("d-role").value;
    fetch("/apps/" + data.app + "/design/preview", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify({ spec: spec, role: role })
    }).then(function (r) { return r.text(); }).then(function (html) {
      $("d-preview").innerHTML = html;
    });
  }

  var CHANGE_NAMES = ["added", "removed", "renamed", "type_changed", "options_changed", "formula_changed"];

  function fieldName(key) { var f = field(key); return f ? label(f) + " (" + key + ")" : key; }

  function report(plan) {
    var box = $("d-report");
    box.textContent = "";
    box.appendChild(el("p", { text: fmt(T.will_publish, { version: plan.version }) }));
    var changes = el("ul", { "class": "d-changes" });
    CHANGE_NAMES.forEach(function (name) {
      (plan.changes[name] || []).forEach(function (c) {
        var text;
        if (typeof c === "string") { text = fieldName(c); }
        else if (name === "renamed") { text = c.from + " → " + c.to; }
        else if (name === "type_changed") { text = fieldName(c.field) + ": " + c.from + " → " + c.to; }
        else { text = fieldName(c.field) + (c.removed && c.removed.length ? " − " + c.removed.join(", ") : "") +
                      (c.added && c.added.length ? " + " + c.added.join(", ") : ""); }
        changes.appendChild(el("li", {}, [el("strong", { text: T["change_" + name] + "：" }), text]));
      });
    });
    if (!changes.children.length) { changes.appendChild(el("li", { text: T.no_field_changes })); }
    box.appendChild(el("h3", { text: T.changes }));
    box.appendChild(changes);
    var m = plan.migration || {};
    box.appendChild(el("h3", { text: T.existing_records }));
    var impact = el("ul", { "class": "d-impact" });
    (m.impact || []).forEach(function (i) {
      var examples = i.examples.map(function (id) {
        return el("a", { href: "/apps/" + data.app + "/forms/" + data.form + "/records/" + id, target: "_blank", text: "#" + id });
      });
      var li = el("li", {}, [fmt(T["impact_" + i.change] || T.impact_other, {
        n: i.records, field: fieldName(i.field), options: (i.options || []).join(", ") })]);
      if (examples.length) {
        li.appendChild(document.createTextNode(" " + T.for_example + " "));
        examples.forEach(function (a, n) { if (n) { li.appendChild(document.createTextNode(", ")); } li.appendChild(a); });
      }
      impact.appendChild(li);
    });
    if (!impact.children.length) { impact.appendChild(el("li", { text: fmt(T.impact_none, { n: m.records || 0 }) })); }
    box.appendChild(impact);
    if (m.would_fail) {
      var fails = el("div", { "class": "msg error", role: "alert" }, [
        el("p", { text: fmt(T.would_fail, { n: m.would_fail, total: m.records }) })]);
      var ul = el("ul");
      (m.failures || []).slice(0, 5).forEach(function (f) {
        ul.appendChild(el("li", {}, [
          el("a", { href: "/apps/" + data.app + "/forms/" + data.form + "/records/" + f.record_id, target: "_blank", text: "#" + f.record_id }),
          " " + f.errors.map(function (e) { return fieldName(e.field) + ": " + e.value + " — " + (data.lang === "en" ? e.message_en : e.message); }).join("; ")
        ]));
      });
      fails.appendChild(ul);
      box.appendChild(fails);
    }
  }

  function startPublish() {
    var dialog = $("d-publish-dialog");
    $("d-report").textContent = T.checking;
    $("d-confirm").disabled = true;
    dialog.showModal();
    save().then(function () {
      return api("POST", apiBase() + "/publish?dry_run=true");
    }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { $("d-report").textContent = ""; $("d-report").appendChild(el("div", { "class": "msg error", role: "alert" }, [el("ul", {}, problemList(body).map(function (t) { return el("li", { text: t }); }))])); return; }
        report(body);
        $("d-confirm").disabled = false;
        $("d-confirm").focus();
      });
    }).catch(function () {
      $("d-report").textContent = T.fix_first;
    });
  }

  function confirmPublish() {
    $("d-confirm").disabled = true;
    api("POST", apiBase() + "/publish").then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { $("d-report").appendChild(el("div", { "class": "msg error", role: "alert", text: problemList(body).join("; ") })); return; }
        data.published = spec.fields.map(function (f) { return f.key; });
        data.version = body.version;
        var done = el("p", { "class": "msg ok", role: "status", id: "d-published", text: fmt(T.published, { version: body.version }) });
        $("d-report").appendChild(done);
        $("d-status").textContent = fmt(T.published, { version: body.version });
        if (body.migration) { follow(body.migration.id, body.migration.total); }
        drawProps();
      });
    });
  }

  function follow(id, total) {
    var bar = el("progress", { max: total || 1, value: 0, "aria-label": T.migrating });
    var text = el("p", { "class": "small", role: "status", text: T.migrating });
    $("d-report").appendChild(bar);
    $("d-report").appendChild(text);
    (function poll() {
      fetch(apiBase() + "/migrations/" + id, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (job) {
        bar.value = job.done + job.failed;
        text.textContent = fmt(T.migration_progress, { done: job.done, failed: job.failed, total: job.total });
        if (job.status === "pending" || job.status === "running") { setTimeout(poll, 700); }
      });
    })();
  }

  /* -- start ------------------------------------------------------------------------- */

  function newForm() {
    var box = $("d-props");
    box.textContent = "";
    var name = input("text", "", function () {}, { id: "p-new-name", required: true });
    var key = input("text", "", function () {}, { id: "p-new-key", "class": "mono", pattern: "[a-z][a-z0-9_]{0,62}" });
    name.addEventListener("change", function () {
      fetch("/apps/" + data.app + "/design/key?label=" + encodeURIComponent(name.value), { credentials: "same-origin" })
        .then(function (r) { return r.json(); }).then(function (a) { if (!key.value) { key.value = a.key; } });
    });
    var err = el("p", { "class": "error", role: "alert" });
    var create = el("button", { type: "button", "class": "primary", id: "p-new-create", onclick: function () {
      var body = { key: key.value.trim(), name: name.value.trim(), title_field: "name",
                   fields: [{ key: "name", label: T.name_field, type: "text", required: true }],
                   layout: [{ section: T.section_default, columns: 2, fields: ["name"] }] };
      api("POST", "/api/v1/apps/" + data.app + "/forms", body).then(function (r) {
        return r.json().then(function (b) {
          if (!r.ok) { err.textContent = problemList(b).join("; "); return; }
          window.location.href = "/apps/" + data.app + "/forms/" + body.key + "/design";
        });
      });
    } }, [T.create_form]);
    box.appendChild(row(T.form_name, name));
    box.appendChild(row(T.form_key, key, T.key_help));
    box.appendChild(create);
    box.appendChild(err);
    ["d-undo", "d-redo", "d-save", "d-publish", "d-add-section", "d-tab-view"].forEach(function (id) { $(id).disabled = true; });
    name.focus();
  }

  function start() {
    var node = $("designer-data");
    if (!node) { return; }
    data = JSON.parse(node.textContent);
    T = JSON.parse($("designer-text").textContent);
    data.lang = document.documentElement.lang === "en" ? "en" : "zh";
    spec = clone(data.draft);
    normalise();
    history = [snapshot()];
    at = 0;
    var role = $("d-role");
    data.roles.forEach(function (r) { role.appendChild(el("option", { value: r.key, text: r.name })); });
    role.addEventListener("change", preview);
    drawPalette();
    if (!data.form) { drawCanvas(); newForm(); return; }
    viewPanel = window.QiaoView.panel({ data: data, T: T, spec: function () { return spec; }, change: change,
                                        row: row, input: input, check_: check_, label: label, field: field });
    $("d-tab-layout").addEventListener("click", function () { showTab("layout"); });
    $("d-tab-view").addEventListener("click", function () { showTab("view"); });
    $("d-tab-layout").addEventListener("keydown", tabKey);
    $("d-tab-view").addEventListener("keydown", tabKey);
    draw();
    setDirty(false);
    $("d-status").textContent = data.version ? fmt(T.at_version, { version: data.version }) : T.never_published;
    $("d-undo").addEventListener("click", function () { travel(-1); });
    $("d-redo").addEventListener("click", function () { travel(1); });
    $("d-save").addEventListener("click", function () { save().catch(function () {}); });
    $("d-publish").addEventListener("click", startPublish);
    $("d-confirm").addEventListener("click", confirmPublish);
    $("d-cancel").addEventListener("click", function () { $("d-publish-dialog").close(); });
    $("d-add-section").addEventListener("click", function () {
      change(function (s) { s.layout.push({ section: fmt(T.section_n, { n: sections().length + 1 }), columns: 2, fields: [] }); });
      select({ kind: "section", index: sections().length - 1 });
      var title = $("p-section-title");
      if (title) { title.focus(); title.select(); }
    });
    document.addEventListener("keydown", function (e) {
      var mod = e.ctrlKey || e.metaKey;
      if (!mod || e.key.toLowerCase() !== "z" || /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName)) { return; }
      e.preventDefault();
      travel(e.shiftKey ? 1 : -1);
    });
    window.addEventListener("beforeunload", function (e) {
      if (dirty) { e.preventDefault(); e.returnValue = ""; }
    });
    preview();
    check();
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); }
  else { start(); }
})();
