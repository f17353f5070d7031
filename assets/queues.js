/* Quality-of-life queues (/queues), browser side.
 *
 * - version: turns each live-store update that touches a call into a bumped counter, so the
 *   server re-renders the cards only when calls changed (unit positions do not count).
 * - syncFilters: restores the filters remembered on this device for this user (a dcc.Store
 *   in localStorage) when the page opens, and remembers every change.
 * - neighborhoodOptions: the neighborhoods of the chosen district.
 * - ages: every card's age ticks each second from its data-received epoch, no server trip.
 * - tapCard: a tap on a card opens its detail (through the queues-tap store).
 */
(function () {
  "use strict";
  const ANY = "all";

  function ageText(seconds) {
    // Same wording as dashboard/queueview.py age_text.
    if (seconds === null || !isFinite(seconds)) return "—";
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) {
      const m = Math.floor((s % 3600) / 60);
      return Math.floor(s / 3600) + " h " + (m < 10 ? "0" : "") + m + " min";
    }
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }

  function tickAges() {
    const now = Date.now() / 1000;
    document.querySelectorAll(".queues-age[data-received]").forEach(function (el) {
      const received = parseFloat(el.getAttribute("data-received"));
      if (!isFinite(received)) return;
      const text = ageText(now - received);
      if (el.textContent !== text) el.textContent = text;
    });
  }
  setInterval(tickAges, 1000);

  /* A tap (or Enter/Space) on a card names its call in the queues-tap store, which opens
   * the detail. Listening on the document, not on each card: a live update that re-renders
   * the cards between the tap and its callback no longer swallows the tap. */
  function tapCard(event) {
    const card = event.target.closest && event.target.closest("#queues-cards [data-call-id]");
    if (!card || !window.dash_clientside || !window.dash_clientside.set_props) return;
    if (event.type === "keydown") {
      if (event.key !== "Enter" && event.key !== " ") return;
      event.preventDefault();
    }
    window.dash_clientside.set_props("queues-tap", {
      data: {call_id: card.getAttribute("data-call-id"), at: Date.now()}});
  }
  document.addEventListener("click", tapCard);
  document.addEventListener("keydown", tapCard);

  function touchesCalls(data) {
    // live.js lists what each flush changed; unit moves alone need no re-render.
    if (!data) return false;
    const changed = data.changed;
    if (!changed) return true;
    return Boolean(changed.snapshot) || (changed.calls || []).length > 0;
  }

  function userFilters(stored, user) {
    if (!stored || typeof stored !== "object") return null;
    const mine = stored[user];
    return mine && typeof mine === "object" ? mine : null;
  }

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.queues = {
    ageText: ageText,

    version: function (live, current) {
      if (!touchesCalls(live)) return window.dash_clientside.no_update;
      return (current || 0) + 1;
    },

    syncFilters: function (district, hood, park, category, stored, defaults, hoods) {
      const noUpdate = window.dash_clientside.no_update;
      const context = window.dash_clientside.callback_context;
      const triggered = (context.triggered || []).map(function (t) { return t.prop_id; });
      const initial = triggered.length === 0 || triggered[0] === ".";
      const user = defaults.user;
      // A cso/sro is locked to their district (the server enforces it too).
      const locked = defaults.locked || null;
      if (initial) {
        const saved = userFilters(stored, user) || defaults;
        const savedHood = saved.neighborhood || ANY;
        const hoodOk = !locked || savedHood === ANY ||
          (hoods[locked] || []).indexOf(savedHood) >= 0;
        return [locked || saved.district || ANY, hoodOk ? savedHood : ANY, saved.park || ANY,
                saved.category || ANY, noUpdate];
      }
      if (locked) district = locked;
      // A neighborhood outside the chosen district would show nothing: drop it.
      if (district !== ANY && hood !== ANY && hoods[district] &&
          hoods[district].indexOf(hood) < 0) {
        hood = ANY;
      }
      const next = Object.assign({}, stored || {});
      next[user] = {district: district, neighborhood: hood, park: park, category: category};
      const hoodOut = triggered.indexOf("queues-district.value") >= 0 ? hood : noUpdate;
      return [noUpdate, hoodOut, noUpdate, noUpdate, next];
    },

    neighborhoodOptions: function (district, hoods) {
      const names = district && district !== ANY ? (hoods[district] || []) :
        Object.keys(hoods).reduce(function (all, d) { return all.concat(hoods[d]); }, [])
          .sort();
      return [{label: "All neighborhoods", value: ANY}].concat(
        names.map(function (name) { return {label: name, value: name}; }));
    },
  };
})();
