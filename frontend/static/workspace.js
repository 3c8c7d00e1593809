/* The workspace pages' behaviour in the browser (list, record, task pages). No rule of
 * a form lives here: visibility, requiredness, formulas and validation come from the
 * server's check endpoint (htmx); this file only drives widgets:
 * - searchable selects and record pickers (vendored Tom Select; remote options from
 *   /apps/{app}/forms/{form}/options/{field});
 * - subtable rows: add, remove, move (buttons, and drag with vendored SortableJS);
 * - attachments: upload on choose or drop, with progress, to the attachments API (a
 *   PDF or an image uploaded is marked for the preview dialog, static/preview.js);
 * - the address cascader (province → city → district from /address/options);
 * - the filter builder's rows and the column picker;
 * - a warning before leaving a form with unsaved changes.
 */
(function () {
  "use strict";

  var rowSeq = 0;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function changed(element) {
    element.dispatchEvent(new Event("change", { bubbles: true }));
  }

  /* -- searchable selects -------------------------------------------------------- */

  function enhanceSelect(select) {
    if (typeof window.TomSelect !== "function" || select.tomselect || select.disabled) {
      return;
    }
    var remote = select.getAttribute("data-remote");
    var options = {
      maxOptions: 200,
      allowEmptyOption: true,
      placeholder: select.getAttribute("data-placeholder") || undefined,
      plugins: select.multiple ? ["remove_button"] : []
    };
    if (remote) {
      options.valueField = "value";
      options.labelField = "text";
      options.searchField = ["text"];
      options.preload = "focus";
      options.load = function (query, callback) {
        fetch(remote + "?q=" + encodeURIComponent(query), { credentials: "same-origin" })
          .then(function (response) { return response.json(); })
          .then(function (body) { callback(body.items || []); })
          .catch(function () { callback(); });
      };
    }
    new window.TomSelect(select, options);
  }

  function enhance(root) {
    root.querySelectorAll("select[data-search], select[data-remote]").forEach(enhanceSelect);
    root.querySelectorAll("[data-subtable] tbody").forEach(function (body) {
      if (typeof window.Sortable === "function" && !body.sortable) {
        body.sortable = window.Sortable.create(body, {
          handle: ".row-tools", animation: 120,
          onEnd: function () { changed(body); }
        });
      }
    });
    root.querySelectorAll(".flow-strip").forEach(showCurrentStep);
  }

  /* -- a flow's strip of steps: the current step in view (a phone scrolls it sideways) -- */

  function showCurrentStep(strip) {
    var current = strip.querySelector("[aria-current=step]");
    if (current && strip.scrollWidth > strip.clientWidth) {
      strip.scrollLeft += current.getBoundingClientRect().left -
        strip.getBoundingClientRect().left - 16;
    }
  }

  /* -- subtables ------------------------------------------------------------------- */

  function addRow(button) {
    var holder = button.closest("[data-subtable]");
    var template = holder.querySelector("template");
    var id = "n" + Date.now().toString(36) + (rowSeq++);
    var html = template.innerHTML.split("__ROW__").join(id);
    var body = holder.querySelector("tbody");
    body.insertAdjacentHTML("beforeend", html);
    var row = body.lastElementChild;
    enhance(row);
    var first = row.querySelector("input, select, textarea");
    if (first) { first.focus(); }
    changed(body);
  }

  function moveRow(button) {
    var row = button.closest("tr");
    var step = parseInt(button.getAttribute("data-move"), 10);
    var other = step < 0 ? row.previousElementSibling : row.nextElementSibling;
    if (!other) { return; }
    row.parentNode.insertBefore(row, step < 0 ? other : other.nextSibling);
    button.focus();
    changed(row.parentNode);
  }

  function removeRow(button) {
    var row = button.closest("tr");
    var body = row.parentNode;
    row.remove();
    changed(body);
  }

  /* -- attachments ----------------------------------------------------------------- */

  /* As the server's values.preview_kind: what the preview dialog can show. */
  function previewKind(type) {
    if (type === "application/pdf") { return "pdf"; }
    return /^image\//.test(type || "") ? "image" : "";
  }

  function upload(holder, file) {
    var list = holder.querySelector(".files");
    var item = document.createElement("li");
    item.setAttribute("data-file", "");
    var name = document.createElement("span");
    name.textContent = file.name;
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    item.appendChild(name);
    item.appendChild(bar);
    list.appendChild(item);
    var body = new FormData();
    body.append("field", holder.getAttribute("data-attachments"));
    body.append("file", file);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", holder.getAttribute("data-upload"));
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) { bar.value = Math.round(100 * event.loaded / event.total); }
    });
    xhr.addEventListener("load", function () {
      bar.remove();
      var answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch (ignored) { /* not JSON */ }
      if (xhr.status >= 300 || !answer.id) {
        item.classList.add("error");
        name.textContent = file.name + " — " + (answer.detail || xhr.status);
        return;
      }
      var hidden = document.createElement("input");
      hidden.type = "hidden";
      hidden.name = holder.getAttribute("data-name");
      hidden.value = answer.id;
      item.appendChild(hidden);
      var link = document.createElement("a");
      link.href = holder.getAttribute("data-upload") + "/" + answer.id;
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = file.name;
      var kind = previewKind(answer.content_type || file.type);
      if (kind) { link.setAttribute("data-preview", kind); }  // preview.js opens it
      name.replaceWith(link);
      if (kind === "image") {
        var thumb = document.createElement("img");
        thumb.className = "thumb";
        thumb.alt = "";
        thumb.src = link.href;
        item.insertBefore(thumb, link);
      }
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "link danger";
      remove.setAttribute("data-remove-file", "");
      remove.setAttribute("aria-label", "✕ " + file.name);
      remove.textContent = "✕";
      item.appendChild(remove);
      changed(holder);
    });
    xhr.addEventListener("error", function () {
      item.classList.add("error");
      bar.remove();
    });
    xhr.send(body);
  }

  function uploadAll(holder, files) {
    Array.prototype.forEach.call(files, function (file) { upload(holder, file); });
  }

  /* -- address cascader ------------------------------------------------------------ */

  function fillOptions(select, names) {
    var first = select.options[0];
    select.innerHTML = "";
    select.appendChild(first);
    names.forEach(function (name) {
      var option = document.createElement("option");
      option.textContent = name;
      select.appendChild(option);
    });
  }

  function cascade(select) {
    var holder = select.closest("[data-address]");
    var level = select.getAttribute("data-address-level");
    var province = holder.querySelector('[data-address-level="province"]');
    var city = holder.querySelector('[data-address-level="city"]');
    var district = holder.querySelector('[data-address-level="district"]');
    if (level === "district") { return; }
    var url = "/address/options?province=" + encodeURIComponent(province.value);
    if (level === "city") { url += "&city=" + encodeURIComponent(city.value); }
    if (level === "province") { fillOptions(city, []); }
    fillOptions(district, []);
    fetch(url, { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (body) { fillOptions(level === "province" ? city : district, body.items || []); });
  }

  /* -- the filter builder and the column picker -------------------------------------- */

  var NO_VALUE = ["is_empty", "is_not_empty", "is_true", "is_false", "today", "this_week",
    "this_month", "last_30_days"];

  function showOps(condition) {
    var key = condition.querySelector("[data-condition-field]").value;
    condition.querySelectorAll("[data-ops-for]").forEach(function (span) {
      var on = span.getAttribute("data-ops-for") === key;
      span.hidden = !on;
      span.querySelectorAll("select, input").forEach(function (control) {
        control.disabled = !on;
      });
      if (on) {
        enhance(span);
        showValues(span);
      }
    });
  }

  function showValues(span) {
    var op = span.querySelector("[data-op]").value;
    var values = span.querySelector("[data-values]");
    values.hidden = NO_VALUE.indexOf(op) >= 0;
    values.querySelectorAll("input, select").forEach(function (control) {
      control.disabled = values.hidden;
    });
    values.querySelectorAll("[data-range-end]").forEach(function (end) {
      end.hidden = op !== "between";
      end.disabled = op !== "between";
    });
  }

  function addCondition(button) {
    var list = document.getElementById("conditions");
    var index = 0;
    list.querySelectorAll("[data-condition-field]").forEach(function (select) {
      var n = parseInt(select.name.slice(1), 10);
      if (n >= index) { index = n + 1; }
    });
    fetch(button.getAttribute("data-add-condition") + "?i=" + index,
          { credentials: "same-origin" })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        list.insertAdjacentHTML("beforeend", html);
        showOps(list.lastElementChild);
        list.lastElementChild.querySelector("[data-condition-field]").focus();
      });
  }

  /* -- the relation picker's "new" dialog ------------------------------------------- */

  function openDialog(button) {
    var dialog = document.getElementById(button.getAttribute("data-open-dialog"));
    if (dialog && !dialog.open) { dialog.showModal(); }
  }

  function created(marker) {
    var select = document.getElementById(marker.getAttribute("data-target"));
    var value = marker.getAttribute("data-value");
    var text = marker.getAttribute("data-text");
    if (select && select.tomselect) {
      select.tomselect.addOption({ value: value, text: text });
      if (select.multiple) { select.tomselect.addItem(value); }
      else { select.tomselect.setValue(value); }
    } else if (select) {
      var option = document.createElement("option");
      option.value = value;
      option.textContent = text;
      option.selected = true;
      select.appendChild(option);
      changed(select);
    }
    var dialog = marker.closest("dialog");
    if (dialog) { dialog.close(); }
    if (select) { select.focus(); }
  }

  /* -- bulk actions on a list --------------------------------------------------------- */

  function countPicked() {
    var label = document.querySelector("[data-selected-count]");
    if (!label) { return; }
    var n = document.querySelectorAll("input[data-pick]:checked").length;
    label.textContent = label.textContent.replace(/\d+/, String(n));
    label.closest("form").hidden = n === 0;
  }

  function showBulkFields(select) {
    document.querySelectorAll("[data-bulk-for]").forEach(function (span) {
      span.hidden = span.getAttribute("data-bulk-for") !== select.value;
    });
  }

  /* -- unsaved changes ----------------------------------------------------------------- */

  var dirty = null;

  window.addEventListener("beforeunload", function (event) {
    if (dirty) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  /* -- wiring ---------------------------------------------------------------------------- */

  document.addEventListener("click", function (event) {
    var target = event.target.closest(
      "[data-add-row], [data-move], [data-remove-row], [data-remove-file], " +
      "[data-add-condition], [data-remove-condition], [data-open-dialog], [data-close-dialog]");
    if (!target) { return; }
    if (target.hasAttribute("data-add-row")) { addRow(target); }
    else if (target.hasAttribute("data-move")) { moveRow(target); }
    else if (target.hasAttribute("data-remove-row")) { removeRow(target); }
    else if (target.hasAttribute("data-remove-file")) {
      var holder = target.closest("[data-attachments]");
      target.closest("[data-file]").remove();
      changed(holder);
    }
    else if (target.hasAttribute("data-add-condition")) { addCondition(target); }
    else if (target.hasAttribute("data-open-dialog")) { openDialog(target); }
    else if (target.hasAttribute("data-close-dialog")) { target.closest("dialog").close(); }
    else if (target.hasAttribute("data-remove-condition")) {
      target.closest("[data-condition]").remove();
    }
  });

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("[data-attachments] input[type=file]")) {
      uploadAll(target.closest("[data-attachments]"), target.files);
      target.value = "";
    } else if (target.matches && target.matches("[data-address-level]")) {
      cascade(target);
    } else if (target.matches && target.matches("[data-condition-field]")) {
      showOps(target.closest("[data-condition]"));
    } else if (target.matches && target.matches("[data-op]")) {
      showValues(target.closest("[data-ops-for]"));
    } else if (target.matches && target.matches("[data-pick-all]")) {
      document.querySelectorAll("input[data-pick]").forEach(function (box) {
        box.checked = target.checked;
      });
      countPicked();
    } else if (target.matches && target.matches("[data-pick]")) {
      countPicked();
    } else if (target.matches && target.matches("[data-bulk-action]")) {
      showBulkFields(target);
    } else if (target.matches && target.matches("input[data-submit-on-change]")) {
      if (target.files && target.files.length) { target.form.requestSubmit(); }
    }
  });

  document.addEventListener("input", function (event) {
    var form = event.target.closest && event.target.closest("form[data-dirty-guard]");
    if (form) { dirty = form; }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm-delete");
    var action = form.querySelector("[data-bulk-action]");
    if (question && action && action.value === "delete" && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    if (form === dirty) { dirty = null; }
    var columns = form.querySelector("[data-columns]");
    if (columns) {
      var picked = [];
      form.querySelectorAll('input[name="col"]').forEach(function (box) {
        if (box.checked) { picked.push(box.value); }
        box.disabled = true;
      });
      columns.value = picked.join(",");
    }
  });

  ["dragover", "drop"].forEach(function (kind) {
    document.addEventListener(kind, function (event) {
      var holder = event.target.closest && event.target.closest("[data-attachments]");
      if (!holder) { return; }
      event.preventDefault();
      if (kind === "drop" && event.dataTransfer) { uploadAll(holder, event.dataTransfer.files); }
    });
  });

  function start() {
    enhance(document);
    document.querySelectorAll("[data-bulk-action]").forEach(showBulkFields);
    countPicked();
    document.querySelectorAll("[data-condition]").forEach(function (condition) {
      if (!condition.closest("template")) { showOps(condition); }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
  document.addEventListener("htmx:afterSettle", function (event) {
    enhance(event.target);
    var marker = document.querySelector("dialog [data-created]");
    if (marker) {
      created(marker);
      marker.remove();
    }
  });
}());
