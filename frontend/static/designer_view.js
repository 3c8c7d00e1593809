/* The form designer's "record page" tab (templates/designer/design.html): the form's
 * `view` (engine_forms/view.py) — the head's key fields, status and tags, the figure
 * cards, the related lists of the app's forms that point here, and the quick actions —
 * edited in the same working copy designer.js saves and checks. Loaded before
 * designer.js, which calls QiaoView.panel() once and QiaoView.rename()/drop() whenever a
 * field's key changes or the field goes, so the view never names a field that is gone.
 *
 * Every edit ends in tidy(): an empty part is left out, and a view with nothing left is
 * removed from the spec (the record page is then the plain list of fields).
 */
(function () {
  "use strict";

  var K = window.QiaoKit, el = K.el, fmt = K.fmt;
  var FIGURES = ["rollup", "formula", "number", "money", "percent", "date", "auto_number"];
  var MAX = 8, MAX_RELATED = 10;

  /* -- keeping the view in step with the fields (pure functions on a spec) ----------- */

  function tidy(s) {
    var v = s.view;
    if (!v) { return; }
    var h = v.header || {};
    if (h.fields && !h.fields.length) { delete h.fields; }
    if (!h.tags) { delete h.tags; }
    if (!h.status) { delete h.status; }
    if (Object.keys(h).length) { v.header = h; } else { delete v.header; }
    ["cards", "related", "actions"].forEach(function (k) { if (v[k] && !v[k].length) { delete v[k]; } });
    if (!Object.keys(v).length) { delete s.view; }
  }

  /* `to` null: the field is gone. A related list over this very form (a relation to
   * itself) names this form's fields in its columns, sort and via too. */
  function remap(s, old, to) {
    var v = s.view;
    if (!v) { return; }
    function one(k) { return k === old ? to : k; }
    function many(list) { return list.map(one).filter(Boolean); }
    var h = v.header;
    if (h) {
      if (h.fields) { h.fields = many(h.fields); }
      if (h.tags === old) { h.tags = to; }
      if (h.status === old) { h.status = to; }
    }
    if (v.cards) {
      v.cards = v.cards.filter(function (c) { return to || c.field !== old; });
      v.cards.forEach(function (c) { c.field = one(c.field); });
    }
    if (v.related) {
      v.related = v.related.filter(function (r) { return to || r.form !== s.key || r.via !== old; });
      v.related.forEach(function (r) {
        if (r.form !== s.key) { return; }
        r.via = one(r.via);
        if (r.columns) { r.columns = many(r.columns); if (!r.columns.length) { delete r.columns; } }
        if (r.sort && r.sort.replace(/^-/, "") === old) {
          if (to) { r.sort = (r.sort.charAt(0) === "-" ? "-" : "") + to; } else { delete r.sort; }
        }
      });
    }
    if (v.actions) {
      v.actions = v.actions.filter(function (a) {
        return to || !((a.type === "upload" && a.field === old) ||
                       (a.type === "create" && a.form === s.key && a.via === old));
      });
      v.actions.forEach(function (a) {
        if (a.type === "upload") { a.field = one(a.field); }
        if (a.type === "create" && a.form === s.key) { a.via = one(a.via); }
      });
    }
    tidy(s);
  }

  /* -- the panel ------------------------------------------------------------------- */

  function panel(c) {
    var T = c.T, data = c.data, box = null, problemBox = null;

    function spec() { return c.spec(); }
    function view() { return spec().view || {}; }
    function edit(mutate, coalesce) {
      c.change(function (s) { s.view = s.view || {}; mutate(s.view, s); tidy(s); }, coalesce);
    }
    function fieldsOf(types) {
      return spec().fields.filter(function (f) { return !types || types.indexOf(f.type) >= 0; });
    }
    function named(list) { return list.map(function (f) { return { key: f.key, label: c.label(f) }; }); }
    function formOf(key) { return data.forms.filter(function (f) { return f.key === key; })[0]; }

    /* every (form, relation field) of the app's published forms that targets this form */
    function candidates() {
      var out = [];
      data.forms.forEach(function (f) {
        f.fields.forEach(function (x) {
          if (x.type === "relation" && x.target === spec().key) {
            out.push({ form: f.key, via: x.key, name: f.name, viaLabel: x.label, fields: f.fields });
          }
        });
      });
      return out;
    }

    function fieldset(id, title, children) {
      return el("fieldset", { "class": "d-fieldset d-view-part", id: id },
                [el("legend", { text: title })].concat(children));
    }
    function select(id, choices, value, empty, onChange) {
      var s = el("select", { id: id }, (empty === null ? [] : [el("option", { value: "", text: empty || "—" })])
        .concat(choices.map(function (x) {
          return el("option", { value: x.key, text: x.label, selected: x.key === value });
        })));
      s.addEventListener("change", function () { onChange(s.value); });
      return s;
    }

    /* An ordered pick of keys: drag ⠿ or ↑/↓ to order, ✕ to remove, a select to add. */
    function picker(id, title, keys, choices, set, extra) {
      var names = {};
      choices.forEach(function (x) { names[x.key] = x.label; });
      var list = el("ol", { "class": "d-options d-picked", id: id + "-list", "aria-label": title });
      keys.forEach(function (k, i) {
        var name = names[k] || k;
        list.appendChild(el("li", { "data-key": k }, [
          el("span", { "class": "d-handle", "aria-hidden": "true", text: "⠿" }),
          el("span", { "class": "d-picked-name", text: name }),
          extra ? extra(k, i) : el("span"),
          el("button", { type: "button", "class": "link", "aria-label": fmt(T.view_up, { name: name }),
                         disabled: i === 0, onclick: function () { move(i, -1); } }, ["↑"]),
          el("button", { type: "button", "class": "link", "aria-label": fmt(T.view_down, { name: name }),
                         disabled: i === keys.length - 1, onclick: function () { move(i, 1); } }, ["↓"]),
          el("button", { type: "button", "class": "link danger", "aria-label": fmt(T.view_remove, { name: name }),
                         onclick: function () { set(keys.filter(function (_k, n) { return n !== i; })); } }, ["✕"])
        ]));
      });
      function move(i, step) {
        var next = keys.slice(), x = next.splice(i, 1)[0];
        next.splice(i + step, 0, x);
        set(next);
      }
      if (window.Sortable) {
        window.Sortable.create(list, { handle: ".d-handle", animation: 120, onUpdate: function (e) {
          var next = keys.slice(), x = next.splice(e.oldIndex, 1)[0];
          next.splice(e.newIndex, 0, x);
          set(next);
        } });
      }
      var left = choices.filter(function (x) { return keys.indexOf(x.key) < 0; });
      var add = select(id + "-add", left, "", T.view_pick, function () {});
      add.setAttribute("aria-label", fmt(T.view_add_to, { what: title }));
      var full = keys.length >= MAX;
      add.disabled = full || !left.length;
      var button = el("button", { type: "button", id: id + "-add-button", disabled: full || !left.length,
                                  onclick: function () { if (add.value) { set(keys.concat([add.value])); } } },
                      ["+ " + T.view_add]);
      return el("div", { "class": "d-row", id: id }, [
        el("span", { "class": "d-row-title", text: title }), list,
        el("div", { "class": "d-view-add" }, [add, button]),
        full ? el("p", { "class": "small muted", text: fmt(T.view_full, { n: MAX }) }) : null
      ]);
    }

    function head() {
      var h = view().header || {};
      var shown = named(fieldsOf().filter(function (f) { return f.type !== "subtable"; }));
      return fieldset("v-head", T.view_head, [
        picker("v-head-fields", T.view_head_fields, h.fields || [], shown, function (keys) {
          edit(function (v) { v.header = v.header || {}; v.header.fields = keys; });
        }),
        c.row(T.view_status, select("v-status", named(fieldsOf(["select"])), h.status, "", function (x) {
          edit(function (v) { v.header = v.header || {}; v.header.status = x || undefined; });
        })),
        c.row(T.view_tags, select("v-tags", named(fieldsOf(["multiselect"])), h.tags, "", function (x) {
          edit(function (v) { v.header = v.header || {}; v.header.tags = x || undefined; });
        }))
      ]);
    }

    function cards() {
      var list = view().cards || [];
      var keys = list.map(function (x) { return x.field; });
      return fieldset("v-cards", T.view_cards, [
        picker("v-card-fields", T.view_cards_pick, keys, named(fieldsOf(FIGURES)), function (next) {
          edit(function (v) {
            var old = {};
            (v.cards || []).forEach(function (x) { old[x.field] = x; });
            v.cards = next.map(function (k) { return old[k] || { field: k }; });
          });
        }, function (k, i) {
          return c.input("text", list[i].label || "", function (text) {
            edit(function (v) { if (text) { v.cards[i].label = text; } else { delete v.cards[i].label; } }, "v-card-" + k);
          }, { id: "v-card-label-" + k, "class": "d-picked-label", maxlength: 40, placeholder: T.view_card_label,
               "aria-label": fmt(T.view_card_label_of, { name: c.label(c.field(k) || { key: k }) }) });
        }),
        el("p", { "class": "small muted", text: T.view_cards_help })
      ]);
    }

    function relIndex(form, via) {
      var list = view().related || [];
      for (var i = 0; i < list.length; i++) { if (list[i].form === form && list[i].via === via) { return i; } }
      return -1;
    }

    function relatedOne(cand) {
      var i = relIndex(cand.form, cand.via), r = i >= 0 ? view().related[i] : null;
      var id = "v-rel-" + cand.form + "-" + cand.via;
      var on = c.check_(fmt(T.view_related_item, { form: cand.name, via: cand.viaLabel }), !!r, function (yes) {
        edit(function (v) {
          v.related = (v.related || []).filter(function (x) { return !(x.form === cand.form && x.via === cand.via); });
          if (yes) { v.related.push({ form: cand.form, via: cand.via, label: cand.name, limit: 5, "new": true }); }
        });
      });
      on.querySelector("input").id = id;
      on.setAttribute("for", id);
      on.querySelector("input").disabled = !r && (view().related || []).length >= MAX_RELATED;
      var wrap = el("div", { "class": "d-view-item", "data-related": cand.form + "." + cand.via }, [on]);
      if (!r) { return wrap; }
      function set(mutate, coalesce) {
        edit(function (v) { var x = v.related[relIndex(cand.form, cand.via)]; if (x) { mutate(x); } }, coalesce);
      }
      var fields = cand.fields.filter(function (x) { return x.type !== "subtable"; })
        .map(function (x) { return { key: x.key, label: x.label }; });
      var sort = r.sort || "-created_at", desc = sort.charAt(0) === "-", by = sort.replace(/^-/, "");
      var sortBy = select(id + "-sort", [{ key: "created_at", label: T.view_created },
                                         { key: "updated_at", label: T.view_updated }].concat(fields), by, null,
                          function (x) { set(function (o) { o.sort = (dir.value === "desc" ? "-" : "") + x; }); });
      var dir = select(id + "-dir", [{ key: "desc", label: T.view_desc }, { key: "asc", label: T.view_asc }],
                       desc ? "desc" : "asc", null,
                       function (x) { set(function (o) { o.sort = (x === "desc" ? "-" : "") + sortBy.value; }); });
      dir.setAttribute("aria-label", T.view_direction);
      var limit = c.input("number", r.limit || 5, function (x) {
        var n = Math.round(Number(x));
        if (n >= 1 && n <= 50) { set(function (o) { o.limit = n; }, id + "-limit"); }
      }, { id: id + "-limit", min: 1, max: 50, step: 1, "class": "d-view-limit" });
      var newOn = c.check_(T.view_new, r["new"] !== false, function (yes) { set(function (o) { o["new"] = yes; }); });
      wrap.appendChild(el("div", { "class": "d-view-detail" }, [
        c.row(T.view_related_label, c.input("text", r.label || "", function (x) {
          set(function (o) { if (x) { o.label = x; } else { delete o.label; } }, id + "-label");
        }, { id: id + "-label", maxlength: 40, placeholder: cand.name })),
        picker(id + "-cols", T.view_columns, r.columns || [], fields, function (keys) {
          set(function (o) { if (keys.length) { o.columns = keys; } else { delete o.columns; } });
        }),
        el("div", { "class": "d-row" }, [el("label", { "for": sortBy.id, text: T.view_sort }),
                                          el("div", { "class": "d-view-sort" }, [sortBy, dir])]),
        c.row(T.view_limit, limit),
        el("div", { "class": "d-view-check" }, [newOn])
      ]));
      return wrap;
    }

    function related() {
      var cands = candidates(), known = {};
      cands.forEach(function (x) { known[x.form + "." + x.via] = true; });
      var parts = cands.map(relatedOne);
      if (!cands.length) { parts.push(el("p", { "class": "small muted", text: T.view_related_none })); }
      /* a list of a form not published (yet) or no longer pointing here: kept, removable */
      (view().related || []).forEach(function (r) {
        if (known[r.form + "." + r.via]) { return; }
        parts.push(el("div", { "class": "d-view-item" }, [
          el("span", { "class": "small", text: fmt(T.view_related_missing, { form: r.form, via: r.via }) }), " ",
          el("button", { type: "button", "class": "link danger", onclick: function () {
            edit(function (v) {
              v.related = v.related.filter(function (x) { return !(x.form === r.form && x.via === r.via); });
            });
          } }, [T.view_remove_item])]));
      });
      return fieldset("v-related", T.view_related, parts);
    }

    function actionIndex(match) {
      var list = view().actions || [];
      for (var i = 0; i < list.length; i++) { if (match(list[i])) { return i; } }
      return -1;
    }

    /* one quick action: a check box that adds or drops it, then its label and `more` */
    function actionOne(id, text, match, make, more) {
      var i = actionIndex(match), a = i >= 0 ? view().actions[i] : null;
      var on = c.check_(text, !!a, function (yes) {
        edit(function (v) {
          v.actions = (v.actions || []).filter(function (x) { return !match(x); });
          if (yes) { v.actions.push(make()); }
        });
      });
      on.querySelector("input").id = id;
      on.setAttribute("for", id);
      on.querySelector("input").disabled = !a && (view().actions || []).length >= MAX;
      var wrap = el("div", { "class": "d-view-item", "data-action": id }, [on]);
      if (!a) { return wrap; }
      function set(mutate, coalesce) {
        edit(function (v) { var x = v.actions[actionIndex(match)]; if (x) { mutate(x); } }, coalesce);
      }
      wrap.appendChild(el("div", { "class": "d-view-detail" }, [
        c.row(T.view_action_label, c.input("text", a.label || "", function (x) {
          set(function (o) { if (x) { o.label = x; } else { delete o.label; } }, id + "-label");
        }, { id: id + "-label", maxlength: 40, placeholder: text }))
      ].concat(more ? more(a, set) : [])));
      return wrap;
    }

    function actions() {
      var parts = [];
      candidates().forEach(function (cand) {
        var flows = data.flows.filter(function (f) { return f.form === cand.form; })
          .map(function (f) { return { key: f.key, label: f.name }; });
        var id = "v-act-create-" + cand.form + "-" + cand.via;
        parts.push(actionOne(id, fmt(T.view_create, { form: cand.name, via: cand.viaLabel }),
          function (x) { return x.type === "create" && x.form === cand.form && x.via === cand.via; },
          function () { return { type: "create", form: cand.form, via: cand.via }; },
          flows.length ? function (a, set) {
            return [c.row(T.view_flow, select(id + "-flow", flows, a.start_flow, T.view_no_flow, function (x) {
              set(function (o) { if (x) { o.start_flow = x; } else { delete o.start_flow; } });
            }))];
          } : null));
      });
      fieldsOf(["attachment"]).forEach(function (f) {
        parts.push(actionOne("v-act-upload-" + f.key, fmt(T.view_upload, { field: c.label(f) }),
          function (x) { return x.type === "upload" && x.field === f.key; },
          function () { return { type: "upload", field: f.key }; }));
      });
      var rules = data.manual_rules || [];
      parts.push(actionOne("v-act-message", T.view_message, function (x) { return x.type === "message"; },
        function () { return { type: "message" }; },
        function (a, set) {
          if (!rules.length) { return [el("p", { "class": "small muted", text: T.view_no_rules })]; }
          var chosen = a.rules || [];
          return [el("div", { "class": "d-view-check" }, [el("span", { "class": "d-row-title", text: T.view_message_rules })]
            .concat(rules.map(function (r) {
              return c.check_(r.name, chosen.indexOf(r.key) >= 0, function (yes) {
                set(function (o) {
                  var next = (o.rules || []).filter(function (k) { return k !== r.key; });
                  if (yes) { next.push(r.key); }
                  if (next.length) { o.rules = next; } else { delete o.rules; }
                });
              });
            })))];
        }));
      return fieldset("v-actions", T.view_actions, parts);
    }

    function problemsOf(list) {
      return (list || []).filter(function (p) { return /^\/?view/.test(p.text || p.message_zh || ""); });
    }

    function showProblems(list) {
      var mine = problemsOf(list);
      var tab = document.getElementById("d-tab-view");
      if (tab) { tab.classList.toggle("bad", mine.length > 0); }
      if (!problemBox) { return; }
      problemBox.textContent = "";
      problemBox.hidden = !mine.length;
      if (mine.length) {
        problemBox.appendChild(el("p", { text: T.view_problems }));
        problemBox.appendChild(el("ul", {}, mine.map(function (p) {
          return el("li", { text: data.lang === "en" ? p.message_en : p.message_zh });
        })));
      }
    }

    function draw(into, problems) {
      box = into;
      var focus = document.activeElement && box.contains(document.activeElement) ? document.activeElement.id : null;
      box.textContent = "";
      problemBox = el("div", { "class": "msg error", role: "alert", id: "v-problems", hidden: true });
      box.appendChild(el("p", { "class": "small muted", text: T.view_intro }));
      box.appendChild(problemBox);
      box.appendChild(head());
      box.appendChild(cards());
      box.appendChild(related());
      box.appendChild(actions());
      showProblems(problems);
      if (focus && document.getElementById(focus)) { document.getElementById(focus).focus(); }
    }

    return { draw: draw, showProblems: showProblems, formOf: formOf };
  }

  window.QiaoView = { panel: panel, tidy: tidy,
                      rename: function (s, old, key) { remap(s, old, key); },
                      drop: function (s, key) { remap(s, key, null); } };
})();
