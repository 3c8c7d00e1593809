/* The flow designer's property panel (templates/designer/flow.html): the form of the
 * selected node or edge, built from the engine's option description of its type
 * (engine_flows/node_options.py: the keys a type takes, strategies, operations, modes,
 * SLA, step fields, timer settings, service actions), so a new node type or strategy
 * shows up here without code. Each change hands a new node/edge dict to ctx.update();
 * keys the panel does not know are carried over untouched. */
(function () {
  "use strict";
  var K = window.QiaoKit, el = K.el;

  function copy(v) { return JSON.parse(JSON.stringify(v)); }
  function row(label, control, hint) {
    return el("div", { "class": "d-row" }, [el("label", {}, [label, control]),
      hint ? el("span", { "class": "small muted", text: hint }) : null]);
  }
  function select(items, value, onchange, blank) {
    var s = el("select", { onchange: function () { onchange(s.value); } });
    if (blank !== undefined) { s.appendChild(el("option", { value: "", text: blank })); }
    items.forEach(function (it) {
      s.appendChild(el("option", { value: it.key, text: it.name, selected: it.key === value }));
    });
    s.value = value || "";
    return s;
  }
  function number(value, onchange, attrs) {
    var i = el("input", Object.assign({ type: "number", min: "0", step: "any",
      value: value === undefined || value === null ? "" : String(value),
      onchange: function () { onchange(i.value === "" ? null : Number(i.value)); } }, attrs || {}));
    return i;
  }
  function text(value, onchange, attrs) {
    var i = el("input", Object.assign({ type: "text", value: value || "",
      onchange: function () { onchange(i.value.trim()); } }, attrs || {}));
    return i;
  }
  function clean(obj) {  // drop empty settings so the stored spec stays minimal
    Object.keys(obj).forEach(function (k) {
      var v = obj[k];
      if (k === "reject_to" && Array.isArray(v)) { return; }  // [] = back to no step
      if (v === null || v === undefined || v === "" || (Array.isArray(v) && !v.length) ||
          (v && typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length)) {
        delete obj[k];
      }
    });
    return obj;
  }

  function Panel(ctx) { this.ctx = ctx; this.T = ctx.T; this.D = ctx.D; }

  Panel.prototype.fieldItems = function (filter) {
    return this.D.fields.filter(filter || function () { return true; }).map(function (f) {
      return { key: f.key, name: f.label + " (" + f.key + ")" };
    });
  };

  Panel.prototype.node = function (box, spec, problems) {
    var self = this, T = this.T, type = this.D.options.types[spec.type] || { keys: [] };
    var keys = type.keys, n = copy(spec);
    function commit() { self.ctx.update(clean(n)); }
    box.appendChild(el("h3", { text: (this.D.typeNames[spec.type] || spec.type) }));
    this.problems(box, problems);
    box.appendChild(row(T.id, el("input", { type: "text", value: n.id, readonly: true,
      id: "fp-id" })));
    box.appendChild(row(T.name, text(n.name, function (v) { n.name = v; commit(); },
      { id: "fp-name", maxlength: "100" })));
    if (keys.indexOf("mode") >= 0) {
      box.appendChild(row(T.mode, select(this.D.options.modes.map(function (m) {
        return { key: m, name: T["mode_" + m] || m };
      }), n.mode || "single", function (v) { n.mode = v === "single" ? null : v; commit(); }),
      null));
      box.lastChild.querySelector("select").id = "fp-mode";
    }
    if (keys.indexOf("outcomes") >= 0) {
      box.appendChild(row(T.outcomes, text((n.outcomes || ["submit"]).join(", "), function (v) {
        var list = v.split(/[,，\s]+/).filter(Boolean);
        n.outcomes = list.length === 1 && list[0] === "submit" ? null : list; commit();
      }, { id: "fp-outcomes" }), T.outcomes_hint + " " + Object.keys(this.D.outcomes).map(
        function (k) { return k + "=" + self.D.outcomes[k]; }).join(" ")));
    }
    if (keys.indexOf("assignee") >= 0) {
      box.appendChild(this.assignee(n.assignee || { strategy: "role" }, function (a) {
        n.assignee = a; commit();
      }));
    }
    if (keys.indexOf("sla") >= 0) { box.appendChild(this.sla(n, commit)); }
    if (keys.indexOf("allowed_actions") >= 0) { box.appendChild(this.operations(n, commit)); }
    if (keys.indexOf("fields") >= 0) { box.appendChild(this.matrix(n, commit)); }
    if (keys.indexOf("wait") >= 0) { box.appendChild(this.wait(n, commit)); }
    if (keys.indexOf("flow") >= 0) {
      box.appendChild(row(T.subflow, select(this.D.flows.map(function (f) {
        return { key: f.key, name: f.name };
      }), n.flow, function (v) { n.flow = v || null; commit(); }, T.choose)));
    }
    if (keys.indexOf("record_field") >= 0) {
      box.appendChild(row(T.record_field, select(this.fieldItems(function (f) {
        return f.type === "relation";
      }), n.record_field, function (v) { n.record_field = v || null; commit(); },
      T.this_record)));
    }
    if (keys.indexOf("actions") >= 0) { box.appendChild(this.actions(n, commit)); }
    box.appendChild(el("div", { "class": "actions" }, [el("button", { type: "button",
      "class": "danger", id: "fp-remove", text: T.remove_node,
      onclick: function () { self.ctx.remove(); } })]));
  };

  Panel.prototype.problems = function (box, problems) {
    if (!problems.length) { return; }
    box.appendChild(el("div", { "class": "msg error", role: "alert" }, [el("ul", {},
      problems.map(function (p) { return el("li", { text: p }); }))]));
  };

  Panel.prototype.assignee = function (a, done) {
    var self = this, T = this.T, D = this.D, box = el("fieldset", { "class": "d-fieldset" });
    a = copy(a);
    function redraw() { box.replaceWith(self.assignee(a, done)); }
    function set(k, v) { a[k] = v; done(clean(copy(a))); }
    box.appendChild(el("legend", { text: T.assignee }));
    box.appendChild(row(T.strategy, select(D.options.strategies.map(function (s) {
      return { key: s, name: T["strategy_" + s] || s };
    }), a.strategy, function (v) {
      a = { strategy: v }; done(copy(a)); redraw();
    })));
    box.querySelector("select").id = "fp-strategy";
    var roles = D.roles.map(function (r) { return { key: r.key, name: r.name + " (" + r.key + ")" }; });
    var s = a.strategy;
    if (s === "users") {
      var multi = el("select", { multiple: true, id: "fp-users", size: "5", onchange: function () {
        set("users", Array.prototype.filter.call(multi.options, function (o) { return o.selected; })
          .map(function (o) { return o.value; }));
      } });
      D.users.forEach(function (u) {
        multi.appendChild(el("option", { value: u.key, text: u.name + " (" + u.key + ")",
          selected: (a.users || []).indexOf(u.key) >= 0 }));
      });
      box.appendChild(row(T.users, multi));
    }
    if (["role", "department_role", "round_robin", "least_loaded"].indexOf(s) >= 0) {
      var r = select(roles, a.role, function (v) { set("role", v || null); }, T.choose);
      r.id = "fp-role";
      box.appendChild(row(T.role, r));
    }
    if (s === "field" || s === "mapping") {
      box.appendChild(row(T.record_user_field, select([{ key: "owner", name: T.owner }]
        .concat(this.fieldItems()), a.field, function (v) { set("field", v || null); },
        T.choose)));
    }
    if (s === "round_robin" || s === "least_loaded") {
      box.appendChild(row(T.by_field, select(this.fieldItems(), a.by_field, function (v) {
        set("by_field", v || null);
      }, T.none), T.by_field_hint));
    }
    if (s === "mapping") { box.appendChild(this.mapping(a, set)); }
    return box;
  };

  Panel.prototype.mapping = function (a, set) {
    var T = this.T, roles = this.D.roles.map(function (r) { return { key: r.key, name: r.name }; });
    var map = copy(a.map || {}), list = el("ul", { "class": "d-options" });
    function save() { set("map", map); }
    Object.keys(map).forEach(function (value) {
      var target = map[value];
      var pick = target.strategy === "role" ?
        select(roles, target.role, function (v) { map[value] = { strategy: "role", role: v }; save(); }) :
        el("span", { "class": "small muted", text: T["strategy_" + target.strategy] || target.strategy });
      list.appendChild(el("li", {}, [el("span", { text: value }), pick, el("span"),
        el("span"), el("button", { type: "button", "class": "link", text: "×",
          "aria-label": T.remove, onclick: function () { delete map[value]; save(); } })]));
    });
    var key = el("input", { type: "text", placeholder: T.map_value });
    var add = el("button", { type: "button", text: T.add, onclick: function () {
      if (key.value.trim()) { map[key.value.trim()] = { strategy: "role", role: roles.length ? roles[0].key : "" }; save(); }
    } });
    var dflt = select(roles, a["default"] && a["default"].role, function (v) {
      set("default", v ? { strategy: "role", role: v } : null);
    }, T.none);
    return el("div", {}, [el("p", { "class": "small muted", text: T.mapping_hint }), list,
      el("div", { "class": "d-view-add" }, [key, add]), row(T.map_default, dflt)]);
  };

  Panel.prototype.sla = function (n, commit) {
    var T = this.T, sla = copy(n.sla || {}), box = el("fieldset", { "class": "d-fieldset" });
    var unit = sla.hours ? "hours" : sla.working_days ? "working_days" : "";
    function save() { n.sla = Object.keys(clean(sla)).length ? sla : null; commit(); }
    var amount = number(sla.hours || sla.working_days, function (v) {
      delete sla.hours; delete sla.working_days;
      if (v && unitSel.value) { sla[unitSel.value] = unitSel.value === "working_days" ? Math.round(v) : v; }
      save();
    }, { id: "fp-sla-amount" });
    var unitSel = select([{ key: "working_days", name: T.working_days }, { key: "hours", name: T.hours }],
      unit, function (v) {
        var val = sla.hours || sla.working_days; delete sla.hours; delete sla.working_days;
        if (v && val) { sla[v] = v === "working_days" ? Math.round(val) : val; }
        save();
      }, T.no_sla);
    unitSel.id = "fp-sla-unit";
    box.appendChild(el("legend", { text: T.sla }));
    box.appendChild(el("div", { "class": "d-view-sort" }, [amount, unitSel]));
    box.appendChild(row(T.remind_before_hours, number(sla.remind_before_hours, function (v) {
      sla.remind_before_hours = v; save();
    })));
    box.appendChild(row(T.escalate_after_hours, number(sla.escalate_after_hours, function (v) {
      sla.escalate_after_hours = v; save();
    })));
    return box;
  };

  Panel.prototype.operations = function (n, commit) {
    var T = this.T, ops = this.D.options.operations, box = el("fieldset", { "class": "d-fieldset" });
    var on = n.allowed_actions || ops.slice();
    box.appendChild(el("legend", { text: T.operations }));
    var grid = el("div", { "class": "d-checks" });
    ops.forEach(function (op) {
      grid.appendChild(el("label", {}, [el("input", { type: "checkbox", value: op,
        checked: on.indexOf(op) >= 0, "data-op": op, onchange: function () {
          var picked = Array.prototype.filter.call(grid.querySelectorAll("input"), function (i) {
            return i.checked; }).map(function (i) { return i.value; });
          n.allowed_actions = picked.length === ops.length ? null : picked; commit();
        } }), " " + (T["op_" + op] || op)]));
    });
    box.appendChild(grid);
    if (on.indexOf("reject") >= 0) { box.appendChild(this.rejectTo(n, commit)); }
    return box;
  };

  Panel.prototype.rejectTo = function (n, commit) {
    // reject_to: the earlier steps a rejection may send the work back to (unset: any)
    var T = this.T, steps = this.ctx.earlierSteps(n.id), box = el("div", { "class": "f-reject-to" });
    var limited = Array.isArray(n.reject_to), list = el("div", { "class": "d-checks" });
    function picked() {
      return Array.prototype.filter.call(list.querySelectorAll("input"), function (i) {
        return i.checked; }).map(function (i) { return i.value; });
    }
    box.appendChild(el("label", {}, [el("input", { type: "checkbox", checked: limited,
      "data-reject-limit": "1", onchange: function (e) {
        if (e.target.checked) { n.reject_to = []; } else { delete n.reject_to; }
        commit(); this.ctx.reselect();
      }.bind(this) }), " " + T.reject_limit]));
    if (limited) {
      steps.forEach(function (s) {
        list.appendChild(el("label", {}, [el("input", { type: "checkbox", value: s.key,
          "data-reject-to": s.key, checked: n.reject_to.indexOf(s.key) >= 0,
          onchange: function () { n.reject_to = picked(); commit(); } }), " " + s.name]));
      });
      if (!steps.length) { list.appendChild(el("p", { "class": "small muted", text: T.reject_none })); }
      box.appendChild(list);
    } else {
      box.appendChild(el("p", { "class": "small muted", text: T.reject_hint }));
    }
    return box;
  };

  Panel.prototype.matrix = function (n, commit) {
    var T = this.T, f = copy(n.fields || {}), perOutcome = "required_on" in this.D.options.fields;
    var outcomes = this.ctx.outcomesOf(n).filter(function (o) { return o !== "done"; });
    var cols = ["editable", "readonly", "hidden", "required"];
    var box = el("fieldset", { "class": "d-fieldset f-matrix" });
    box.appendChild(el("legend", { text: T.step_fields }));
    if (!this.D.fields.length) {
      box.appendChild(el("p", { "class": "small muted", text: T.no_fields }));
      return box;
    }
    var head = el("tr", {}, [el("th", { text: T.field })].concat(cols.map(function (c) {
      return el("th", { text: T["col_" + c] });
    })).concat(perOutcome ? outcomes.map(function (o) {
      return el("th", { text: T.required_on.replace("{outcome}", this.ctx.outcomeLabel(o)) });
    }, this) : []));
    var body = el("tbody");
    function has(list, key) { return (list || []).indexOf(key) >= 0; }
    function toggle(name, key, yes) {
      var list = (f[name] || []).filter(function (k) { return k !== key; });
      if (yes) { list.push(key); }
      f[name] = list;
    }
    function save() {
      if (f.required_on) {
        Object.keys(f.required_on).forEach(function (o) {
          if (!f.required_on[o].length) { delete f.required_on[o]; }
        });
      }
      n.fields = Object.keys(clean(f)).length ? f : null; commit();
    }
    this.D.fields.forEach(function (field) {
      var tr = el("tr", { "data-field": field.key }, [el("td", { text: field.label })]);
      cols.forEach(function (c) {
        tr.appendChild(el("td", {}, [el("input", { type: "checkbox", "data-col": c,
          "aria-label": field.label + " " + T["col_" + c], checked: has(f[c], field.key),
          onchange: function (e) {
            toggle(c, field.key, e.target.checked);
            if (e.target.checked && c === "required") { toggle("editable", field.key, true); }
            if (e.target.checked && c !== "required") {  // one of editable / readonly / hidden
              ["editable", "readonly", "hidden"].forEach(function (o) {
                if (o !== c) { toggle(o, field.key, false); }
              });
            }
            save(); } })]));
      });
      if (perOutcome) {
        outcomes.forEach(function (o) {
          var on = f.required_on && has(f.required_on[o], field.key);
          tr.appendChild(el("td", {}, [el("input", { type: "checkbox", "data-col": "on:" + o,
            checked: on, onchange: function (e) {
              f.required_on = f.required_on || {};
              f.required_on[o] = (f.required_on[o] || []).filter(function (k) { return k !== field.key; });
              if (e.target.checked) {
                f.required_on[o].push(field.key); toggle("editable", field.key, true);
              }
              save(); } })]));
        });
      }
      body.appendChild(tr);
    });
    box.appendChild(el("div", { "class": "f-matrix-scroll" }, [el("table", {}, [
      el("thead", {}, [head]), body])]));
    return box;
  };

  Panel.prototype.wait = function (n, commit) {
    var T = this.T, w = copy(n.wait || {}), box = el("fieldset", { "class": "d-fieldset" });
    function save() { n.wait = clean(w); commit(); }
    box.appendChild(el("legend", { text: T.wait }));
    ["days", "hours", "minutes"].forEach(function (k) {
      box.appendChild(row(T["wait_" + k], number(w[k], function (v) { w[k] = v; save(); })));
    });
    box.appendChild(row(T.until_field, select(this.fieldItems(function (f) {
      return f.type === "date" || f.type === "datetime";
    }), w.until_field, function (v) { w.until_field = v || null; save(); }, T.none)));
    box.appendChild(row(T.offset_days, number(w.offset_days, function (v) {
      w.offset_days = v ? Math.round(v) : null; save();
    }, { min: "-366" })));
    box.appendChild(row(T.at, text(w.at, function (v) { w.at = v || null; save(); },
      { placeholder: "09:00", pattern: "[0-2][0-9]:[0-5][0-9]" })));
    return box;
  };

  Panel.prototype.actions = function (n, commit) {
    var self = this, T = this.T, acts = copy(n.actions || []);
    var box = el("fieldset", { "class": "d-fieldset" });
    function save() { n.actions = acts; commit(); }
    box.appendChild(el("legend", { text: T.service_actions }));
    acts.forEach(function (a, i) {
      var item = el("div", { "class": "d-view-item" });
      item.appendChild(el("div", { "class": "d-view-sort" }, [
        select(self.D.options.service_actions.map(function (k) {
          return { key: k, name: T["action_" + k] || k };
        }), a.type, function (v) { acts[i] = { type: v }; save(); }),
        el("button", { type: "button", "class": "link", text: T.remove, onclick: function () {
          acts.splice(i, 1); save(); } })]));
      if (a.type === "set_fields") {
        var values = a.values || {};
        Object.keys(values).forEach(function (key) {
          item.appendChild(el("div", { "class": "d-view-sort" }, [
            el("span", { "class": "small", text: key + " =" }),
            text(values[key], function (v) { values[key] = v; a.values = values; save(); }),
            el("button", { type: "button", "class": "link", text: "×", "aria-label": T.remove,
              onclick: function () { delete values[key]; a.values = values; save(); } })]));
        });
        var pick = select(self.fieldItems(), "", function () {}, T.choose_field);
        item.appendChild(el("div", { "class": "d-view-add" }, [pick, el("button", {
          type: "button", text: T.add, onclick: function () {
            if (pick.value) { values[pick.value] = values[pick.value] || "\"\""; a.values = values; save(); }
          } })]));
      } else {
        var raw = copy(a); delete raw.type;
        var area = el("textarea", { rows: "3", value: JSON.stringify(raw), onchange: function () {
          try { acts[i] = Object.assign({ type: a.type }, JSON.parse(area.value || "{}")); save(); }
          catch (_e) { area.setAttribute("aria-invalid", "true"); }
        } });
        item.appendChild(row(T.settings_json, area));
      }
      box.appendChild(item);
    });
    box.appendChild(el("button", { type: "button", id: "fp-add-action", text: "+ " + T.add_action,
      onclick: function () { acts.push({ type: self.D.options.service_actions[0], values: {} }); save(); } }));
    return box;
  };

  Panel.prototype.edge = function (box, spec, source, problems) {
    var self = this, T = this.T, e = copy(spec), ctx = this.ctx;
    function commit() { ctx.update(clean(e)); }
    box.appendChild(el("h3", { text: T.edge_title.replace("{from}", ctx.nameOf(e.from))
      .replace("{to}", ctx.nameOf(e.to)) }));
    this.problems(box, problems);
    if (source && source.type === "gateway") {
      box.appendChild(el("label", { "class": "f-inline" }, [el("input", { type: "checkbox",
        id: "fp-default", checked: !!e["default"], onchange: function (ev) {
          e["default"] = ev.target.checked || null;
          if (ev.target.checked) { delete e.condition; }
          commit(); ctx.reselect();
        } }), " " + T.default_edge]));
      if (!e["default"]) { box.appendChild(this.condition(e, commit)); }
    } else if (source) {
      var outs = ctx.outcomesOf(source);
      if (outs.length > 1 || (outs.length === 1 && outs[0] !== "done")) {
        var pick = select(outs.map(function (o) { return { key: o, name: ctx.outcomeLabel(o) }; }),
          e.on, function (v) { e.on = v || null; commit(); }, T.any_outcome);
        pick.id = "fp-on";
        box.appendChild(row(T.on, pick));
      }
    }
    box.appendChild(row(T.edge_name, text(e.name, function (v) { e.name = v || null; commit(); },
      { maxlength: "100" })));
    box.appendChild(el("div", { "class": "actions" }, [el("button", { type: "button",
      "class": "danger", text: T.remove_edge, onclick: function () { ctx.remove(); } })]));
  };

  Panel.prototype.condition = function (e, commit) {
    var T = this.T, ctx = this.ctx, timer = null;
    var out = el("p", { "class": "small", id: "fp-cond-check", role: "status" });
    var area = el("textarea", { rows: "2", id: "fp-condition", value: e.condition || "",
      spellcheck: "false", oninput: function () {
        clearTimeout(timer); timer = setTimeout(check, 300);
      }, onchange: function () { e.condition = area.value.trim() || null; commit(); } });
    function check() {
      var textValue = area.value.trim();
      if (!textValue) { out.textContent = ""; return; }
      ctx.checkCondition(textValue).then(function (r) {
        area.setAttribute("aria-invalid", r.ok ? "false" : "true");
        out.className = "small " + (r.ok ? "f-ok" : "f-err");
        out.textContent = r.ok ? T.condition_ok : (r.column ? T.at_column.replace("{column}", r.column) + " " : "") + r.message;
      });
    }
    if (e.condition) { setTimeout(check, 0); }
    return el("div", { "class": "d-row d-expr" }, [el("label", { "for": "fp-condition", text: T.condition }),
      area, el("span", { "class": "small muted", text: T.condition_hint }), out]);
  };

  window.QiaoFlowPanel = Panel;
})();
