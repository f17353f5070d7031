/* Quality-of-life queues (/queues), browser side.
 *
 * - version: turns each live-store update that touches a quality-of-life call or a work
 *   record into a bumped counter, so the server re-renders the cards only then (unit moves
 *   and other calls' changes do not count).
 * - syncFilters: restores the filters remembered on this device for this user (a dcc.Store
 *   in localStorage) when the page opens, and remembers every change.
 * - neighborhoodOptions / placeOptions: the neighborhoods, parks and schools of the chosen
 *   district (the server sends a locked officer only their own district's).
 * - clocks: every card's clock and overdue colour tick each second from the epochs the
 *   server put on it (data-since, data-warn-at, data-late-at): the rule is the server's.
 * - tapCard: a tap on a card opens its detail (through the queues-tap store).
 * - outbox: actions (claim, release, note, handled) are queued on the device with an id and
 *   sent to POST /api/actions in order; what cannot be sent now waits and is sent on
 *   reconnect. The server applies each id once, so resending after a doubtful send is safe.
 * - freshness: says whether the page is live, and how old what it shows is when it is not.
 * - theme: day or night, remembered per device; sign-out leaves only that on the device.
 */
(function () {
  "use strict";
  var ANY = "all";
  var OUTBOX_KEY = "dispatch-outbox";
  var THEME_KEY = "dispatch-theme";
  var RETRY_MS = [1000, 2000, 5000, 10000, 20000, 30000];

  // The shared formatter (assets/display.js, contract 8): the same words as the server's.
  function ageText(seconds) { return window.dispatchDisplay.shortDuration(seconds); }

  function number(el, name) {
    var value = parseFloat(el.getAttribute(name));
    return isFinite(value) ? value : null;
  }

  /* The level of a card at `now` from the server's epochs (queueview.level). */
  function levelAt(el, now) {
    var late = number(el, "data-late-at"), warn = number(el, "data-warn-at");
    if (late !== null && now > late) return "late";
    if (warn !== null && now >= warn) return "warn";
    return "ok";
  }
  var LEVEL_WORDS = {late: "Overdue", warn: "Due soon", ok: ""};

  function tickClocks() {
    var now = Date.now() / 1000;
    document.querySelectorAll(".queues-clock[data-since]").forEach(function (el) {
      var since = number(el, "data-since");
      var text = el.getAttribute("data-label") + " " + (since === null ? "—" : ageText(now - since));
      if (el.textContent !== text) el.textContent = text;
    });
    document.querySelectorAll(".queues-card[data-call-id]").forEach(function (card) {
      var level = levelAt(card, now);
      if (card.getAttribute("data-level") === level) return;
      card.setAttribute("data-level", level);
      card.classList.remove("level-ok", "level-warn", "level-late");
      card.classList.add("level-" + level);
      var words = card.querySelector(".queues-level");
      if (words) words.textContent = LEVEL_WORDS[level];
    });
  }

  /* A tap (or Enter/Space) on a card names its call in the queues-tap store, which opens
   * the detail. Listening on the document, not on each card: a live update that re-renders
   * the cards between the tap and its callback no longer swallows the tap. */
  function tapCard(event) {
    var card = event.target.closest && event.target.closest("#queues-cards [data-call-id]");
    if (!card || !window.dash_clientside || !window.dash_clientside.set_props) return;
    if (event.type === "keydown") {
      if (event.key !== "Enter" && event.key !== " ") return;
      event.preventDefault();
    }
    window.dash_clientside.set_props("queues-tap", {
      data: {call_id: card.getAttribute("data-call-id"), at: Date.now()}});
  }

  /* Dash mounts every card afresh when the cards re-render (on each change of an open
   * call), so the card a keyboard user had focused is gone and focus falls to the page:
   * the next Enter opened nothing. Focus moves to the same call's new card instead. */
  var focusedCall = null;
  function followFocus(event) {
    var card = event.target.closest && event.target.closest("#queues-cards [data-call-id]");
    focusedCall = card ? card.getAttribute("data-call-id") : null;
  }
  function forgetFocus(event) {
    if (!(event.target.closest && event.target.closest("#queues-cards [data-call-id]"))) {
      focusedCall = null;  // a tap elsewhere: the user has moved on
    }
  }
  function restoreFocus() {
    var active = document.activeElement;
    if (focusedCall === null || (active && active !== document.body)) return;
    var card = document.querySelector("#queues-cards [data-call-id='" +
                                      CSS.escape(focusedCall) + "']");
    if (card) card.focus({preventScroll: true});
  }

  // --- the outbox -----------------------------------------------------------------------------
  var box = {user: null, actions: [], sending: false, retry: 0, timer: null, lastAnswer: null};

  function loadOutbox(user) {
    var stored = null;
    try { stored = JSON.parse(localStorage.getItem(OUTBOX_KEY) || "null"); } catch (e) { stored = null; }
    // Another user's unsent actions are never sent in this user's name: they are dropped.
    box.actions = stored && stored.user === user && Array.isArray(stored.actions) ?
      stored.actions : [];
    box.user = user;
    saveOutbox();
  }
  function saveOutbox() {
    if (!box.user) return;
    if (box.actions.length) {
      localStorage.setItem(OUTBOX_KEY, JSON.stringify({user: box.user, actions: box.actions}));
    } else {
      localStorage.removeItem(OUTBOX_KEY);
    }
    showOutbox();
  }
  function newId() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return (b < 16 ? "0" : "") + b.toString(16);
    }).join("");
  }
  function enqueue(action) {
    action.id = newId();
    action.made_at = Date.now() / 1000;
    box.actions.push(action);
    saveOutbox();
    markQueued();
    flush();
  }
  function csrfToken() {
    var found = document.cookie.match(/(?:^|;\s*)_csrf_token=([^;]*)/);
    return found ? decodeURIComponent(found[1]) : "";
  }
  /* Send the oldest queued action; an answer with a status is final (applied or refused)
   * and the next one follows; anything else (offline, 5xx, signed out) waits and retries. */
  function flush() {
    if (box.sending || !box.actions.length) return;
    clearTimeout(box.timer);
    box.sending = true;
    var action = box.actions[0];
    var body = {id: action.id, call_id: action.call_id, kind: action.kind,
                made_at: action.made_at};
    if (action.outcome) body.outcome = action.outcome;
    if (action.text) body.text = action.text;
    fetch("/api/actions", {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken()},
      body: JSON.stringify(body)
    }).then(function (reply) {
      return reply.json().then(function (answer) { return answer; }, function () { return null; });
    }).then(function (answer) {
      box.sending = false;
      if (!answer || !answer.status) { return later(); }
      box.retry = 0;
      box.actions = box.actions.filter(function (queued) { return queued.id !== action.id; });
      saveOutbox();
      answered(answer);
      flush();
    }, function () {
      box.sending = false;
      later();
    });
  }
  function later() {
    clearTimeout(box.timer);
    var wait = RETRY_MS[Math.min(box.retry, RETRY_MS.length - 1)];
    box.retry += 1;
    box.timer = setTimeout(flush, wait);
    showOutbox();
  }
  function answered(answer) {
    box.lastAnswer = answer;
    var message = document.getElementById("queues-message");
    if (message) {
      message.textContent = answer.message || "";
      message.className = "queues-message " + (answer.status === "applied" ? "ok" : "refused");
      message.setAttribute("data-code", answer.code || "");
    }
    markQueued();
    if (window.dash_clientside && window.dash_clientside.set_props &&
        document.getElementById("queues-page")) {
      window.dash_clientside.set_props("queues-refresh", {data: Date.now()});
    }
  }
  function showOutbox() {
    var el = document.getElementById("queues-outbox");
    if (!el) return;
    var count = box.actions.length;
    var text = count ? count + (count === 1 ? " action" : " actions") + " waiting to send" : "";
    if (el.textContent !== text) el.textContent = text;
    el.classList.toggle("waiting", count > 0);
  }
  var KIND_WORDS = {claim: "taking it", release: "release", note: "note", handled: "handled"};
  /* Show on the page what is queued: cards with an unsent action say so, a call queued as
   * handled leaves the queue at once, and the open detail lists what waits to be sent. */
  function markQueued() {
    var byCall = {};
    box.actions.forEach(function (a) { (byCall[a.call_id] = byCall[a.call_id] || []).push(a); });
    document.querySelectorAll("#queues-cards .queues-card[data-call-id]").forEach(function (card) {
      var queued = byCall[card.getAttribute("data-call-id")] || [];
      card.classList.toggle("queued", queued.length > 0);
      card.classList.toggle("queued-handled", queued.some(function (a) {
        return a.kind === "handled"; }));
    });
    var pending = document.getElementById("queues-detail-pending");
    var work = document.getElementById("queues-work");
    if (!pending) return;
    var here = work ? byCall[work.getAttribute("data-call-id")] || [] : [];
    if (work) work.querySelectorAll(".queues-handled-form").forEach(showOutcome);
    var text = here.length ? "Waiting to send: " + here.map(function (a) {
      return KIND_WORDS[a.kind] + (a.outcome ? " (" + a.outcome.replace(/_/g, " ") + ")" : "");
    }).join(", ") : "";
    if (pending.textContent !== text) pending.textContent = text;
    if (work) {
      var claimQueued = here.some(function (a) { return a.kind === "claim"; });
      work.querySelectorAll("[data-action=claim]").forEach(function (button) {
        if (!claimQueued) return;
        button.disabled = true;
        button.textContent = "Taking it: waiting to send";
      });
    }
  }

  function onAction(event) {
    var outcome = event.target.closest && event.target.closest(".queues-outcome");
    if (outcome) { chooseOutcome(outcome); return; }
    var button = event.target.closest && event.target.closest("button[data-action]");
    if (!button || button.disabled) return;
    var kind = button.getAttribute("data-action"), callId = button.getAttribute("data-call-id");
    var action = {call_id: callId, kind: kind};
    if (kind === "note") {
      var input = document.getElementById("queues-note-text");
      var text = input ? input.value.trim() : "";
      if (!text) { answered({status: "refused", message: "Write the note first."}); return; }
      action.text = text;
      window.dash_clientside.set_props("queues-note-text", {value: ""});
    }
    if (kind === "handled") {
      if (!chosenOutcome[callId]) return;
      action.outcome = chosenOutcome[callId];
      delete chosenOutcome[callId];
    }
    enqueue(action);
  }
  /* The outcome an officer picked, per call: a live re-render of the detail (another
   * officer's note arriving) must not undo the choice. */
  var chosenOutcome = {};
  function chooseOutcome(button) {
    var form = button.closest("fieldset");
    var submit = form.querySelector("[data-action=handled]");
    if (submit) chosenOutcome[submit.getAttribute("data-call-id")] =
      button.getAttribute("data-outcome");
    showOutcome(form);
  }
  function showOutcome(form) {
    var submit = form.querySelector("[data-action=handled]");
    var chosen = submit && chosenOutcome[submit.getAttribute("data-call-id")];
    if (!chosen) return;
    form.querySelectorAll(".queues-outcome").forEach(function (other) {
      var on = other.getAttribute("data-outcome") === chosen;
      if (other.getAttribute("aria-pressed") !== (on ? "true" : "false")) {
        other.setAttribute("aria-pressed", on ? "true" : "false");
      }
      other.classList.toggle("active", on);
    });
    if (submit.disabled && !submit.hasAttribute("data-blocked")) submit.disabled = false;
  }

  // --- pushed work records, painted at once ----------------------------------------------------
  /* A claim, note or outcome pushed by live.js is painted on the card and the open detail
   * in the same frame, with the server's wording (defaults.words); the server's re-render
   * follows and replaces it. */
  var painter = {defaults: null, unsubscribe: null};
  function hhmm(epoch) {
    return window.dispatchDisplay.clock(epoch, (painter.defaults || {}).timezone, false);
  }
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_m, name) { return values[name]; });
  }
  function workWords(work) {
    var d = painter.defaults, words = d.words;
    if (work && work.handled) {
      return ["handled", fill(words.handled, {outcome: d.outcomes[work.handled.outcome] ||
        work.handled.outcome, by: work.handled.by, at: hhmm(work.handled.at)})];
    }
    if (work && work.claimed_by) {
      var kind = work.claimed_by === d.user ? "mine" : "taken";
      return [kind, fill(words[kind], {by: work.claimed_by, at: hhmm(work.claimed_at)})];
    }
    return ["free", words.free];
  }
  function paintCard(callId, work) {
    var card = document.querySelector("#queues-cards .queues-card[data-call-id='" +
                                      CSS.escape(callId) + "']");
    if (!card) return;
    card.classList.toggle("queued-handled", Boolean(work && work.handled));
    var line = card.querySelector(".queues-card-work");
    var said = workWords(work), claim = line && line.querySelector(".queues-claim");
    if (!line) return;
    if (said[0] === "free" || said[0] === "handled") { if (claim) claim.remove(); return; }
    if (!claim) {
      claim = document.createElement("span");
      line.insertBefore(claim, line.firstChild);
    }
    claim.className = "queues-claim claim-" + said[0];
    claim.textContent = said[1];
  }
  function paintDetail(callId, work) {
    var panel = document.querySelector("#queues-work[data-call-id='" + CSS.escape(callId) + "']");
    if (!panel) return;
    var said = workWords(work), state = panel.querySelector(".queues-work-state");
    if (state) {
      state.className = "queues-work-state " + (said[0] === "handled" ? "handled" :
        said[0] === "free" ? "" : "claim-" + said[0]);
      state.textContent = said[1];
    }
    var override = painter.defaults.override;
    panel.querySelectorAll("button[data-action]").forEach(function (button) {
      var kind = button.getAttribute("data-action");
      var blocked = (work && work.handled) || (kind === "claim" && work && work.claimed_by) ||
        (kind !== "claim" && work && work.claimed_by &&
         work.claimed_by !== painter.defaults.user && !override);
      if (blocked) { button.disabled = true; button.setAttribute("data-blocked", "1"); }
    });
    var list = panel.querySelector(".queues-note-list");
    var notes = (work && work.notes) || [];
    if (!notes.length) return;
    if (!list) {
      list = document.createElement("ol");
      list.className = "queues-note-list";
      list.id = "queues-note-list";
      var empty = panel.querySelector(".queues-notes-empty");
      if (empty) { empty.replaceWith(list); } else { panel.appendChild(list); }
    }
    if (list.children.length >= notes.length) return;
    for (var i = list.children.length; i < notes.length; i++) {
      var item = document.createElement("li"), meta = document.createElement("span");
      var text = document.createElement("span");
      meta.className = "queues-note-meta";
      meta.textContent = notes[i].by + " · " + hhmm(notes[i].at);
      text.className = "queues-note-text";
      text.textContent = notes[i].text || "";
      item.appendChild(meta);
      item.appendChild(text);
      list.appendChild(item);
    }
  }
  function onLiveWork(live, changed) {
    if (!document.getElementById("queues-page") || !painter.defaults) {
      if (painter.unsubscribe) { painter.unsubscribe(); painter.unsubscribe = null; }
      return;
    }
    var ids = changed.snapshot ? Object.keys(live.work || {}) : Object.keys(changed.work || {});
    ids.forEach(function (id) {
      paintCard(id, live.work[id]);
      paintDetail(id, live.work[id]);
    });
  }
  function watchLiveWork() {
    var live = window.dispatchLive;
    if (painter.unsubscribe || !painter.defaults || !live || !live.subscribe ||
        !document.getElementById("queues-page")) return;
    painter.unsubscribe = live.subscribe(onLiveWork);
  }

  // --- freshness ------------------------------------------------------------------------------
  // In the city's zone, as every other time on the page (not the device's zone).
  function clockOf(ms) {
    return window.dispatchDisplay.clock(ms / 1000, (painter.defaults || {}).timezone, true);
  }
  function showFreshness() {
    var el = document.getElementById("queues-freshness");
    var page = document.getElementById("queues-page");
    if (!el || !page) return;
    var live = window.dispatchLive || {};
    var heard = live.heardAt || null, text, state;
    if (live.status === "live" && heard) {
      state = "live";
      text = "Live · as of " + clockOf(heard);
    } else if (heard) {
      state = "stale";
      text = "Not live: showing calls as they were at " + clockOf(heard) + " (" +
        ageText((Date.now() - heard) / 1000) + " ago)";
    } else {
      state = "connecting";
      text = "Connecting…";
    }
    if (el.textContent !== text) el.textContent = text;
    el.setAttribute("data-state", state);
    page.classList.toggle("queues-stale", state !== "live");
    if (state === "live" && box.actions.length && !box.sending) { flush(); }
  }

  // --- theme -----------------------------------------------------------------------------------
  function theme() { return localStorage.getItem(THEME_KEY) === "day" ? "day" : "night"; }
  function applyTheme() {
    var onQueues = Boolean(document.getElementById("queues-page"));
    var wanted = onQueues && theme() === "day" ? "light" : "dark";
    var root = document.documentElement;
    if (root.getAttribute("data-bs-theme") !== wanted) {
      root.setAttribute("data-bs-theme", wanted);
    }
    // The shared priority palette's day or night set follows the tablet's theme.
    if (onQueues) {
      var palette = wanted === "light" ? "day" : "night";
      if (root.getAttribute("data-palette") !== palette) root.setAttribute("data-palette", palette);
    } else if (root.getAttribute("data-palette") && root.hasAttribute("data-queues-palette")) {
      root.removeAttribute("data-palette");
    }
    if (onQueues) root.setAttribute("data-queues-palette", "1");
    var button = document.getElementById("queues-theme");
    if (button) {
      var label = theme() === "day" ? "Night theme" : "Day theme";
      if (button.textContent !== label) button.textContent = label;
      button.setAttribute("aria-pressed", theme() === "day" ? "true" : "false");
    }
  }
  function onThemeClick(event) {
    if (!event.target.closest || !event.target.closest("#queues-theme")) return;
    localStorage.setItem(THEME_KEY, theme() === "day" ? "night" : "day");
    applyTheme();
  }

  // --- sign-out: nothing but the theme stays on the device ------------------------------------
  function onSignOut(event) {
    // The bar's sign-out button (a POST form); a click runs before the form is sent.
    var button = event.target.closest && event.target.closest("#nav-signout");
    if (!button) return;
    if (box.actions.length && !window.confirm(box.actions.length + " action(s) not sent yet " +
        "will be lost if you sign out now. Sign out anyway?")) {
      event.preventDefault();
      return;
    }
    forgetDevice();
  }
  function forgetDevice() {
    var kept = localStorage.getItem(THEME_KEY);
    localStorage.clear();
    sessionStorage.clear();
    if (kept) localStorage.setItem(THEME_KEY, kept);
    box.actions = [];
  }

  // iPads and iPhones do not open geo: links; their maps app takes maps: with the same pin.
  function appleMaps() {
    return /iPad|iPhone|iPod/.test(navigator.userAgent) ||
      (navigator.platform === "MacIntel" && navigator.maxTouchPoints > 1);
  }
  function fixNavigate() {
    var link = document.getElementById("queues-navigate");
    if (!link || !appleMaps() || link.getAttribute("data-fixed")) return;
    var ll = link.getAttribute("data-lat") + "," + link.getAttribute("data-lon");
    link.setAttribute("href", "maps://?ll=" + ll + "&q=" +
      encodeURIComponent(link.getAttribute("data-label") || ll));
    link.setAttribute("data-fixed", "1");
  }

  // --- wiring ----------------------------------------------------------------------------------
  var watched = null;
  function watchPage() {
    applyTheme();
    showFreshness();
    fixNavigate();
    watchLiveWork();
    var cards = document.getElementById("queues-cards");
    var defaults = document.getElementById("queues-page");
    if (defaults && box.user === null) {
      var user = defaults.getAttribute("data-user");
      if (user) loadOutbox(user);
    }
    if (cards && cards !== watched) {
      watched = cards;
      new MutationObserver(function () { markQueued(); tickClocks(); restoreFocus(); }).observe(
        cards, {childList: true, subtree: true});
      var live = document.getElementById("queues-detail");
      if (live) {
        new MutationObserver(markQueued).observe(live, {childList: true, subtree: true});
      }
    }
    showOutbox();
  }

  document.addEventListener("click", tapCard);
  document.addEventListener("keydown", tapCard);
  document.addEventListener("focusin", followFocus);
  document.addEventListener("pointerdown", forgetFocus, true);
  document.addEventListener("click", onAction);
  document.addEventListener("click", onThemeClick);
  document.addEventListener("click", onSignOut, true);
  window.addEventListener("online", function () { box.retry = 0; flush(); });
  setInterval(function () { tickClocks(); watchPage(); }, 1000);
  setInterval(watchPage, 200);
  // Another tab of this user sent or queued actions: follow its outbox.
  window.addEventListener("storage", function (event) {
    if (event.key === OUTBOX_KEY && box.user) { loadOutbox(box.user); markQueued(); }
  });

  /* Ids of the quality-of-life calls in the last live update (null before the first). */
  var qolIds = null;

  function qolIdsOf(calls) {
    var ids = new Set();
    (calls || []).forEach(function (call) { if (call && call.qol) ids.add(call.call_id); });
    return ids;
  }

  function touchesCalls(data) {
    // live.js lists what each flush changed; unit moves alone need no re-render, nor does
    // a change to a call that neither was nor is a quality-of-life call (the server's
    // `qol` flag): it can change no card, count or summary here. Push already sends a
    // district's tablets only that district's calls.
    if (!data) return false;
    var before = qolIds;
    qolIds = qolIdsOf(data.calls);
    var changed = data.changed;
    if (!changed || changed.snapshot || before === null) return true;
    if ((changed.work || []).length > 0) return true;
    return (changed.calls || []).some(function (id) {
      return qolIds.has(id) || before.has(id);
    });
  }

  function userFilters(stored, user) {
    if (!stored || typeof stored !== "object") return null;
    var mine = stored[user];
    return mine && typeof mine === "object" ? mine : null;
  }

  function optionValues(options) {
    return (options || []).map(function (option) { return option.value; });
  }

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.queues = {
    ageText: ageText,
    outbox: function () { return box.actions.slice(); },
    lastAnswer: function () { return box.lastAnswer; },

    version: function (live, current) {
      if (!touchesCalls(live)) return window.dash_clientside.no_update;
      return (current || 0) + 1;
    },

    syncFilters: function (district, hood, place, category, stored, defaults, hoods, places) {
      var noUpdate = window.dash_clientside.no_update;
      var context = window.dash_clientside.callback_context;
      var triggered = (context.triggered || []).map(function (t) { return t.prop_id; });
      var initial = triggered.length === 0 || triggered[0] === ".";
      var user = defaults.user;
      painter.defaults = defaults;
      if (box.user === null) loadOutbox(user);
      // A cso/sro is locked to their district (the server enforces it too).
      var locked = defaults.locked || null;
      if (initial) {
        var saved = userFilters(stored, user) || defaults;
        var savedHood = saved.neighborhood || ANY;
        var hoodOk = !locked || savedHood === ANY ||
          (hoods[locked] || []).indexOf(savedHood) >= 0;
        var savedPlace = saved.place || saved.park || ANY;
        var placeOk = savedPlace === ANY ||
          optionValues(places[locked || ANY]).indexOf(savedPlace) >= 0;
        return [locked || saved.district || ANY, hoodOk ? savedHood : ANY,
                placeOk ? savedPlace : ANY, saved.category || ANY, noUpdate];
      }
      if (locked) district = locked;
      // A neighborhood or place outside the chosen district would show nothing: drop it.
      if (district !== ANY && hood !== ANY && hoods[district] &&
          hoods[district].indexOf(hood) < 0) {
        hood = ANY;
      }
      if (district !== ANY && place !== ANY &&
          optionValues(places[district]).indexOf(place) < 0) {
        place = ANY;
      }
      var next = Object.assign({}, stored || {});
      next[user] = {district: district, neighborhood: hood, place: place, category: category};
      var districtChanged = triggered.indexOf("queues-district.value") >= 0;
      return [noUpdate, districtChanged ? hood : noUpdate, districtChanged ? place : noUpdate,
              noUpdate, next];
    },

    neighborhoodOptions: function (district, hoods) {
      var names = district && district !== ANY ? (hoods[district] || []) :
        Object.keys(hoods).reduce(function (all, d) { return all.concat(hoods[d]); }, [])
          .sort();
      return [{label: "All neighborhoods", value: ANY}].concat(
        names.map(function (name) { return {label: name, value: name}; }));
    },

    placeOptions: function (district, places) {
      var listed = places[district && district !== ANY ? district : ANY] || [];
      return [{label: "Any place", value: ANY}].concat(listed);
    },
  };
})();
