/* The menu editor (templates/designer/menus.html, frontend/designer/menu_editor.py).
 *
 * The page holds one working copy of the app's menus (the same JSON the API takes) and
 * redraws the groups from it after every change. Nothing here validates: "save" is the
 * API's PUT, and the problems it returns (each named by its place, "menus[1].items[0].key:
 * …") are shown beside the group or item they belong to. The preview asks the server what
 * a role would see (its rights and the items' roles both count).
 *
 * Mouse and touch: groups move by their ⠿ handle, items by their row, also into another
 * group (SortableJS). Keyboard: Alt+↑/↓ on an item moves it (past a group's end into the
 * next group), on a group's name moves the group.
 */
(function () {
  "use strict";

  var data, T, menus, openItem = null, dirty = false, problems = [], previewTimer = null, previews = 0;
  var PLACE = /^menus\[(\d+)\](?:\.items\[(\d+)\])?[^:]*:\s*/;

  var K = window.QiaoKit, $ = K.$, el = K.el, fmt = K.fmt, send = K.send;

  /* -- the model ------------------------------------------------------------------- */

  function targetsOf(kind) { return data.targets[kind] || []; }
  function targetName(kind, key) {
    var found = targetsOf(kind).filter(function (t) { return t.key === key; })[0];
    return found ? found.name : null;
  }
  function kindName(kind) {
    var found = data.kinds.filter(function (k) { return k.kind === kind; })[0];
    return found ? found.name : kind;
  }
  function roleName(key) {
    var found = data.roles.filter(function (r) { return r.key === key; })[0];
    return found ? found.name : key;
  }
  function posOf(item) {
    for (var g = 0; g < menus.length; g++) {
      var i = menus[g].items.indexOf(item);
      if (i >= 0) { return [g, i]; }
    }
    return null;
  }
  function clean() {
    return menus.map(function (group) {
      return { label: group.label, items: group.items.map(function (item) {
        var out = { label: item.label, kind: item.kind };
        if (item.key !== undefined) { out.key = item.key; }
        if (item.roles && item.roles.length) { out.roles = item.roles.slice(); }
        return out;
      }) };
    });
  }
  function change(mutate) {
    mutate();
    problems = [];
    setDirty(true);
    draw();
    later();
  }
  function touched() { problems = []; setDirty(true); later(); }
  function setDirty(on) {
    dirty = on;
    $("m-status").textContent = on ? T.unsaved : "";
  }

  /* -- drawing --------------------------------------------------------------------- */

  function problemsAt(g, i) {
    return problems.filter(function (p) {
      var m = PLACE.exec(p);
      return m && +m[1] === g && (i === undefined ? m[2] === undefined : +m[2] === i);
    }).map(function (p) { return p.replace(PLACE, ""); });
  }
  function problemNote(list) {
    return list.length ? el("p", { "class": "m-problem small", text: list.join("; ") }) : null;
  }

  function draw() {
    var focused = document.activeElement && document.activeElement.id;
    var box = $("m-groups");
    box.textContent = "";
    menus.forEach(function (group, g) { box.appendChild(groupNode(group, g)); });
    drawGroupPicker();
    showProblems();
    if (focused && $(focused)) { $(focused).focus(); }
  }

  function groupNode(group, g) {
    var list = el("ul", { "class": "m-items", "data-group": g, "aria-label": group.label });
    group.items.forEach(function (item, i) { list.appendChild(itemNode(item, g, i)); });
    var bad = problemsAt(g);
    var card = el("div", { "class": "card m-group" + (bad.length ? " bad" : ""), "data-group": g }, [
      el("div", { "class": "m-group-head" }, [
        el("span", { "class": "m-handle m-group-handle", "aria-hidden": "true", text: "⠿" }),
        el("input", { type: "text", id: "m-g-" + g, "class": "m-group-label", value: group.label,
                      maxlength: 50, "aria-label": T.group_label, title: T.move_hint,
                      oninput: function (e) { group.label = e.target.value; list.setAttribute("aria-label", group.label); drawGroupPicker(); touched(); },
                      onkeydown: function (e) { groupKey(e, group); } }),
        el("button", { type: "button", "class": "link m-remove-group", "aria-label": T.remove_group,
                       title: T.remove_group, text: "✕", onclick: function () { removeGroup(group); } })
      ]),
      problemNote(bad),
      list,
      group.items.length ? null : el("p", { "class": "small muted m-empty", text: T.drop_here })
    ]);
    if (window.Sortable) {
      window.Sortable.create(list, { group: "menu-items", handle: ".m-item-row", animation: 120,
                                     delay: 200, delayOnTouchOnly: true, onEnd: itemsFromDom });
    }
    return card;
  }

  function itemNode(item, g, i) {
    var isOpen = item === openItem;
    var target = item.key === undefined ? null : (targetName(item.kind, item.key) || item.key + " " + T.missing);
    var roles = (item.roles || []).map(function (r) { return el("span", { "class": "badge", text: roleName(r) }); });
    var bad = problemsAt(g, i);
    return el("li", { "class": "m-item" + (isOpen ? " open" : "") + (bad.length ? " bad" : ""),
                      "data-group": g, "data-index": i, "data-kind": item.kind, "data-key": item.key }, [
      el("div", { "class": "m-item-row" }, [
        el("span", { "class": "m-handle", "aria-hidden": "true", text: "⠿" }),
        el("button", { type: "button", id: "m-i-" + g + "-" + i, "class": "m-item-btn",
                       "aria-expanded": isOpen ? "true" : "false", title: T.move_hint,
                       "aria-label": fmt(T.edit_item, { label: item.label }),
                       onclick: function () { openItem = isOpen ? null : item; draw(); },
                       onkeydown: function (e) { itemKey(e, item); } }, [
          el("span", { "class": "m-item-label", text: item.label }),
          el("span", { "class": "small muted", text: kindName(item.kind) + (target ? " · " + target : "") }),
          roles.length ? el("span", { "class": "m-item-roles", title: T.roles }, roles) : null
        ])
      ]),
      problemNote(bad),
      isOpen ? itemEditor(item, g, i) : null
    ]);
  }

  function itemEditor(item, g, i) {
    var id = "m-l-" + g + "-" + i;
    var checks = data.roles.map(function (role) {
      var on = (item.roles || []).indexOf(role.key) >= 0;
      return el("label", { "class": "check" }, [
        el("input", { type: "checkbox", id: "m-r-" + g + "-" + i + "-" + role.key, value: role.key,
                      checked: on, onchange: function (e) { setRole(item, role.key, e.target.checked); } }),
        role.name
      ]);
    });
    return el("div", { "class": "m-item-edit" }, [
      el("label", { "for": id, text: T.label }),
      el("input", { type: "text", id: id, value: item.label, maxlength: 50,
                    oninput: function (e) { renameItem(item, e.target.value); } }),
      el("fieldset", {}, [el("legend", { text: T.roles }),
                          el("p", { "class": "small muted", text: T.roles_hint })].concat(checks)),
      el("div", { "class": "actions" }, [
        el("button", { type: "button", "class": "danger m-remove-item", text: T.remove_item,
                       onclick: function () { change(function () { var p = posOf(item); menus[p[0]].items.splice(p[1], 1); openItem = null; }); } })
      ])
    ]);
  }

  function drawGroupPicker() {
    var pick = $("m-new-group"), was = pick.value;
    pick.textContent = "";
    menus.forEach(function (group, g) {
      pick.appendChild(el("option", { value: String(g), text: group.label || fmt(T.group_n, { n: g + 1 }) }));
    });
    if (!menus.length) { pick.appendChild(el("option", { value: "", text: T.new_group })); }
    pick.value = was !== "" && +was < menus.length ? was : String(Math.max(menus.length - 1, 0));
    if (!menus.length) { pick.value = ""; }
  }

  function showProblems() {
    var box = $("m-problems");
    box.textContent = "";
    box.hidden = !problems.length;
    if (!problems.length) { return; }
    box.appendChild(el("p", { text: T.problems }));
    box.appendChild(el("ul", {}, problems.map(function (p) {
      var m = PLACE.exec(p), where = "";
      if (m) {
        where = fmt(T.group_n, { n: +m[1] + 1 }) + (m[2] !== undefined ? " " + fmt(T.item_n, { n: +m[2] + 1 }) : "") + "：";
      }
      return el("li", { text: where + (m ? p.replace(PLACE, "") : p) });
    })));
  }

  /* -- changes --------------------------------------------------------------------- */

  function renameItem(item, label) {
    item.label = label;
    var p = posOf(item), button = $("m-i-" + p[0] + "-" + p[1]);
    if (button) {
      button.querySelector(".m-item-label").textContent = label;
      button.setAttribute("aria-label", fmt(T.edit_item, { label: label }));
    }
    touched();
  }
  function setRole(item, key, on) {
    change(function () {
      var roles = (item.roles || []).filter(function (r) { return r !== key; });
      if (on) { roles.push(key); }
      roles.sort(function (a, b) { return roleOrder(a) - roleOrder(b); });
      if (roles.length) { item.roles = roles; } else { delete item.roles; }
    });
  }
  function roleOrder(key) {
    for (var i = 0; i < data.roles.length; i++) { if (data.roles[i].key === key) { return i; } }
    return data.roles.length;
  }
  function removeGroup(group) {
    if (group.items.length && !window.confirm(fmt(T.confirm_remove_group, { label: group.label, n: group.items.length }))) { return; }
    change(function () { menus.splice(menus.indexOf(group), 1); });
  }
  function itemsFromDom(e) {
    if (e.from === e.to && e.oldIndex === e.newIndex) { return; }
    var lists = document.querySelectorAll("#m-groups .m-items");
    var next = menus.map(function () { return []; });
    lists.forEach(function (list) {
      var g = +list.getAttribute("data-group");
      next[g] = Array.prototype.map.call(list.querySelectorAll("li.m-item"), function (li) {
        return menus[+li.getAttribute("data-group")].items[+li.getAttribute("data-index")];
      });
    });
    change(function () { menus.forEach(function (group, g) { group.items = next[g]; }); });
  }
  function groupsFromDom(e) {
    if (e.oldIndex === e.newIndex) { return; }
    var order = Array.prototype.map.call(document.querySelectorAll("#m-groups > .m-group"), function (card) {
      return menus[+card.getAttribute("data-group")];
    });
    change(function () { menus = order; });
  }

  function focusItem(item) {
    var p = posOf(item);
    if (p && $("m-i-" + p[0] + "-" + p[1])) { $("m-i-" + p[0] + "-" + p[1]).focus(); }
    if (p) { $("m-status").textContent = fmt(T.moved, { group: menus[p[0]].label, n: p[1] + 1 }); }
  }
  function itemKey(e, item) {
    if (!e.altKey || (e.key !== "ArrowUp" && e.key !== "ArrowDown")) { return; }
    e.preventDefault();
    var p = posOf(item), g = p[0], i = p[1], up = e.key === "ArrowUp";
    if (up ? g === 0 && i === 0 : g === menus.length - 1 && i === menus[g].items.length - 1) { return; }
    change(function () {
      menus[g].items.splice(i, 1);
      if (up && i > 0) { menus[g].items.splice(i - 1, 0, item); }
      else if (up) { menus[g - 1].items.push(item); }
      else if (i < menus[g].items.length) { menus[g].items.splice(i + 1, 0, item); }
      else { menus[g + 1].items.unshift(item); }
    });
    focusItem(item);
  }
  function groupKey(e, group) {
    if (!e.altKey || (e.key !== "ArrowUp" && e.key !== "ArrowDown")) { return; }
    e.preventDefault();
    var g = menus.indexOf(group), to = g + (e.key === "ArrowUp" ? -1 : 1);
    if (to < 0 || to >= menus.length) { return; }
    change(function () { menus.splice(g, 1); menus.splice(to, 0, group); });
    $("m-g-" + to).focus();
  }

  /* -- adding ---------------------------------------------------------------------- */

  function fillKeys() {
    var kind = $("m-new-kind").value, pick = $("m-new-key");
    var keyed = kind !== "tasks";
    pick.textContent = "";
    targetsOf(kind).forEach(function (t) {
      pick.appendChild(el("option", { value: t.key, text: t.name + " (" + t.key + ")" }));
    });
    $("m-new-key-row").hidden = !keyed;
    $("m-new-add").disabled = keyed && !targetsOf(kind).length;
    prefill();
  }
  function prefill() {
    var kind = $("m-new-kind").value;
    $("m-new-label").value = kind === "tasks" ? kindName("tasks") : (targetName(kind, $("m-new-key").value) || "");
  }
  function addItem() {
    var kind = $("m-new-kind").value;
    var item = { label: $("m-new-label").value.trim() || kindName(kind), kind: kind };
    if (kind !== "tasks") { item.key = $("m-new-key").value; }
    change(function () {
      if (!menus.length) { menus.push({ label: T.new_group, items: [] }); }
      var g = $("m-new-group").value === "" ? menus.length - 1 : +$("m-new-group").value;
      menus[Math.min(g, menus.length - 1)].items.push(item);
      openItem = item;
    });
    focusItem(item);
  }
  function addGroup() {
    change(function () { menus.push({ label: T.new_group, items: [] }); });
    var input = $("m-g-" + (menus.length - 1));
    input.focus();
    input.select();
  }

  /* -- the API: save; the preview ---------------------------------------------------- */

  function save() {
    $("m-status").textContent = T.saving;
    send("PUT", "/api/v1/apps/" + data.app + "/menus", clean()).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) {
          problems = (body && body.problems) || [(body && body.detail) || T.failed];
          draw();
          $("m-status").textContent = T.not_saved;
          return;
        }
        problems = [];
        setDirty(false);
        draw();
        $("m-status").textContent = T.saved;
      });
    }).catch(function () { $("m-status").textContent = T.failed; });
  }

  function later() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(preview, 400);
  }
  function preview() {
    var asked = ++previews;  // only the latest answer is shown
    clearTimeout(previewTimer);
    send("POST", "/apps/" + data.app + "/menus/preview", { menus: clean(), role: $("m-role").value })
      .then(function (r) { return r.text(); })
      .then(function (html) { if (asked === previews) { $("m-preview").innerHTML = html; } })
      .catch(function () { $("m-preview").textContent = T.failed; });
  }

  function start() {
    data = JSON.parse($("menus-data").textContent);
    T = JSON.parse($("menus-text").textContent);
    menus = data.menus;
    var others = data.roles.filter(function (r) { return r.key !== "admin"; });
    if (others.length) { $("m-role").value = others[0].key; }
    if (window.Sortable) {
      window.Sortable.create($("m-groups"), { handle: ".m-group-handle", draggable: ".m-group",
                                              animation: 120, onEnd: groupsFromDom });
    }
    $("m-new-kind").addEventListener("change", fillKeys);
    $("m-new-key").addEventListener("change", prefill);
    $("m-new-add").addEventListener("click", addItem);
    $("m-add-group").addEventListener("click", addGroup);
    $("m-save").addEventListener("click", save);
    $("m-role").addEventListener("change", preview);
    window.addEventListener("beforeunload", function (e) {
      if (dirty) { e.preventDefault(); e.returnValue = T.leave; }
    });
    fillKeys();
    draw();
    preview();
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); }
  else { start(); }
})();
