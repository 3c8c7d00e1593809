// The top bar's global search: "/" focuses the box (not while typing elsewhere), htmx
// fills the results below it as one types; ↑/↓ move through them, Enter opens the one
// chosen (or the full results page), Esc closes. On a phone the box opens from an icon.
(function () {
  "use strict";
  var form = document.getElementById("topsearch");
  var box = document.getElementById("topsearch-q");
  var list = document.getElementById("topsearch-results");
  var toggle = document.getElementById("search-toggle");
  if (!form || !box || !list) return;

  function options() { return Array.prototype.slice.call(list.querySelectorAll("[role=option]")); }

  function active() { return list.querySelector("[role=option].active"); }

  function choose(option) {
    options().forEach(function (o) {
      o.classList.toggle("active", o === option);
      o.setAttribute("aria-selected", o === option ? "true" : "false");
    });
    if (option) {
      box.setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({ block: "nearest" });
    } else {
      box.removeAttribute("aria-activedescendant");
    }
  }

  function show(open) {
    var has = open && box.value.trim() !== "" && list.children.length > 0;
    list.hidden = !has;
    box.setAttribute("aria-expanded", has ? "true" : "false");
    if (!has) choose(null);
  }

  function openForm(open) {
    form.classList.toggle("open", open);
    if (toggle) toggle.setAttribute("aria-expanded", open ? "true" : "false");
  }

  function close() {
    show(false);
    if (toggle && getComputedStyle(toggle).display !== "none") {
      openForm(false);
      toggle.focus();
    }
  }

  function typing(el) {
    if (!el || el === document.body) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  document.addEventListener("keydown", function (e) {
    if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    e.preventDefault();
    openForm(true);
    box.focus();
    box.select();
  });

  box.addEventListener("keydown", function (e) {
    var all = options();
    var i = all.indexOf(active());
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      if (!all.length) return;
      e.preventDefault();
      show(true);
      var next = e.key === "ArrowDown" ? (i + 1) % all.length
        : (i <= 0 ? all.length - 1 : i - 1);
      choose(all[next]);
    } else if (e.key === "Enter" && i >= 0 && !list.hidden) {
      e.preventDefault();
      window.location.assign(all[i].getAttribute("href"));
    } else if (e.key === "Escape") {
      e.preventDefault();
      close();
    }
  });

  box.addEventListener("input", function () { if (!box.value.trim()) show(false); });
  box.addEventListener("focus", function () { show(true); });
  document.body.addEventListener("htmx:afterSwap", function (e) {
    if (e.target === list) { choose(null); show(true); }
  });
  document.addEventListener("click", function (e) {
    if (!form.contains(e.target) && e.target !== toggle && !(toggle && toggle.contains(e.target))) {
      show(false);
    }
  });
  if (toggle) {
    toggle.addEventListener("click", function () {
      var open = !form.classList.contains("open");
      openForm(open);
      if (open) box.focus(); else show(false);
    });
  }
})();
