/* The rule editor (/apps/{app}/rules/new, /apps/{app}/rules/{key}): a trigger picker for
 * every trigger type, a condition checked live by the server against the trigger's form,
 * an ordered list of actions (SortableJS) whose forms are built from each action type's
 * settings schema (GET-free: the page carries them), and a test run of the working copy.
 * Saving and the test run go through the integrators' API; the engine's problems are
 * shown next to the part they name ("trigger…", "condition…", "actions[2]…"). */
(function () {
  "use strict";
  var K = window.QiaoKit, el = K.el, $ = K.$;
  var D = JSON.parse($("rules-data").textContent);
  var T = JSON.parse($("rules-text").textContent);
  var API = "/api/v1/apps/" + D.app;
  var spec = D.spec || { key: "", name: "", enabled: false,
                         trigger: { type: "record.updated", form: (D.forms[0] || {}).key },
                         actions: [] };
  var dirty = false, keyTouched = !!D.key;
  var FORMS = {}, FLOWS = {}, ACTIONS = {};
  D.forms.forEach(function (f) { FORMS[f.key] = f; });
  D.flows.forEach(function (f) { FLOWS[f.key] = f; });
  D.actions.forEach(function (a) { ACTIONS[a.type] = a; });

  function changed() { dirty = true; status(T.unsaved); }
  function status(text) { $("r-status").textContent = text || ""; }
  function option(value, label, selected) {
    return el("option", { value: value, text: label, selected: selected ? "selected" : null });
  }
  function select(id, choices, value, onchange, blank) {
    var s = el("select", { id: id, onchange: function () { onchange(s.value); } });
    if (blank !== undefined) { s.appendChild(option("", blank, !value)); }
    choices.forEach(function (c) { s.appendChild(option(c[0], c[1], String(c[0]) === String(value))); });
    return s;
  }
  function labelled(id, text, control) {
    return el("div", { "class": "field-row" }, [el("label", { "for": id, text: text }), control]);
  }
  function input(id, value, oninput, attrs) {
    var i = el("input", Object.assign({ id: id, value: value === undefined || value === null ? "" : value },
                                      attrs || {}));
    i.addEventListener("input", function () { oninput(i.value); });
    return i;
  }
  function formOf() {
    var t = spec.trigger;
    return t.form || (t.flow && FLOWS[t.flow] ? FLOWS[t.flow].form : null);
  }
  function fieldsOf(formKey, types) {
    var f = FORMS[formKey];
    return f ? f.fields.filter(function (x) { return !types || types.indexOf(x.type) >= 0; }) : [];
  }
  function fieldChoices(formKey, types) {
    return fieldsOf(formKey, types).map(function (f) { return [f.key, f.label + " (" + f.key + ")"]; });
  }
  function setOpt(obj, key, value) {
    if (value === "" || value === null || value === undefined) { delete obj[key]; }
    else { obj[key] = value; }
  }

  // -- trigger -------------------------------------------------------------------------------
  var NEEDS = {
    "record.created": ["form"], "record.updated": ["form", "fields"], "record.deleted": ["form"],
    "flow.step_entered": ["flow", "step"], "task.completed": ["flow", "step", "outcome"],
    "task.overdue": ["flow", "step", "overdue_days"], "flow.completed": ["flow"],
    "schedule": ["cron", "form"], "date_relative": ["form", "field", "offset", "at"],
    "manual": ["form"]
  };
  function renderTrigger() {
    var t = spec.trigger, box = $("r-trigger"), needs = NEEDS[t.type] || [];
    box.textContent = "";
    var forms = D.forms.map(function (f) { return [f.key, f.name]; });
    if (needs.indexOf("form") >= 0) {
      box.appendChild(labelled("t-form", t.type === "schedule" ? T.form_each : T.form_label,
        select("t-form", forms, t.form, function (v) {
          setOpt(t, "form", v); t.fields = []; delete t.field; triggerChanged(true);
        }, t.type === "schedule" ? T.no_form : undefined)));
    }
    if (needs.indexOf("fields") >= 0) {
      var set = el("fieldset", { "class": "checks", id: "t-fields" },
                   [el("legend", { text: T.field + " " + T.fields_any })]);
      fieldsOf(t.form).forEach(function (f) {
        var box2 = el("input", { type: "checkbox", value: f.key, id: "t-field-" + f.key,
          checked: (t.fields || []).indexOf(f.key) >= 0,
          onchange: function () {
            var keys = (t.fields || []).filter(function (k) { return k !== f.key; });
            if (box2.checked) { keys.push(f.key); }
            t.fields = keys; triggerChanged(false);
          } });
        set.appendChild(el("label", { "class": "check", "for": "t-field-" + f.key }, [box2, " " + f.label]));
      });
      box.appendChild(set);
    }
    if (needs.indexOf("flow") >= 0) {
      box.appendChild(labelled("t-flow", T.flow_label, select("t-flow",
        D.flows.map(function (f) { return [f.key, f.name]; }), t.flow, function (v) {
          setOpt(t, "flow", v); delete t.step; delete t.outcome; triggerChanged(true);
        }, t.type === "task.overdue" ? T.any_flow : undefined)));
    }
    var flow = FLOWS[t.flow];
    if (needs.indexOf("step") >= 0 && flow) {
      box.appendChild(labelled("t-step", T.step_label, select("t-step",
        flow.steps.map(function (s) { return [s.id, s.name]; }), t.step, function (v) {
          setOpt(t, "step", v); delete t.outcome; triggerChanged(true);
        }, T.any_step)));
    }
    if (needs.indexOf("outcome") >= 0 && flow && t.step) {
      var step = flow.steps.filter(function (s) { return s.id === t.step; })[0];
      box.appendChild(labelled("t-outcome", T.outcome_label, select("t-outcome",
        (step ? step.outcomes : []).map(function (o) { return [o, o]; }), t.outcome,
        function (v) { setOpt(t, "outcome", v); triggerChanged(false); }, T.any_outcome)));
    }
    if (needs.indexOf("overdue_days") >= 0) {
      box.appendChild(labelled("t-overdue", T.overdue_label, input("t-overdue", t.overdue_days || 0,
        function (v) { setOpt(t, "overdue_days", parseInt(v, 10) || 0); triggerChanged(false); },
        { type: "number", min: 0, max: 3650 })));
    }
    if (needs.indexOf("cron") >= 0) { renderCron(box, t); }
    if (needs.indexOf("field") >= 0) {
      box.appendChild(labelled("t-date-field", T.date_field, select("t-date-field",
        fieldChoices(t.form, ["date", "datetime"]), t.field,
        function (v) { setOpt(t, "field", v); triggerChanged(false); }, T.choose)));
      var days = Math.abs(t.offset_days || 0), before = (t.offset_days || 0) < 0;
      var n = input("t-days", days, function () { offset(); }, { type: "number", min: 0, max: 3650 });
      var dir = select("t-dir", [["before", T.days_before], ["after", T.days_after]],
                       before ? "before" : "after", function () { offset(); });
      var offset = function () {
        var v = parseInt(n.value, 10) || 0;
        setOpt(t, "offset_days", dir.value === "before" ? -v : v);
        if (!t.offset_days) { delete t.offset_days; }
        triggerChanged(false);
      };
      box.appendChild(el("div", { "class": "inline-form" }, [
        el("label", { "for": "t-days", text: T.days_label }), n, dir,
        el("label", { "for": "t-at", text: T.at_label }),
        input("t-at", t.at || "09:00", function (v) { t.at = v; triggerChanged(false); },
              { type: "time", step: 60 })]));
    }
    triggerWords();
  }
  function renderCron(box, t) {
    var words = el("span", { id: "t-cron-words", "class": "small" });
    var line = input("t-cron", t.cron || "", function (v) { t.cron = v; cronWords(); triggerChanged(false); },
                     { "class": "mono", placeholder: "0 9 * * MON", maxlength: 100 });
    var common = select("t-cron-common", D.crons.map(function (c) { return [c.cron, c.words]; }),
      "", function (v) { if (v) { line.value = v; t.cron = v; cronWords(); triggerChanged(false); } },
      T.cron_common);
    box.appendChild(labelled("t-cron-common", T.cron_common, common));
    box.appendChild(labelled("t-cron", T.cron_label, line));
    box.appendChild(words);
    var timer = null;
    function cronWords() {
      clearTimeout(timer);
      timer = setTimeout(function () {
        fetch("/apps/" + D.app + "/rule-editor/cron?cron=" + encodeURIComponent(t.cron || ""),
              { credentials: "same-origin" })
          .then(function (r) { return r.json(); })
          .then(function (b) { words.textContent = b.ok ? b.words : T.cron_bad + "：" + b.message; });
      }, 200);
    }
    cronWords();
  }
  function triggerWords() {
    var t = spec.trigger, name = (FORMS[t.form] || {}).name || "", text = "";
    if (t.type === "record.updated") {
      var labels = (t.fields || []).map(function (k) {
        var f = fieldsOf(t.form).filter(function (x) { return x.key === k; })[0];
        return f ? f.label : k;
      });
      text = K.fmt(labels.length ? T.words_fields : T.words_update, { form: name, fields: labels.join("、") });
    }
    $("r-trigger-words").textContent = text;
  }
  function triggerChanged(rerender) {
    changed();
    if (rerender) { renderTrigger(); renderSuggest(); renderActions(); }
    else { triggerWords(); }
    checkCondition();
  }
  function setTriggerType(type) {
    var old = spec.trigger, t = { type: type };
    if ((NEEDS[type] || []).indexOf("form") >= 0) { t.form = old.form || (D.forms[0] || {}).key; }
    if ((NEEDS[type] || []).indexOf("flow") >= 0 && type !== "task.overdue") {
      t.flow = old.flow || (D.flows[0] || {}).key;
    }
    if (type === "schedule") { delete t.form; t.cron = "0 9 * * MON"; }
    if (type === "date_relative") { t.offset_days = -30; t.at = "09:00"; }
    spec.trigger = t;
    triggerChanged(true);
  }

  // -- condition -----------------------------------------------------------------------------
  var condTimer = null;
  function checkCondition() {
    clearTimeout(condTimer);
    condTimer = setTimeout(function () {
      var text = $("r-condition").value;
      K.send("POST", "/apps/" + D.app + "/rule-editor/condition",
             { trigger: spec.trigger, condition: text })
        .then(function (r) { return r.json(); })
        .then(function (b) {
          var state = $("r-cond-state");
          if (b.ok) {
            state.textContent = b.empty ? "" : T.ok;
            show("p-condition", []);
          } else {
            state.textContent = "";
            show("p-condition", [(b.column ? K.fmt(T.column, { n: b.column }) + "：" : "") +
                                 (b.message || b.detail || T.failed)]);
          }
        });
    }, 300);
  }
  function insertAt(area, text) {
    var s = area.selectionStart || area.value.length, e = area.selectionEnd || s;
    area.value = area.value.slice(0, s) + text + area.value.slice(e);
    area.focus();
    area.selectionStart = area.selectionEnd = s + text.length;
    area.dispatchEvent(new Event("input"));
  }
  function renderSuggest() {
    var box = $("r-suggest"), form = formOf(), area = $("r-condition");
    box.textContent = "";
    var words = fieldsOf(form).map(function (f) { return [f.key, f.label]; });
    if (spec.trigger.type === "record.updated") {
      words = words.concat(fieldsOf(form).map(function (f) { return ["OLD." + f.key, T.old + f.label]; }));
    }
    words = words.concat(D.functions.map(function (f) { return [f.name + "(", f.text]; }));
    words.forEach(function (w) {
      box.appendChild(el("button", { type: "button", "class": "chip", title: w[1], text: w[0],
                                     onclick: function () { insertAt(area, w[0]); } }));
    });
  }

  // -- actions -------------------------------------------------------------------------------
  function targetForm(config) {
    if (config.type === "create_record") { return config.form; }
    if (config.via) {
      var f = fieldsOf(formOf()).filter(function (x) { return x.key === config.via; })[0];
      return f ? f.target : null;
    }
    if (config.related && config.related.form) { return config.related.form; }
    return formOf();
  }
  function widget(config, name, prop, id, rerender) {
    var value = config[name], w = prop.widget;
    var set = function (v) { setOpt(config, name, v); changed(); };
    if (w === "select" || prop.enum) {
      var labels = prop.labels || {};
      return select(id, (prop.enum || []).map(function (v) { return [v, labels[v] || v]; }),
                    value || prop["default"], function (v) { set(v); rerender(); });
    }
    if (w === "form") {
      return select(id, D.forms.map(function (f) { return [f.key, f.name]; }), value,
                    function (v) { set(v); config.values = {}; rerender(); }, T.choose);
    }
    if (w === "flow") {
      return select(id, D.flows.map(function (f) { return [f.key, f.name]; }), value,
                    function (v) { set(v); delete config.step; delete config.outcome; rerender(); }, T.choose);
    }
    if (w === "step" || w === "outcome") {
      var flow = FLOWS[config.flow] || { steps: [] };
      if (w === "step") {
        return select(id, flow.steps.map(function (s) { return [s.id, s.name]; }), value,
                      function (v) { set(v); rerender(); }, T.choose);
      }
      var step = flow.steps.filter(function (s) { return s.id === config.step; })[0];
      return select(id, (step ? step.outcomes : []).map(function (o) { return [o, o]; }), value,
                    set, T.any_outcome);
    }
    if (w === "field" || w === "relation") {
      return select(id, fieldChoices(formOf(), w === "relation" ? ["relation"] : prop.types),
                    value, function (v) { set(v); rerender(); }, T.choose);
    }
    if (w === "tags") {
      return input(id, (value || []).join(", "), function (v) {
        set(v.split(/[,，]/).map(function (x) { return x.trim(); }).filter(Boolean));
      }, { placeholder: T.tags_hint });
    }
    if (w === "values") { return valuesWidget(config, id); }
    if (w === "template") { return templateWidget(config, name, prop, id); }
    if (w === "recipients") { return recipients(config, id); }
    if (w === "assignee") { return assignee(config, id); }
    var type = prop.type || ((prop.anyOf || [])[0] || {}).type;
    if (type === "integer" || type === "number") {
      return input(id, value, function (v) { set(v === "" ? null : Number(v)); },
                   { type: "number", min: prop.minimum, max: prop.maximum });
    }
    if (type === "object" || type === "array") {
      var area = el("textarea", { id: id, rows: 2, "class": "mono",
                                  value: value ? JSON.stringify(value) : "" });
      area.addEventListener("input", function () {
        try { set(area.value.trim() ? JSON.parse(area.value) : null); area.removeAttribute("aria-invalid"); }
        catch (e) { area.setAttribute("aria-invalid", "true"); }
      });
      return area;
    }
    return input(id, value, set);
  }
  function valuesWidget(config, id) {
    config.values = config.values || {};
    var box = el("div", { id: id, "class": "values" }), form = targetForm(config);
    var rows = Object.keys(config.values).map(function (k) { return [k, config.values[k]]; });
    function sync() {
      var out = {};
      rows.forEach(function (r) { if (r[0]) { out[r[0]] = r[1]; } });
      config.values = out; changed();
    }
    function draw() {
      box.textContent = "";
      rows.forEach(function (row, i) {
        var f = select(id + "-f" + i, fieldChoices(form), row[0], function (v) { row[0] = v; sync(); }, T.field);
        f.setAttribute("aria-label", T.field);
        var x = input(id + "-x" + i, row[1], function (v) { row[1] = v; sync(); },
                      { "class": "mono", "aria-label": T.expression, placeholder: T.expression });
        box.appendChild(el("div", { "class": "value-row" }, [f, x, el("button", {
          type: "button", "class": "link", text: "×", "aria-label": T.remove,
          onclick: function () { rows.splice(i, 1); sync(); draw(); } })]));
      });
      box.appendChild(el("button", { type: "button", "class": "link", text: T.add_row,
        onclick: function () { rows.push(["", ""]); draw(); } }));
    }
    draw();
    return box;
  }
  function templateWidget(config, name, prop, id) {
    var one = prop.rows === 1;
    var area = el(one ? "input" : "textarea", { id: id, rows: one ? null : prop.rows || 3,
                                                value: config[name] || "" });
    area.addEventListener("input", function () { setOpt(config, name, area.value); changed(); });
    var pick = select(id + "-insert", fieldsOf(formOf()).map(function (f) {
      return ["{{ record." + f.key + " }}", f.label]; }), "", function (v) {
      if (v) { insertAt(area, v); pick.value = ""; } }, T.insert);
    pick.setAttribute("aria-label", T.insert);
    pick.classList.add("insert");
    return el("div", { "class": "template" }, [area, pick]);
  }
  function recipients(config, id) {
    var to = config.to = config.to || {};
    var set = function (k, v) { setOpt(to, k, v); changed(); };
    var role = select(id + "-role", D.roles.map(function (r) { return [r.key, r.name]; }), to.role,
                      function (v) { set("role", v); }, T.choose);
    function check(key, text) {
      var c = el("input", { type: "checkbox", id: id + "-" + key, checked: !!to[key],
                            onchange: function () { set(key, c.checked || null); } });
      return el("label", { "class": "check", "for": id + "-" + key }, [c, " " + text]);
    }
    return el("fieldset", { id: id, "class": "recipients" }, [
      el("legend", { "class": "sr", text: T.recipients }),
      labelled(id + "-role", T.role, role), check("owner", T.owner), check("assignee", T.assignee),
      labelled(id + "-users", T.users, input(id + "-users", (to.users || []).join(", "), function (v) {
        set("users", v.split(/[,，]/).map(function (x) { return x.trim(); }).filter(Boolean));
        if (!to.users.length) { delete to.users; }
      })),
      labelled(id + "-field", T.to_field, input(id + "-field", to.field, function (v) { set("field", v); },
                                                { "class": "mono", placeholder: "customer.mobile" }))]);
  }
  function assignee(config, id) {
    var a = config.assignee = config.assignee || { field: "owner" };
    var byRole = a.strategy === "role";
    var mode = select(id + "-mode", [["field", T.assignee_field], ["role", T.assignee_role]],
                      byRole ? "role" : "field", function (v) {
        config.assignee = v === "role" ? { strategy: "role", role: (D.roles[0] || {}).key }
                                       : { field: "owner" };
        changed(); renderActions(); });
    var detail = byRole
      ? select(id + "-role", D.roles.map(function (r) { return [r.key, r.name]; }), a.role,
               function (v) { a.role = v; changed(); })
      : input(id + "-field", a.field, function (v) { a.field = v; changed(); }, { "class": "mono" });
    detail.setAttribute("aria-label", byRole ? T.role : T.field);
    return el("div", { id: id, "class": "inline-form" }, [mode, detail]);
  }
  function actionCard(config, i) {
    var type = ACTIONS[config.type] || { name: config.type, schema: { properties: {} } };
    var body = el("div", { "class": "action-body" });
    var li = el("li", { "class": "rule-action card", "data-index": i, id: "action-" + i }, [
      el("div", { "class": "action-head" }, [
        el("span", { "class": "handle", title: T.move_hint, "aria-hidden": "true", text: "⠿" }),
        el("strong", { text: K.fmt(T.action_n, { n: i + 1 }) + " · " + type.name }),
        el("button", { type: "button", "class": "link danger", text: T.remove, id: "action-" + i + "-remove",
                       onclick: function () { spec.actions.splice(i, 1); changed(); renderActions(); } })]),
      body,
      el("div", { "class": "msg error problem", role: "alert", id: "p-action-" + i, hidden: true })]);
    var props = type.schema.properties || {};
    var required = type.schema.required || [];
    function draw() {
      body.textContent = "";
      Object.keys(props).forEach(function (name) {
        var prop = props[name], fid = "a" + i + "-" + name;
        if (config.type === "notify" && name === "robot" && config.channel !== "wecom") { return; }
        var title = (prop.title || name) + (required.indexOf(name) >= 0 ? " *" : "");
        var control = widget(config, name, prop, fid, draw);
        var box = control.tagName === "FIELDSET" ? el("div", { "class": "field-row" }, [
          el("span", { "class": "label", text: title }), control]) : labelled(fid, title, control);
        body.appendChild(box);
      });
    }
    draw();
    return li;
  }
  function renderActions() {
    var list = $("r-actions");
    list.textContent = "";
    spec.actions.forEach(function (config, i) { list.appendChild(actionCard(config, i)); });
  }
  function addAction() {
    var type = $("r-new-action").value, schema = ACTIONS[type].schema, config = { type: type };
    Object.keys(schema.properties || {}).forEach(function (k) {
      var d = schema.properties[k]["default"];
      if (d !== undefined && d !== null && !(Array.isArray(d) && !d.length)) { config[k] = d; }
    });
    if (type === "notify") { config.to = {}; config.template = ""; }
    spec.actions.push(config);
    changed(); renderActions();
  }

  // -- problems, save, test ------------------------------------------------------------------
  function show(id, problems) {
    var box = $(id);
    box.textContent = "";
    problems.forEach(function (p) { box.appendChild(el("div", { text: p })); });
    box.hidden = !problems.length;
  }
  function placeProblems(problems) {
    var by = { general: [], trigger: [], condition: [] };
    spec.actions.forEach(function (_a, i) { by["action-" + i] = []; });
    problems.forEach(function (p) {
      var m = /^actions(?:\[|\.)(\d+)\]?/.exec(p);
      if (m && by["action-" + m[1]]) { by["action-" + m[1]].push(p); }
      else if (/^condition/.test(p)) { by.condition.push(p); }
      else if (/^trigger/.test(p)) { by.trigger.push(p); }
      else { by.general.push(p); }
    });
    show("r-problems", by.general.length ? [T.problems].concat(by.general) : []);
    show("p-trigger", by.trigger);
    show("p-condition", by.condition);
    spec.actions.forEach(function (_a, i) { show("p-action-" + i, by["action-" + i]); });
  }
  function working() {
    spec.name = $("r-name").value.trim();
    spec.key = $("r-key").value.trim();
    setOpt(spec, "description", $("r-description").value.trim());
    setOpt(spec, "condition", $("r-condition").value.trim());
    if (!D.key) { spec.enabled = false; }
    return spec;
  }
  function problemsOf(body) {
    if (body && body.problems) { return body.problems; }
    return [body && (body.detail || body.title) || T.failed];
  }
  function save() {
    var body = working();
    status(T.saving);
    var url = D.key ? API + "/rules/" + D.key : API + "/rules";
    K.send(D.key ? "PUT" : "POST", url, body).then(function (r) {
      return r.json().then(function (b) { return [r, b]; });
    }).then(function (rb) {
      if (rb[0].ok) {
        placeProblems([]); dirty = false; status(T.saved);
        if (!D.key) { window.location.assign("/apps/" + D.app + "/rules/" + rb[1].key + "?msg=rule_saved"); }
        return;
      }
      status(T.not_saved);
      placeProblems(problemsOf(rb[1]));
    }).catch(function () { status(T.failed); });
  }
  function describe(a) {
    var lines = [];
    if (a.title) { lines.push(T.message + "：" + a.title); }
    if (a.body) { lines.push(a.body); }
    if (a.users) { lines.push(K.fmt(T.n_users, { n: a.users.length })); }
    if (a.to && a.to.length) { lines.push(T.recipients + "：" + a.to.join(", ")); }
    if (a.url) { lines.push((a.method || "POST") + " " + a.url); }
    if (a.values) {
      lines.push(T.values + "：" + Object.keys(a.values).map(function (k) {
        return k + " = " + JSON.stringify(a.values[k]); }).join("；"));
    }
    ["flow", "step", "field", "add", "remove", "form"].forEach(function (k) {
      if (a[k]) { lines.push(k + "：" + JSON.stringify(a[k])); }
    });
    return lines;
  }
  function testRun() {
    var out = $("r-test-result"), id = parseInt($("r-test-id").value, 10);
    out.textContent = T.test_running;
    K.send("POST", API + "/rules-test", { spec: working(), record_id: isNaN(id) ? null : id })
      .then(function (r) { return r.json().then(function (b) { return [r, b]; }); })
      .then(function (rb) {
        out.textContent = "";
        var b = rb[1];
        if (!rb[0].ok) {
          placeProblems(problemsOf(b));
          out.appendChild(el("p", { "class": "msg error", role: "alert", text: problemsOf(b).join("；") }));
          return;
        }
        placeProblems([]);
        out.appendChild(el("p", { id: "test-condition", "class": "msg " + (b.condition ? "ok" : "warn"),
                                  text: b.condition ? T.condition_true : T.condition_false }));
        if (b.error) { out.appendChild(el("p", { "class": "msg error", text: T.error + "：" + b.error })); }
        var list = el("ol", { id: "test-actions", "class": "test-actions" });
        (b.actions || []).forEach(function (a) {
          list.appendChild(el("li", {}, [el("strong", { text: T.would + " " + ((ACTIONS[a.would] || {}).name || a.would) })]
            .concat(describe(a).map(function (t) { return el("div", { "class": "break", text: t }); }))));
        });
        out.appendChild(list);
        out.appendChild(el("p", { "class": "small muted", text: T.changes_nothing }));
      }).catch(function () { out.textContent = T.failed; });
  }
  var searchTimer = null;
  function search() {
    clearTimeout(searchTimer);
    var q = $("r-test-q").value.trim(), list = $("r-test-found");
    if (!q) { list.textContent = ""; return; }
    searchTimer = setTimeout(function () {
      fetch("/api/v1/search?limit=10&q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (b) {
          list.textContent = "";
          var form = formOf(), hits = [];
          (b.groups || []).forEach(function (g) {
            if (g.app === D.app && (!form || g.form === form)) {
              g.items.forEach(function (h) { hits.push([h, g.form_name]); });
            }
          });
          if (!hits.length) { list.appendChild(el("li", { "class": "muted small", text: T.none_found })); }
          hits.forEach(function (hit) {
            list.appendChild(el("li", {}, [el("button", { type: "button", "class": "link pick-record",
              "data-id": hit[0].id, text: hit[0].title + " · " + hit[1] + " #" + hit[0].id,
              onclick: function () { $("r-test-id").value = hit[0].id; list.textContent = ""; testRun(); } })]));
          });
        });
    }, 250);
  }

  // -- start -----------------------------------------------------------------------------------
  // The script is deferred: on a slow phone someone may already have typed into a box. What
  // they typed stays (and counts as an unsaved change); an empty box gets the rule's value.
  var typedEarly = false;
  [["r-name", spec.name], ["r-key", spec.key], ["r-description", spec.description],
   ["r-condition", spec.condition]].forEach(function (pair) {
    var box = $(pair[0]);
    if (box.value) { typedEarly = true; } else { box.value = pair[1] || ""; }
  });
  if ($("r-key").value && $("r-key").value !== (spec.key || "")) { keyTouched = true; }
  D.triggers.forEach(function (t) {
    $("r-trigger-type").appendChild(option(t.type, t.name, t.type === spec.trigger.type));
  });
  D.actions.forEach(function (a) { $("r-new-action").appendChild(option(a.type, a.name)); });
  $("r-trigger-type").addEventListener("change", function () { setTriggerType(this.value); });
  $("r-condition").addEventListener("input", function () { changed(); checkCondition(); });
  function suggestKey() {
    if (keyTouched || D.key) { return; }
    fetch("/apps/" + D.app + "/design/key?label=" + encodeURIComponent($("r-name").value),
          { credentials: "same-origin" }).then(function (r) { return r.json(); })
      .then(function (b) {
        // Someone typing in the key field owns it: a late suggestion must not land mid-word.
        if (!keyTouched && document.activeElement !== $("r-key")) { $("r-key").value = b.key; }
      });
  }
  $("r-name").addEventListener("input", function () { changed(); suggestKey(); });
  $("r-key").addEventListener("beforeinput", function () { keyTouched = true; });
  $("r-key").addEventListener("input", function () { keyTouched = true; changed(); });
  $("r-description").addEventListener("input", changed);
  $("r-add-action").addEventListener("click", addAction);
  $("r-save").addEventListener("click", save);
  $("r-test-run").addEventListener("click", testRun);
  $("r-test-q").addEventListener("input", search);
  window.Sortable.create($("r-actions"), { handle: ".action-head", animation: 120,
    onEnd: function (e) {
      if (e.oldIndex === e.newIndex) { return; }
      var moved = spec.actions.splice(e.oldIndex, 1)[0];
      spec.actions.splice(e.newIndex, 0, moved);
      changed(); renderActions();
    } });
  window.addEventListener("beforeunload", function (e) { if (dirty) { e.preventDefault(); e.returnValue = T.leave; } });
  renderTrigger(); renderSuggest(); renderActions();
  if ($("r-condition").value) { checkCondition(); }
  dirty = false; status("");
  if (typedEarly) { changed(); if ($("r-name").value) { suggestKey(); } }
})();
