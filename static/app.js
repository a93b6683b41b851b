// ClinicDesk page behaviour. Everything works without this file; it adds the idle-timeout
// warning, shows htmx errors as notices, and submits the clinic switcher on change.
(function () {
  "use strict";

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"]; }
    catch (e) { return ""; }
  }

  function notice(text, kind) {
    var box = document.getElementById("notices");
    if (!box) return;
    var p = document.createElement("p");
    p.className = "notice notice-" + (kind || "error");
    p.setAttribute("role", "alert");
    p.textContent = text;
    box.appendChild(p);
    setTimeout(function () { p.remove(); }, 12000);
  }

  // --- Session idle timeout -------------------------------------------------------------
  var body = document.body;
  var statusUrl = body.dataset.sessionStatus;
  if (statusUrl) {
    var idle = parseInt(body.dataset.sessionIdle, 10);
    var warnAt = parseInt(body.dataset.sessionWarning, 10);
    var signIn = body.dataset.signIn;
    var dialog = document.getElementById("session-warning");
    var countdown = dialog && dialog.querySelector("[data-countdown]");
    var deadline = Date.now() + idle * 1000;
    var leaving = false;

    var leave = function () {
      if (leaving) return;
      leaving = true;
      // The server has ended the session (it reports 0 s only once expired). Clear the screen of
      // patient data at once, then go to the sign-in page.
      document.querySelectorAll("body > :not(script)").forEach(function (el) { el.remove(); });
      window.location.replace(signIn);
    };

    var sync = function () {
      return fetch(statusUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          if (!data.signed_in || data.seconds_left <= 0) { leave(); return; }
          deadline = Date.now() + data.seconds_left * 1000;
        })
        .catch(function () { /* offline: keep the local deadline */ });
    };

    var tick = function () {
      var left = Math.round((deadline - Date.now()) / 1000);
      if (left <= 0) { sync().then(function () { if (deadline <= Date.now()) leave(); }); return; }
      if (left <= warnAt && dialog) {
        if (!dialog.open) { sync(); dialog.showModal(); }
        if (countdown) {
          var m = Math.floor(left / 60), s = left % 60;
          countdown.textContent = (m ? m + " min " : "") + s + " s";
        }
      } else if (dialog && dialog.open) {
        dialog.close();
      }
    };
    setInterval(tick, 1000);
    setInterval(sync, 60000);

    // After any htmx request ask the server how long is left: only it knows what counted as activity.
    document.body.addEventListener("htmx:afterRequest", function () { sync(); });

    if (dialog) {
      dialog.querySelector("form").addEventListener("submit", function (evt) {
        evt.preventDefault();
        fetch(body.dataset.sessionExtend, {
          method: "POST", credentials: "same-origin",
          headers: { "X-CSRFToken": csrfToken(), "Accept": "application/json" }
        }).then(function (r) {
          if (!r.ok || r.redirected) { leave(); return; }
          deadline = Date.now() + idle * 1000;
          dialog.close();
        }).catch(function () { notice("Could not reach ClinicDesk. Check the network."); });
      });
    }
  }

  // --- htmx errors become notices, never swapped content -----------------------------------
  document.body.addEventListener("htmx:responseError", function (evt) {
    var text = (evt.detail.xhr.responseText || "").trim();
    if (!text || text.charAt(0) === "<") text = "Something went wrong (" + evt.detail.xhr.status + "). Nothing was changed; please try again.";
    notice(text.slice(0, 300));
  });
  document.body.addEventListener("htmx:sendError", function () {
    notice("Could not reach ClinicDesk. Check the network; nothing was saved.");
  });

  // --- Patient search: "/" focuses it, arrows move through results, Enter opens one ----------
  var searchBox = function () {
    return document.querySelector("main [data-search-input]") || document.getElementById("global-search");
  };
  var resultsFor = function (input) {
    var target = input.getAttribute("hx-target");
    var box = target ? document.querySelector(target) : null;
    return box ? Array.prototype.slice.call(box.querySelectorAll("a.result")) : [];
  };
  document.addEventListener("keydown", function (evt) {
    var t = evt.target;
    var typing = t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
    if (evt.key === "/" && !typing && !evt.ctrlKey && !evt.metaKey && !evt.altKey) {
      var box = searchBox();
      if (box) { evt.preventDefault(); box.focus(); box.select(); }
      return;
    }
    if (evt.key === "Escape" && t && t.closest && t.closest(".header-search")) {
      var dropdown = document.getElementById("global-results");
      if (dropdown) dropdown.innerHTML = "";
      document.getElementById("global-search").focus();
      return;
    }
    if (evt.key !== "ArrowDown" && evt.key !== "ArrowUp" && evt.key !== "Enter") return;
    var input = t && t.hasAttribute && t.hasAttribute("data-search-input") ? t : null;
    var container = t && t.closest ? t.closest("#global-results, #results") : null;
    var source = input || (container && document.querySelector('[hx-target="#' + container.id + '"]'));
    if (!source) return;
    var links = resultsFor(source);
    if (!links.length) return;
    var index = links.indexOf(document.activeElement);
    if (evt.key === "Enter") {
      if (input && links.length === 1) { evt.preventDefault(); window.location.href = links[0].href; }
      return;  // on a focused result, Enter follows the link natively
    }
    evt.preventDefault();
    if (evt.key === "ArrowDown") {
      links[Math.min(index + 1, links.length - 1)].focus();
    } else if (index <= 0) {
      source.focus();
    } else {
      links[index - 1].focus();
    }
  });

  // --- Schedule keyboard: shortcuts listed in the help dialog (?) -----------------------------
  var panel = function () { return document.getElementById("panel"); };
  var opener = null;  // the id of the slot or appointment whose panel is open, to go back to
  document.body.addEventListener("htmx:beforeRequest", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "panel") opener = evt.detail.elt.id || null;
  });
  var closePanel = function () {
    var box = panel();
    if (!box || !box.children.length) return false;
    box.innerHTML = "";
    var back = opener && document.getElementById(opener);
    if (back) back.focus();
    return true;
  };
  var navItems = function () {
    return Array.prototype.slice.call(document.querySelectorAll("main [data-nav-item]"));
  };
  var shortcut = function (key) {
    var active = document.activeElement;
    if (key === "?") {
      var help = document.getElementById("shortcuts");
      if (help && !help.open) help.showModal();
      return true;
    }
    if (key === "n") {
      var slot = active && active.matches && active.matches("[data-slot]") ? active
        : document.querySelector("main [data-slot]");
      if (slot) { slot.focus(); slot.click(); return true; }
      return false;
    }
    if (key === "c") {
      var card = active && active.closest ? active.closest("[data-card]") : null;
      var button = card ? card.querySelector("[data-check-in]")
        : document.querySelector("#panel [data-action='check_in']");
      if (button) { button.click(); return true; }
      return false;
    }
    if (key === "d") {
      var picker = document.getElementById("board-date") || document.getElementById("week-day");
      if (picker) { picker.focus(); return true; }
      return false;
    }
    if (key === "j" || key === "k") {
      var items = navItems();
      if (!items.length) return false;
      var at = items.indexOf(active);
      var next = key === "j" ? Math.min(at + 1, items.length - 1) : Math.max(at - 1, 0);
      items[at === -1 ? 0 : next].focus();
      return true;
    }
    var link = document.querySelector('main [data-key="' + key + '"]');
    if (link) { link.click(); return true; }
    return false;
  };
  document.addEventListener("keydown", function (evt) {
    var t = evt.target;
    if (evt.ctrlKey || evt.metaKey || evt.altKey) return;
    var typing = t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
    if (document.querySelector("dialog[open]")) return;
    if (evt.key === "Escape") {  // from inside the panel, or from anywhere but another field
      var inPanel = t && t.closest && t.closest("#panel");
      if ((inPanel || !typing) && closePanel()) evt.preventDefault();
      return;
    }
    if (typing) return;
    if (evt.key.length === 1 && shortcut(evt.key)) evt.preventDefault();
  });
  document.addEventListener("click", function (evt) {
    var close = evt.target.closest && evt.target.closest("[data-close-panel]");
    if (close && close.closest("#panel")) { evt.preventDefault(); closePanel(); return; }
    if (evt.target.closest && evt.target.closest("[data-help]")) {
      var help = document.getElementById("shortcuts");
      if (help) help.showModal();
    }
    if (evt.target.closest && evt.target.closest("[data-print]")) window.print();
  });

  // The booking and walk-in patient picker: Enter in the search box takes the first match and
  // moves on to the next field; arrow down walks the matches, and Enter on one takes it. Matches
  // of an earlier search (the desk typed faster than the search answered) are never taken: Enter
  // then searches at once and takes the first match of the answer.
  var picks = function (form) { return Array.prototype.slice.call(form.querySelectorAll("[data-pick]")); };
  var answered = function (input) {
    var results = input.form.querySelector("#picker-results [data-results-for]");
    return results !== null && results.getAttribute("data-results-for") === input.value.trim();
  };
  var take = function (radio, moveOn) {
    radio.checked = true;
    var next = radio.form.querySelector("select[name='type_id'], select[name='doctor_id']");
    if (moveOn) (next || radio).focus();
  };
  var takeFirst = function (input) {
    var radios = picks(input.form);
    if (radios.length) take(radios.filter(function (r) { return r.checked; })[0] || radios[0], true);
  };
  var awaitingPick = null;  // the search box whose Enter waits for the search's answer
  document.addEventListener("keydown", function (evt) {
    var t = evt.target;
    if (!t.matches || !t.form) return;
    if (evt.key === "Enter" && t.matches("[data-pick]")) { evt.preventDefault(); take(t, true); return; }
    if (!t.matches("[data-picker-input]")) return;
    var radios = picks(t.form);
    if (evt.key === "ArrowDown" && radios.length) { evt.preventDefault(); radios[0].focus(); return; }
    if (evt.key !== "Enter") return;
    evt.preventDefault();
    if (answered(t)) { awaitingPick = null; takeFirst(t); return; }
    if (!t.value.trim()) return;
    awaitingPick = t;
    t.dispatchEvent(new Event("search"));  // one of the box's htmx triggers: search now, not after the pause
  });
  document.addEventListener("input", function (evt) {
    if (evt.target === awaitingPick) awaitingPick = null;  // typing on: the Enter was for another search
  });
  document.body.addEventListener("htmx:afterSettle", function (evt) {
    var input = awaitingPick;
    if (!input || !input.isConnected || evt.detail.target !== input.form.querySelector("#picker-results")) return;
    if (!answered(input)) return;
    awaitingPick = null;
    if (document.activeElement === input) { takeFirst(input); return; }
    var radios = picks(input.form);  // the desk has moved on: choose, but leave the focus where it is
    if (radios.length && !radios.some(function (r) { return r.checked; })) take(radios[0], false);
  });

  // --- Small enhancements ------------------------------------------------------------------
  document.querySelectorAll(".js-only").forEach(function (el) { el.hidden = false; });
  // A date chosen in the calendar opens that day at once. A date typed changes the value at every
  // digit, so typing shows the Go button instead and Enter (or Go) opens the day.
  document.querySelectorAll("input[data-autosubmit-date]").forEach(function (input) {
    var buttons = input.form.querySelectorAll("button");
    var typed = false;
    buttons.forEach(function (el) { el.hidden = true; });
    input.addEventListener("keydown", function (evt) {
      if (/^(Enter|Tab|Escape|Shift)$/.test(evt.key) || evt.altKey || evt.ctrlKey || evt.metaKey) return;
      typed = true;
      buttons.forEach(function (el) { el.hidden = false; });
    });
    input.addEventListener("change", function () { if (input.value && !typed) input.form.requestSubmit(); });
  });
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    var form = select.form;
    form.querySelectorAll(".js-hide").forEach(function (el) { el.hidden = true; });
    select.addEventListener("change", function () { form.requestSubmit(); });
  });

  // --- Consultation note: autosave never loses typing ------------------------------------------
  // The form saves itself 1.5 s after typing stops (htmx); here the status says "unsaved" while
  // typing, a failed save (network, server) is retried every 5 s until it goes through, and leaving
  // the page with unsaved text asks first. A 409 (saved meanwhile elsewhere) is not retried: the
  // text stays in the boxes and the status says what to do.
  var noteForm = document.querySelector("form[data-autosave]");
  if (noteForm) {
    var noteState = function (state, text) {
      var status = document.getElementById("note-status");
      if (!status) return;
      status.dataset.state = state;
      if (text) status.textContent = text;
    };
    var retry = null, edits = 0, editsSent = 0;
    noteForm.addEventListener("input", function () {
      edits += 1;
      noteState("unsaved", "Unsaved changes…");
    });
    noteForm.addEventListener("htmx:beforeRequest", function () { editsSent = edits; });
    document.body.addEventListener("htmx:afterSwap", function (evt) {
      // Typing that went on while a save was in flight is not in it: still unsaved.
      if (evt.detail.requestConfig && evt.detail.requestConfig.elt === noteForm && edits !== editsSent) {
        noteState("unsaved", "Unsaved changes…");
      }
    });
    var failed = function (evt) {
      if (evt.detail.elt !== noteForm) return;
      var status = evt.detail.xhr ? evt.detail.xhr.status : 0;
      // Only a network failure or a server error is worth retrying; anything else (expired form,
      // refused) would be refused again, so the text stays on screen and the status says so.
      if (status && status < 500) { noteState("unsaved", "Not saved: reload the page, then paste your text."); return; }
      noteState("unsaved", "Not saved yet: the connection failed. Retrying…");
      clearTimeout(retry);
      retry = setTimeout(function () { htmx.trigger(noteForm, "autosave-retry"); }, 5000);
    };
    // After a refusal (saved meanwhile from another window) stop saving from this page: every save
    // would be refused again; the typed text stays for the doctor to copy.
    noteForm.addEventListener("htmx:beforeRequest", function (evt) {
      var status = document.getElementById("note-status");
      if (status && status.dataset.state === "conflict" && evt.detail.elt === noteForm) evt.preventDefault();
    });
    document.body.addEventListener("htmx:responseError", failed);
    document.body.addEventListener("htmx:sendError", failed);
    window.addEventListener("beforeunload", function (evt) {
      var status = document.getElementById("note-status");
      if (status && status.dataset.state === "unsaved") { evt.preventDefault(); evt.returnValue = ""; }
    });
  }
})();
