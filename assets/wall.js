/* Wall display (/wall): draws live state straight into the DOM and over the Leaflet map.
 *
 * Push mode subscribes to assets/live.js directly (window.dispatchLive.subscribe): once per
 * animation frame it gets the ids changed since the last frame and draws them, with no Dash
 * or React work on the hot path (live-store stops following while the wall draws itself).
 * dash_clientside.wall.render is the clientside callback on wall-poll-store (polling
 * fallback) and on live-store (it only sets the page up there, and draws from the store if
 * live.js has no subscribe). Each render diffs the new state against what is drawn
 * (per entity, by a cheap signature) and touches only what changed: keyed queue rows,
 * the markers' canvas (assets/wall-marks.js, redrawn once per frame if a marker changed),
 * text of KPI tiles. It then fires "wall:drawn" on #wall-root with the new calls whose
 * markers it drew (tests and the latency benchmark listen). A one-second timer updates
 * aging timers, the clock, feed health and alert fading without any server round trip.
 * Each render's duration goes into window.wallRenderTimes (read by the benchmark).
 *
 * agingLevel, queueOrder, nearestUnits, linkedCalls, feedHealth, alertOpacity and
 * formatAge mirror dashboard/wallview.py; the browser tests compare them on shared inputs.
 */
(function () {
  "use strict";

  var OPEN = {pending: 1, assigned: 1, dispatched: 1, en_route: 1, on_scene: 1};
  var STATUS_SHORT = {pending: "PENDING", assigned: "ASSIGNED", dispatched: "DISPATCHED",
                      en_route: "EN ROUTE", on_scene: "ON SCENE"};
  var KINDS = {
    calls: {id: "call_id", keep: function (c) { return OPEN[c.status] === 1; }},
    units: {id: "unit_id", keep: function () { return true; }},
    alerts: {id: "alert_id", keep: function () { return true; }},
    shares: {id: "share_id", keep: function (s) { return s.status !== "closed"; }},
  };
  var CAMERA_SVG = '<svg viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" d="' +
    window.WallMarks.CAMERA_PATH + '"/></svg>';

  var COUNTS_INTERVAL_MS = 500;
  var BANNER_CALLS = 2;  // linked calls listed in the banner; the rest as "+ N more"
  var FRAME_INTERVAL_MS = (window.wallFrameIntervalMs != null) ? window.wallFrameIntervalMs : 50;
  var S = {
    ready: false, config: null, map: null,
    items: {calls: new Map(), units: new Map(), alerts: new Map(), shares: new Map()},
    sigs: {calls: new Map(), units: new Map(), alerts: new Map(), shares: new Map()},
    marks: null, markers: {calls: new Map(), units: new Map(), alerts: new Map(), shares: new Map()},
    labels: new Map(), freshness: {}, alive: null, rows: new Map(), rowsFit: 12, sharesRows: 0, crowded: false, rendered: 0, heard: new Set(),
    bannerAlert: null, audio: null, clockFmt: null, countsAt: -Infinity, countsTimer: null,
    countsDue: false,
  };
  window.wallRenderTimes = window.wallRenderTimes || [];

  // --- pure helpers (mirrors of dashboard/wallview.py) ------------------------------------
  var EARTH_RADIUS_M = 6371008.8;  // streams.core.geography.EARTH_RADIUS_M (mean radius)
  function haversineM(lat1, lon1, lat2, lon2) {
    var rad = Math.PI / 180;
    var dphi = (lat2 - lat1) * rad, dl = (lon2 - lon1) * rad;
    var a = Math.pow(Math.sin(dphi / 2), 2) +
      Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.pow(Math.sin(dl / 2), 2);
    return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(a)));
  }
  function hasPosition(item) { return item.lat != null && item.lon != null; }

  function agingLevel(call, now, targets, warnFraction) {
    if (call.status !== "pending") { return "assigned"; }
    var target = targets[call.priority - 1];
    var waited = now - call.received_time;
    if (waited > target) { return "late"; }
    if (waited >= target * (warnFraction == null ? 0.5 : warnFraction)) { return "warn"; }
    return "ok";
  }
  function queueCompare(a, b) {
    var pa = a.status === "pending" ? 0 : 1, pb = b.status === "pending" ? 0 : 1;
    if (pa !== pb) { return pa - pb; }
    if ((a.priority || 5) !== (b.priority || 5)) { return (a.priority || 5) - (b.priority || 5); }
    if ((a.received_time || 0) !== (b.received_time || 0)) {
      return (a.received_time || 0) - (b.received_time || 0);
    }
    return String(a.call_id) < String(b.call_id) ? -1 : (a.call_id === b.call_id ? 0 : 1);
  }
  function queueOrder(calls) {
    return calls.filter(function (c) { return OPEN[c.status] === 1; }).sort(queueCompare);
  }
  function keepRank(c) {
    if ((c.priority || 5) <= 2) { return 0; }
    return c.status === "pending" ? 1 : 2;
  }
  function queueRows(calls, fit) {
    var ordered = queueOrder(calls), index = ordered.map(function (_c, i) { return i; });
    index.sort(function (a, b) { return (keepRank(ordered[a]) - keepRank(ordered[b])) || a - b; });
    var shown = new Set(index.slice(0, Math.max(0, fit))), hidden = {}, rows = [];
    ordered.forEach(function (c, i) {
      if (shown.has(i)) { rows.push(c); return; }
      var label = "P" + (c.priority || 5);
      hidden[label] = (hidden[label] || 0) + 1;
    });
    var sorted = {};
    Object.keys(hidden).sort().forEach(function (k) { sorted[k] = hidden[k]; });
    return {shown: rows, hidden: sorted};
  }
  // Durations and distances: the shared formatter of every page (assets/display.js).
  function formatAge(seconds) { return window.dispatchDisplay.duration(seconds); }
  function byDistanceThenId(key) {
    return function (a, b) {
      if (a.distance_m !== b.distance_m) { return a.distance_m - b.distance_m; }
      return String(a[key]) < String(b[key]) ? -1 : 1;
    };
  }
  function unitTier(kind, tiers) {
    if (tiers == null) { return 0; }
    for (var n = 0; n < tiers.length; n++) { if (tiers[n].indexOf(kind) >= 0) { return n; } }
    return null;
  }
  function nearestUnits(lat, lon, units, limit, speedKmh, tiers) {
    var found = [], byDistance = byDistanceThenId("unit_id");
    units.forEach(function (u) {
      var tier = unitTier(u.unit_kind, tiers);
      if (u.status !== "available" || !hasPosition(u) || tier === null) { return; }
      var d = haversineM(lat, lon, u.lat, u.lon);
      found.push({tier: tier, unit: Object.assign({}, u, {distance_m: d,
        eta_s: d / ((speedKmh || 40) / 3.6)})});
    });
    found.sort(function (a, b) { return (a.tier - b.tier) || byDistance(a.unit, b.unit); });
    return found.slice(0, limit == null ? 3 : limit).map(function (f) { return f.unit; });
  }
  function linkedCalls(alert, calls, radiusM, windowS) {
    var found = [];
    calls.forEach(function (c) {
      if (!hasPosition(c) || c.received_time == null) { return; }
      if (Math.abs(c.received_time - alert.detected_time) > (windowS || 600)) { return; }
      var d = haversineM(alert.lat, alert.lon, c.lat, c.lon);
      if (d <= (radiusM || 500)) { found.push(Object.assign({}, c, {distance_m: d})); }
    });
    return found.sort(byDistanceThenId("call_id"));
  }
  function alertOpacity(ageS, activeS) {
    var f = Math.min(1, Math.max(0, ageS / (activeS || 3600)));
    return Math.round((1 - 0.75 * f) * 1000) / 1000;
  }
  function feedHealth(freshness, sources, now, limits, alive) {
    return sources.map(function (source) {
      var e = (freshness || {})[source] || {}, beat = (alive || {})[source] || {};
      var last = e.seen || e.event_time, heard = beat.heard, until = beat.until;
      if (last != null && now - last < limits[source]) {
        return {source: source, state: "live", text: "live"};
      }
      if (until != null && now < until) { return {source: source, state: "quiet", text: "quiet"}; }
      if (last == null && heard == null) { return {source: source, state: "none", text: "no data"}; }
      var newest = Math.max(last == null ? -Infinity : last, heard == null ? -Infinity : heard);
      return {source: source, state: "stale",
              text: "STALE " + window.dispatchDisplay.shortDuration(now - newest)};
    });
  }

  /* Hot spots (mirror of streams.core.geography.HotSpot.contains and wallview's counts;
   * both checked against tests/cases/wall_rules.json). ``area`` is wallview.hotspot_config. */
  var METERS_PER_DEGREE_LAT = 111320.0;  // streams.core.geography.METERS_PER_DEGREE_LAT
  function ringContains(ring, lon, lat) {
    var inside = false, x1 = ring[ring.length - 1][0], y1 = ring[ring.length - 1][1];
    for (var i = 0; i < ring.length; i++) {
      var x2 = ring[i][0], y2 = ring[i][1];
      if ((y2 > lat) !== (y1 > lat) && lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1)) {
        inside = !inside;
      }
      x1 = x2; y1 = y2;
    }
    return inside;
  }
  function partContains(rings, lat, lon) {
    var outline = rings[0], minLon = Infinity, maxLon = -Infinity, minLat = Infinity,
      maxLat = -Infinity;
    outline.forEach(function (v) {
      minLon = Math.min(minLon, v[0]); maxLon = Math.max(maxLon, v[0]);
      minLat = Math.min(minLat, v[1]); maxLat = Math.max(maxLat, v[1]);
    });
    if (!(minLon <= lon && lon <= maxLon && minLat <= lat && lat <= maxLat)) { return false; }
    var hits = 0;
    rings.forEach(function (ring) { if (ringContains(ring, lon, lat)) { hits += 1; } });
    return hits % 2 === 1;
  }
  function distanceToLineM(lat, lon, points) {
    var east = METERS_PER_DEGREE_LAT * Math.cos(lat * Math.PI / 180);
    var xy = points.map(function (p) {
      return [(p[1] - lon) * east, (p[0] - lat) * METERS_PER_DEGREE_LAT];
    });
    if (xy.length === 1) { return Math.hypot(xy[0][0], xy[0][1]); }
    var best = Infinity;
    for (var i = 0; i + 1 < xy.length; i++) {
      var ax = xy[i][0], ay = xy[i][1], dx = xy[i + 1][0] - ax, dy = xy[i + 1][1] - ay;
      var length2 = dx * dx + dy * dy;
      var t = length2 === 0 ? 0 : Math.min(1, Math.max(0, -(ax * dx + ay * dy) / length2));
      best = Math.min(best, Math.hypot(ax + t * dx, ay + t * dy));
    }
    return best;
  }
  function hotspotContains(area, lat, lon) {
    if (area.parts && area.parts.length) {
      return area.parts.some(function (rings) { return partContains(rings, lat, lon); });
    }
    return distanceToLineM(lat, lon, area.points) <= area.width_m;
  }
  var COUNT_FEEDS = {calls: "cad", alerts: "shotspotter"};  // wallview.COUNT_FEEDS
  function countsKnown(states, connected) {
    var known = {};
    Object.keys(COUNT_FEEDS).forEach(function (kind) {
      var state = (states || {})[COUNT_FEEDS[kind]];
      known[kind] = Boolean(connected) && (state === "live" || state === "quiet");
    });
    return known;
  }
  function hotspotCounts(areas, calls, alerts, now, activeS, known) {
    var kinds = {
      calls: calls.filter(function (c) { return OPEN[c.status] === 1; }),
      alerts: alerts.filter(function (a) {
        return a.detected_time != null && now - a.detected_time <= activeS;
      }),
    };
    var unplaced = {};
    Object.keys(kinds).forEach(function (kind) {
      unplaced[kind] = kinds[kind].some(function (x) { return !hasPosition(x); });
    });
    return areas.map(function (area) {
      var row = {name: area.name};
      Object.keys(kinds).forEach(function (kind) {
        var inside = 0;
        kinds[kind].forEach(function (x) {
          if (hasPosition(x) && hotspotContains(area, x.lat, x.lon)) { inside += 1; }
        });
        row[kind] = known[kind] ? inside : null;
        row[kind + "_floor"] = Boolean(known[kind]) && unplaced[kind];
      });
      return row;
    });
  }

  // --- small DOM helpers ------------------------------------------------------------------
  var ESC = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"};
  function esc(text) {
    return text == null ? "" : String(text).replace(/[&<>"']/g, function (ch) { return ESC[ch]; });
  }
  function el(id) { return document.getElementById(id); }
  function setText(id, text) {
    var node = el(id);
    if (node && node.textContent !== String(text)) { node.textContent = text; }
  }
  function nowS() { return Date.now() / 1000; }
  function km(m) { return window.dispatchDisplay.distance(m); }

  // --- state intake -----------------------------------------------------------------------
  function entityList(value) {
    if (!value) { return []; }
    if (Array.isArray(value)) { return value; }
    return Object.keys(value).map(function (k) { return value[k]; });
  }
  function signature(kind, x) {
    if (kind === "calls") {
      return [x.status, x.priority, x.updated_time, x.lat, x.lon, x.address, x.call_type,
              x.category, (x.units || []).join(","), workText(x)].join("|");
    }
    if (kind === "units") {
      return [x.status, x.lat, x.lon, x.time, x.callsign, x.call_id].join("|");
    }
    if (kind === "alerts") {
      return [x.detected_time, x.rounds, x.lat, x.lon, x.address, x.alert_type].join("|");
    }
    return [x.status, x.partner, x.resource_name, x.stream_url, x.lat, x.lon].join("|");
  }
  /* Replace one kind's items with ``list``; return ids added, changed and removed. */
  function intake(kind, list) {
    var spec = KINDS[kind], items = S.items[kind], sigs = S.sigs[kind];
    var next = new Map(), diff = {added: [], changed: [], removed: []};
    for (var i = 0; i < list.length; i++) {
      var x = list[i];
      if (!x || x[spec.id] == null || !spec.keep(x)) { continue; }
      var id = String(x[spec.id]);
      next.set(id, x);
      var prev = items.get(id);
      if (prev === x) { continue; }
      var sig = signature(kind, x);
      if (prev === undefined) { diff.added.push(id); } else if (sigs.get(id) !== sig) {
        diff.changed.push(id);
      }
      sigs.set(id, sig);
    }
    items.forEach(function (_x, id) {
      if (!next.has(id)) { diff.removed.push(id); sigs.delete(id); }
    });
    S.items[kind] = next;
    diff.any = diff.added.length + diff.changed.length + diff.removed.length > 0;
    return diff;
  }
  /* Take only ``ids`` of one kind from ``byId`` (live.js's state, keyed by id): the cost
   * follows what changed, not the size of the board. */
  function intakeIds(kind, byId, ids) {
    var spec = KINDS[kind], items = S.items[kind], sigs = S.sigs[kind];
    var diff = {added: [], changed: [], removed: []};
    for (var i = 0; i < ids.length; i++) {
      var id = String(ids[i]), x = byId[ids[i]], prev = items.get(id);
      if (!x || !spec.keep(x)) {
        if (prev !== undefined) { items.delete(id); sigs.delete(id); diff.removed.push(id); }
        continue;
      }
      items.set(id, x);
      // No identity shortcut here: a call's work record (live.js marks the call) changes
      // how it is shown while the call object itself stays the same.
      var sig = signature(kind, x);
      if (prev === undefined) { diff.added.push(id); } else if (sigs.get(id) !== sig) {
        diff.changed.push(id);
      }
      sigs.set(id, sig);
    }
    diff.any = diff.added.length + diff.changed.length + diff.removed.length > 0;
    return diff;
  }

  // --- map --------------------------------------------------------------------------------
  /* Markers are drawn on one canvas by assets/wall-marks.js (S.marks); S.markers[kind] is
   * its id -> mark map, what is on the map now. Leaflet keeps the boundaries and names. */
  function lookOf(kind, x) {
    if (kind === "calls") {
      return {shape: "call", priority: x.priority, pending: x.status === "pending",
              tag: x.qol ? (S.config.category_abbrev[x.category] || "QOL") : ""};
    }
    if (kind === "units") {
      return {shape: "unit", status: x.status, stale: unitStale(x, nowS()),
              letter: (S.config.unit_status[x.status] || ["?"])[0]};
    }
    if (kind === "alerts") { return {shape: "shot", rounds: x.rounds || 1}; }
    return {shape: "share"};
  }
  /* A unit not heard from for unit_stale_s: where it is drawn may be long behind it. */
  function unitStale(unit, now) { return unit.time == null || now - unit.time > S.config.unit_stale_s; }
  /* Every look a call or unit can have, for S.marks.prepare. */
  function expectedLooks() {
    var looks = [], tags = [""].concat(Object.keys(S.config.category_abbrev).map(function (c) {
      return S.config.category_abbrev[c];
    }));
    [1, 2, 3, 4, 5].forEach(function (priority) {
      [true, false].forEach(function (pending) {
        tags.forEach(function (tag) {
          looks.push({shape: "call", priority: priority, pending: pending, tag: tag});
        });
      });
    });
    Object.keys(S.config.unit_status).forEach(function (status) {
      [false, true].forEach(function (stale) {
        looks.push({shape: "unit", status: status, stale: stale,
                    letter: S.config.unit_status[status][0]});
      });
    });
    [1, 2, 3, 4, 5, 6, 7, 8, 9].forEach(function (rounds) {
      looks.push({shape: "shot", rounds: rounds});
    });
    looks.push({shape: "share"});
    return looks;
  }
  function prepareMarks() {
    if (S.marks && S.config) { S.marks.prepare(expectedLooks()); }  // cached: cheap again
  }
  function drawMarker(kind, id) {
    var x = S.items[kind].get(id);
    if (!x || !hasPosition(x)) { removeMarker(kind, id); return; }
    var look = lookOf(kind, x), alpha = kind === "alerts" ?
      alertOpacity(nowS() - x.detected_time, S.config.alert_active_s) : (look.stale ? 0.6 : 1);
    S.marks.set(kind, id, x.lat, x.lon, look, alpha,
                kind === "units" ? {text: String(x.callsign || x.unit_id),
                                    rank: labelRank(x, look.stale)} : null);
  }
  /* Which units' callsigns the map shows first (wall-marks.js places as many as fit): the
   * ones the gunshot banner suggests, then units on a P1/P2 call, then busy, then free,
   * then out of service; a stale unit after every current one. */
  var STATUS_RANK = {dispatched: 2, en_route: 2, on_scene: 2, available: 3, out_of_service: 4};
  function labelRank(unit, stale) {
    var id = String(unit.unit_id);
    var rank = S.bannerUnits && S.bannerUnits.has(id) ? 0 :
      (S.urgentUnits && S.urgentUnits.has(id) ? 1 : (STATUS_RANK[unit.status] || 4));
    return stale ? rank + 10 : rank;
  }
  function removeMarker(kind, id) { if (S.marks) { S.marks.remove(kind, id); } }
  function updateMap(kind, diff) {
    if (!S.marks) { return; }
    diff.removed.forEach(function (id) { removeMarker(kind, id); });
    diff.added.forEach(function (id) { drawMarker(kind, id); });
    diff.changed.forEach(function (id) { drawMarker(kind, id); });
  }
  function drawWholeMap() {
    Object.keys(KINDS).forEach(function (kind) {
      S.items[kind].forEach(function (_x, id) { drawMarker(kind, id); });
    });
    S.marks.draw();
  }
  /* Tell listeners (tests, the latency benchmark) which new calls this frame put on the
   * map: the moment their marker is drawn, as a DOM observer saw DOM markers before. */
  function reportDrawn(callDiff) {
    var root = el("wall-root");
    if (!root || !callDiff.added.length) { return; }
    var shown = callDiff.added.filter(function (id) { return S.markers.calls.has(id); });
    if (shown.length) {
      root.dispatchEvent(new CustomEvent("wall:drawn", {bubbles: true, detail: {calls: shown}}));
    }
  }

  // --- call queue -------------------------------------------------------------------------
  /* Who took a call on a tablet, or how it was handled (the dashboard's own records). */
  function workText(c) {
    var work = (window.dispatchLive && window.dispatchLive.work || {})[c.call_id];
    if (!work) { return ""; }
    if (work.handled) {
      return "HANDLED " + ((S.config && S.config.outcomes || {})[work.handled.outcome] ||
        work.handled.outcome) + " · " + work.handled.by;
    }
    return work.claimed_by ? "TAKEN · " + work.claimed_by : "";
  }
  function rowHtml(c) {
    var abbr = c.qol ? (S.config.category_abbrev[c.category] || "QOL") : "";
    var units = (c.units || []).slice(0, 3).join(" ");
    var where = [c.address, c.neighborhood || c.district].filter(Boolean).join(" · ");
    return '<span class="wq-prio p' + esc(c.priority) + '">P' + esc(c.priority) + "</span>" +
      '<span class="wq-main"><span class="wq-type">' + esc(c.call_type || c.category) +
      "</span>" + (abbr ? ' <span class="wq-qol">' + esc(abbr) + "</span>" : "") +
      '<span class="wq-addr">' + esc(where) + "</span></span>" +
      '<span class="wq-status">' + esc(STATUS_SHORT[c.status] || c.status) +
      (units ? '<span class="wq-units">' + esc(units) + "</span>" : "") +
      (workText(c) ? '<span class="wq-work">' + esc(workText(c)) + "</span>" : "") + "</span>" +
      '<span class="wq-age"></span>';
  }
  var LEVEL_MARK = {late: "!! ", warn: "! ", ok: "", assigned: ""};
  function paintAge(row, call, now) {
    var level = agingLevel(call, now, S.config.pending_targets, S.config.warn_fraction);
    if (row._level !== level) {
      row.className = "wq-row lvl-" + level;
      row._level = level;
    }
    var text = LEVEL_MARK[level] + formatAge(now - call.received_time);
    if (row._age !== text) { row.lastChild.textContent = text; row._age = text; }
  }
  /* Units on an open P1 or P2 call: their callsigns come next after the banner's. */
  function markUrgentUnits() {
    var ids = [];
    S.items.calls.forEach(function (c) {
      if ((c.priority || 5) <= 2) { (c.units || []).forEach(function (u) { ids.push(String(u)); }); }
    });
    ids.sort();
    var key = ids.join("\n");
    if (S.urgentKey === key) { return; }
    var before = S.urgentUnits || new Set();
    S.urgentKey = key;
    S.urgentUnits = new Set(ids);
    if (!S.marks) { return; }
    new Set(Array.from(before).concat(ids)).forEach(function (id) {
      if (S.items.units.has(id)) { drawMarker("units", id); }
    });
  }
  function updateQueue() {
    markUrgentUnits();
    var list = el("wall-queue-list");
    if (!list) { return; }
    var view = queueRows(Array.from(S.items.calls.values()), S.rowsFit);
    yieldSharesTo(view);
    var shown = view.shown, keep = new Set(), now = nowS();
    S.hidden = view.hidden;
    for (var i = 0; i < shown.length; i++) {
      var c = shown[i], id = String(c.call_id), row = S.rows.get(id);
      var sig = S.sigs.calls.get(id);
      if (!row) {
        row = document.createElement("div");
        row.setAttribute("data-call-id", id);
        S.rows.set(id, row);
      }
      if (row._sig !== sig) { row.innerHTML = rowHtml(c); row._sig = sig; row._age = null; }
      paintAge(row, c, now);
      if (list.children[i] !== row) { list.insertBefore(row, list.children[i] || null); }
      keep.add(id);
    }
    S.rows.forEach(function (row, id) {
      if (!keep.has(id)) { row.remove(); S.rows.delete(id); }
    });
  }
  function updateQueueCounts() {
    var open = S.items.calls.size, pending = 0, hidden = S.hidden || {};
    S.items.calls.forEach(function (c) { if (c.status === "pending") { pending += 1; } });
    setText("wall-queue-count", open + " open · " + pending + " pending");
    // What did not fit, per priority: a commander knows what is below the fold.
    var parts = Object.keys(hidden).map(function (p) { return hidden[p] + " " + p; });
    setText("wall-queue-more", parts.length ? "Not shown: " + parts.join(" · ") :
      (open ? "" : "No open calls"));
  }
  /* Counts (KPI tiles, the queue's "N open" lines) change with nearly every event of a
   * burst. Repainted every frame, they widened each frame's damage from the map to the whole
   * screen, about a third of a wall's CPU at 200 events/s. So a change after a quiet spell
   * shows at once, and changes during a burst at most every COUNTS_INTERVAL_MS; the queue's
   * rows and the map still follow every frame. */
  function updateCounts() {
    S.countsDue = true;
    var wait = S.countsAt + COUNTS_INTERVAL_MS - performance.now();
    if (wait <= 0) { flushCounts(); return; }
    if (!S.countsTimer) {
      // Normally a frame after the interval flushes them; this covers the end of a burst.
      S.countsTimer = setTimeout(flushCounts, wait + FRAME_INTERVAL_MS);
    }
  }
  function flushCounts() {
    if (S.countsTimer) { clearTimeout(S.countsTimer); S.countsTimer = null; }
    if (!S.countsDue) { return; }
    S.countsDue = false;
    S.countsAt = performance.now();
    updateQueueCounts();
    updateKpis();
    updateHotspots(nowS());
  }
  function tickQueue(now) {
    S.rows.forEach(function (row, id) {
      var c = S.items.calls.get(id);
      if (c) { paintAge(row, c, now); }
    });
  }
  /* Urgent calls before video links: while a P1 or P2 call has no row, the shares' list
   * gives its room to the queue (its heading keeps the count; the kiosk's video view still
   * lists them). It comes back only when every P1/P2 would still have a row with the list
   * back, so the two never see-saw. The resize that follows re-runs updateQueue. Rows keep
   * P1/P2 first (keepRank), so they all fit exactly when there are no more than the rows. */
  function yieldSharesTo(view) {
    var urgent = (view.hidden.P1 || 0) + (view.hidden.P2 || 0);
    view.shown.forEach(function (c) { if (keepRank(c) === 0) { urgent += 1; } });
    var crowded = urgent > (S.crowded ? S.rowsFit - S.sharesRows : S.rowsFit);
    if (crowded === !!S.crowded) { return; }
    S.crowded = crowded;
    var side = el("wall-side");
    if (side) { side.classList.toggle("wall-crowded", crowded); }
    updateSharesCount();
  }
  function updateSharesCount() {
    var n = S.items.shares.size;
    setText("wall-shares-count", S.crowded && n ? n + " · listed when urgent calls fit"
      : String(n));
  }
  /* How many rows fit, recomputed only when the list's box changes (the banner opening
   * above it, a resize) so renders never force a layout just to count rows. */
  function watchQueueSize() {
    var list = el("wall-queue-list");
    if (!list || list === S.watchedList) { return; }
    S.watchedList = list;
    var rowVh = parseFloat(getComputedStyle(list).getPropertyValue("--wq-row-h")) || 5.6;
    var sharesVh = parseFloat(getComputedStyle(list).getPropertyValue("--ws-max-h")) || 12.8;
    S.sharesRows = Math.ceil(sharesVh / rowVh);  // at most the rows the shares take back
    new ResizeObserver(function (entries) {
      var height = entries[entries.length - 1].contentRect.height;
      var fit = Math.max(1, Math.floor(height / (window.innerHeight * rowVh / 100)));
      if (fit !== S.rowsFit) { S.rowsFit = fit; updateQueue(); updateQueueCounts(); }
    }).observe(list);
  }

  // --- KPI tiles --------------------------------------------------------------------------
  function updateKpis() {
    var open = 0, pending = 0, p1 = 0, p2 = 0, backlog = {};
    S.config.districts.forEach(function (d) { backlog[d] = 0; });
    S.items.calls.forEach(function (c) {
      open += 1;
      if (c.status === "pending") {
        pending += 1;
        if (c.priority === 1) { p1 += 1; }
        if (c.priority === 2) { p2 += 1; }
      }
      if (c.qol) { var d = c.district || "Unknown"; backlog[d] = (backlog[d] || 0) + 1; }
    });
    var available = 0, total = 0;
    S.items.units.forEach(function (u) {
      total += 1;
      if (u.status === "available") { available += 1; }
    });
    setText("wall-kpi-open", open);
    setText("wall-kpi-open-note", pending + " pending");
    setText("wall-kpi-p1", p1);
    setText("wall-kpi-p2", p2);
    el("wall-kpi-p1").classList.toggle("wall-alarm", p1 > 0);
    setText("wall-kpi-units", available);
    setText("wall-kpi-units-note", "of " + total + " units");
    var qol = el("wall-kpi-qol"), html = Object.keys(backlog).map(function (d) {
      return '<span class="wq-district"><b>' + esc(backlog[d]) + "</b> " + esc(d) + "</span>";
    }).join("");
    if (qol && qol._html !== html) { qol.innerHTML = html; qol._html = html; }
  }

  // --- gunshot banner ---------------------------------------------------------------------
  function newestAlert(now) {
    var best = null;
    S.items.alerts.forEach(function (a) {
      if (now - a.detected_time > S.config.banner_s) { return; }
      if (!best || a.detected_time > best.detected_time) { best = a; }
    });
    return best;
  }
  function updateBanner(now) {
    var banner = el("wall-banner");
    if (!banner) { return; }
    var alert = newestAlert(now);
    if (!alert) {
      if (!banner.hidden) { banner.hidden = true; banner.innerHTML = ""; S.bannerAlert = null; }
      markBannerUnits([]);
      return;
    }
    var units = nearestUnits(alert.lat, alert.lon, Array.from(S.items.units.values()), 3,
                             S.config.speed_kmh, S.config.suggest.gunshot ||
                             S.config.suggest["*"]);
    markBannerUnits(units);
    var calls = linkedCalls(alert, Array.from(S.items.calls.values()),
                            S.config.link_radius_m, S.config.link_window_s);
    var where = [alert.address, alert.neighborhood || alert.district].filter(Boolean).join(", ");
    var unitHtml = units.length ? units.map(function (u) {
      return "<li><b>" + esc(u.callsign || u.unit_id) + '</b> <span class="wb-kind">' +
        esc(S.config.unit_kinds[u.unit_kind] || u.unit_kind || "?") + "</span> " +
        esc(km(u.distance_m)) + " · ~" + esc(formatAge(u.eta_s)) + "</li>";
    }).join("") : "<li>No available unit suited to gunfire</li>";
    var callHtml = calls.length ? calls.map(function (c) {
      return '<li data-call-id="' + esc(c.call_id) + '"><b>P' + esc(c.priority) + "</b> " +
        esc(c.call_type || c.category) + " · " + esc(c.address) + " · " +
        esc(km(c.distance_m)) + "</li>";
    }).slice(0, BANNER_CALLS).join("") +
      (calls.length > BANNER_CALLS ? '<li class="wb-more">+ ' + (calls.length - BANNER_CALLS) +
       " more</li>" : "") : "<li>None yet</li>";
    // Compact (a title line, a heading, three lines a side) so the queue below keeps
    // most of its rows while the banner is up.
    var html = '<div class="wb-title"><span class="wb-icon">⚠</span> GUNSHOT ALERT · ' +
      esc(alert.rounds || 1) + " round" + (alert.rounds === 1 ? "" : "s") + " · " +
      '<span class="wb-age"></span> ago · ' + esc(where) + '</div><div class="wb-cols"><div>' +
      // The ETA is what it is: a straight line at an assumed road speed, not a route.
      "<h4>Nearest suited · ETA: straight line at " + esc(S.config.speed_kmh) +
      " km/h</h4><ol>" + unitHtml +
      "</ol></div><div><h4>Calls ≤ " + esc(S.config.link_radius_m) + " m · " +
      esc(S.config.link_window_s / 60) + " min</h4><ul>" + callHtml + "</ul></div></div>";
    if (banner._html !== html) { banner.innerHTML = html; banner._html = html; }
    banner.setAttribute("data-alert-id", alert.alert_id);
    banner.hidden = false;
    S.bannerAlert = alert;
    tickBanner(now);
  }
  /* The banner's suggested units get their callsigns on the map first. */
  function markBannerUnits(units) {
    var ids = units.map(function (u) { return String(u.unit_id); }), key = JSON.stringify(ids);
    if (S.bannerUnitsKey === key) { return; }
    var before = S.bannerUnits || new Set();
    S.bannerUnitsKey = key;
    S.bannerUnits = new Set(ids);
    if (!S.marks) { return; }
    new Set(Array.from(before).concat(Array.from(S.bannerUnits))).forEach(function (id) {
      if (S.items.units.has(id)) { drawMarker("units", id); }
    });
    S.marks.draw();
  }
  function tickBanner(now) {
    var banner = el("wall-banner");
    if (!S.bannerAlert || !banner) { return; }
    var age = banner.querySelector(".wb-age");
    if (age) { age.textContent = formatAge(now - S.bannerAlert.detected_time); }
  }

  // --- shares, feeds, clock ---------------------------------------------------------------
  function sortedShares() {
    return Array.from(S.items.shares.values()).sort(function (a, b) {
      return (b.start_time || 0) - (a.start_time || 0);
    });
  }
  function sharesHtml() {
    var shares = sortedShares();
    return shares.length ? shares.map(function (s) {
      var link = s.stream_url && /^(https?|rtsp|wss?):\/\//.test(s.stream_url) ?
        '<a class="ws-link" href="' + esc(s.stream_url) +
        '" target="_blank" rel="noopener noreferrer">Open stream ↗</a>' :
        '<span class="wall-muted">no stream link</span>';
      return '<div class="ws-row" data-share-id="' + esc(s.share_id) + '">' +
        '<span class="ws-icon">' + CAMERA_SVG + "</span>" +
        '<span class="ws-main"><b>' + esc(s.partner) + "</b>" +
        '<span class="ws-cam">' + esc(s.resource_name) + "</span></span>" + link + "</div>";
    }).join("") : '<div class="wall-muted">No active shares</div>';
  }
  function updateShares() {
    var box = el("wall-shares");
    if (!box) { return; }
    var html = sharesHtml();
    if (box._html !== html) { box.innerHTML = html; box._html = html; }
    updateSharesCount();
    if (currentView().kind === "shares") { paintViewPanel(); }
  }
  /* Until the first answer of which sources are alive (S.alive null), a feed with nothing
   * recent may be QUIET: not STALE or "no data" yet, but being checked. */
  function checking(h) {
    return S.alive === null && (h.state === "stale" || h.state === "none") ?
      {source: h.source, state: "unknown", text: "checking"} : h;
  }
  function updateFeeds(now) {
    var box = el("wall-feeds");
    if (!box) { return; }
    var labels = {};
    S.config.sources.forEach(function (pair) { labels[pair[0]] = pair[1]; });
    var health = feedHealth(S.freshness, S.config.sources.map(function (p) { return p[0]; }),
                            now, S.config.feed_limits, S.alive).map(checking);
    var mark = {live: "●", quiet: "◐", stale: "✖", none: "○", unknown: "?"};
    // What the feeds did since the last update is unknown: never "live" on a dead link.
    var html = liveLost() ? '<span class="wf wf-unknown">? Feeds unknown</span>' :
      health.map(function (h) {
      return '<span class="wf wf-' + h.state + '" data-source="' + esc(h.source) + '">' +
        mark[h.state] + " " + esc(labels[h.source]) + " " + esc(h.text) + "</span>";
    }).join("");
    if (box._html !== html) { box.innerHTML = html; box._html = html; }
    el("wall-root").classList.toggle("wall-feed-stale", !liveLost() && health.some(function (h) {
      return h.state === "stale";
    }));
  }
  function tickAlerts(now) {
    if (!S.marks) { return; }
    // Units turn stale with time alone: redraw those whose look just changed (set() skips
    // a mark whose look is the same).
    S.items.units.forEach(function (u, id) {
      var mark = S.marks.items.units.get(id);
      if (mark && mark.look.stale !== unitStale(u, now)) { drawMarker("units", id); }
    });
    S.items.alerts.forEach(function (a, id) {
      if (now - a.detected_time > S.config.alert_active_s) { removeMarker("alerts", id); return; }
      drawMarker("alerts", id);  // fading: a new opacity every second
    });
    S.marks.draw();
  }
  /* Push mode with live updates lost (assets/live.js): nothing on the board is current. */
  function liveLost() {
    var live = window.dispatchLive;
    return Boolean(S.root && S.root.getAttribute("data-mode") === "push" && live && live.lost);
  }
  function paintClock(now, lost) {
    var clock = el("wall-clock");
    if (!clock) { return; }
    clock.classList.toggle("wall-clock-stale", lost);
    var heard = window.dispatchLive && window.dispatchLive.lastHeardAt;
    // Lost: the clock tells how old the board is, not what time it is.
    setText("wall-clock", !lost ? S.clockFmt.format(new Date()) :
      (heard ? "Updated " + formatAge(now - heard / 1000) + " ago" : "No live data yet"));
  }
  /* Night palette: from hours[0] to hours[1] city time (over midnight when from > to). */
  function nightAt(hour, hours) {
    if (!hours || hours.length !== 2 || hours[0] === hours[1]) { return false; }
    return hours[0] < hours[1] ? hour >= hours[0] && hour < hours[1] :
      hour >= hours[0] || hour < hours[1];
  }
  function applyPalette() {
    if (!S.root) { return; }
    var hour = Number(S.hourFmt.format(new Date())) % 24;
    var want = S.config.palette || (nightAt(hour, S.config.night_hours) ? "night" : "day");
    if (S.root.getAttribute("data-palette") === want) { return; }
    S.root.setAttribute("data-palette", want);
    // The markers' sprites are measured from the CSS: measure them again in the new colours.
    if (S.marks) { S.marks.relayout(); }
  }
  function tick() {
    var now = nowS();
    applyPalette();
    paintClock(now, liveLost());
    tickQueue(now);
    updateFeeds(now);
    tickAlerts(now);
    if (S.rendered > 0) { updateHotspots(now); }
    if (currentView().kind === "response") { paintViewPanel(); }
    if (S.bannerAlert && now - S.bannerAlert.detected_time > S.config.banner_s) {
      updateBanner(now);
    } else { tickBanner(now); }
  }

  // --- kiosk rotation --------------------------------------------------------------------
  /* ?rotate=city,north,response,shares&every=30 (or DISPATCH_WALL_ROTATE): the map shows the
   * city or one district, or a panel over it shows today's response times or the active
   * video shares; every ``every_s`` the next view, on a timer, never a reload. Live data
   * keeps flowing into everything (the queue, tiles and counts stay on screen), and the
   * connection-lost banner stays above it all. */
  function rotationViews() {
    return (S.config && S.config.rotation && S.config.rotation.views) || [];
  }
  function currentView() {
    var views = rotationViews();
    return views.length ? views[(S.viewIndex || 0) % views.length] : {id: "city", kind: "city"};
  }
  function viewBounds() {
    var view = currentView();
    if (view.kind !== "district") { return S.cityBounds; }
    var bounds = null, districtOf = S.config.district_of || {};
    Object.keys(S.hoodBounds || {}).forEach(function (name) {
      if (districtOf[name] === view.district) { bounds = grow(bounds, S.hoodBounds[name]); }
    });
    return bounds || S.cityBounds;
  }
  function startRotation() {
    var views = rotationViews();
    if (!views.length) { return; }
    S.viewIndex = 0;
    setInterval(function () {
      S.viewIndex = (S.viewIndex + 1) % views.length;
      applyView();
    }, S.config.rotation.every_s * 1000);
  }
  function applyView() {
    var views = rotationViews(), view = currentView(), chip = el("wall-view");
    if (!views.length || !S.root) { return; }
    S.root.setAttribute("data-view", view.id);
    if (chip) {
      chip.hidden = false;
      setText("wall-view", view.label + " · " + ((S.viewIndex || 0) + 1) + "/" + views.length);
      chip.title = S.config.rotation.unknown.length ?
        "Not a view: " + S.config.rotation.unknown.join(", ") : "";
    }
    paintViewPanel();
    if (S.map && S.cityBounds) { fitView(S.map); }
  }
  /* The response or video view's panel over the map, repainted as its data changes. */
  function paintViewPanel() {
    var panel = el("wall-view-panel"), view = currentView();
    if (!panel) { return; }
    var html = "";
    if (view.kind === "response") {
      var tile = el("wall-kpi-response");
      html = "<h2>Response today · call → scene</h2>" +
        '<div class="wv-response">' + (tile ? tile.innerHTML : "") + "</div>";
    } else if (view.kind === "shares") {
      html = "<h2>Video shares · " + S.items.shares.size + " active</h2>" +
        '<div class="wv-shares">' + sharesHtml() + "</div>";
    }
    if (panel._html !== html) { panel.innerHTML = html; panel._html = html; }
    panel.hidden = !html;
  }

  // --- sound ------------------------------------------------------------------------------
  function soundOn() {
    try { return window.localStorage.getItem("wall.sound") === "on"; } catch (e) { return false; }
  }
  function audioContext() {
    if (!S.audio) {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) { return null; }
      S.audio = new Ctx();
    }
    if (S.audio.state === "suspended") { S.audio.resume(); }
    return S.audio;
  }
  function beep(pattern) {
    if (!soundOn()) { return; }
    var ctx = audioContext();
    if (!ctx) { return; }
    pattern.forEach(function (note, i) {
      var osc = ctx.createOscillator(), gain = ctx.createGain();
      var start = ctx.currentTime + i * 0.22;
      osc.type = "square";
      osc.frequency.value = note;
      gain.gain.setValueAtTime(0.15, start);
      gain.gain.exponentialRampToValueAtTime(0.001, start + 0.18);
      osc.connect(gain).connect(ctx.destination);
      osc.start(start);
      osc.stop(start + 0.2);
    });
    window.wallBeeps = (window.wallBeeps || 0) + 1;
  }
  function announce(callDiff, alertDiff) {
    // Only what arrives after the first drawing: opening the page must not beep for
    // everything already on the board.
    var shot = alertDiff.added.length > 0, p1 = callDiff.added.some(function (id) {
      var c = S.items.calls.get(id);
      return c && c.priority === 1;
    });
    if (shot) { beep([1320, 990, 1320]); } else if (p1) { beep([880, 880]); }
  }

  // --- setup and the callback -------------------------------------------------------------
  function init(config) {
    S.config = config;
    S.clockFmt = new Intl.DateTimeFormat("en-US", {timeZone: config.timezone,
      weekday: "short", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
    S.hourFmt = new Intl.DateTimeFormat("en-GB", {timeZone: config.timezone, hour: "2-digit",
                                                  hourCycle: "h23"});
    watchQueueSize();
    document.addEventListener("pointerdown", function () {
      if (soundOn()) { audioContext(); }
    });
    document.addEventListener("live:status", function () { if (S.root) { tick(); } });
    setInterval(tick, 1000);
    startRotation();
    S.ready = true;
    // The map may have been made before the page's settings arrived.
    if (S.map && !(S.hotspots && S.hotspots.length)) { drawHotspots(S.map); }
  }

  function adoptRoot() {
    var root = el("wall-root");
    if (root && S.root !== root) {
      // Opened again in the same tab: the rows drawn before belong to a removed page.
      S.root = root;
      S.rows = new Map();
      S.rendered = 0;
      watchQueueSize();
      applyView();
    }
    return root;
  }

  /* Draw what ``diffs`` says changed (everything on the first render of a page). */
  function draw(diffs, freshnessChanged) {
    var t0 = performance.now(), first = S.rendered === 0, now = nowS();
    if (first) { prepareMarks(); }
    Object.keys(KINDS).forEach(function (kind) { updateMap(kind, diffs[kind]); });
    if (S.marks) { S.marks.draw(); }
    reportDrawn(diffs.calls);
    if (diffs.calls.any || first) { updateQueue(); }
    if (first) { updateQueueCounts(); updateKpis(); } else if (diffs.calls.any || diffs.units.any) {
      updateCounts();
    }
    if (diffs.shares.any || first) { updateShares(); }
    if (diffs.alerts.any || diffs.units.any || diffs.calls.any || first) { updateBanner(now); }
    if (!first) { announce(diffs.calls, diffs.alerts); }
    // The clock and ages tick every second on their own; only new feed data repaints here.
    if (first) { tick(); } else if (freshnessChanged) { updateFeeds(now); }
    S.rendered += 1;
    if (first) { updateHotspots(now); }
    var took = performance.now() - t0;
    window.wallRenderTimes.push(took);
    if (window.wallRenderTimes.length > 20000) { window.wallRenderTimes.splice(0, 10000); }
    if (first) { window.wallFirstRenderAt = performance.now(); }
    if (window.wallFirstDataRenderAt === undefined && S.items.calls.size + S.items.units.size) {
      window.wallFirstDataRenderAt = performance.now();  // first board with something on it
    }
  }

  /* live.js subscriber (push mode): once per animation frame, only the changed ids. */
  function onLive(live, changed) {
    var root = S.ready ? adoptRoot() : null;
    if (!root || root.getAttribute("data-mode") !== "push") {
      // Another page in this tab now: stop drawing, give live-store its normal pace back.
      if (S.unsubscribe) { S.unsubscribe(); S.unsubscribe = null; }
      return;
    }
    var t0 = performance.now(), whole = changed.snapshot || S.rendered === 0, diffs = {};
    Object.keys(KINDS).forEach(function (kind) {
      diffs[kind] = whole ? intake(kind, entityList(live[kind])) :
        intakeIds(kind, live[kind], Object.keys(changed[kind]));
    });
    var fresh = whole || Object.keys(changed.freshness).length > 0;
    if (fresh) { S.freshness = live.freshness; }
    var intakeMs = performance.now() - t0;
    if (!whole && !diffs.calls.any && !diffs.units.any && !diffs.alerts.any &&
        !diffs.shares.any && !fresh) { return; }
    draw(diffs, fresh);
    window.wallRenderTimes[window.wallRenderTimes.length - 1] += intakeMs;
  }

  function render(data, config) {
    var noUpdate = window.dash_clientside.no_update;
    if (!config) { return noUpdate; }
    var t0 = performance.now();
    if (!S.ready) { init(config); }
    var root = adoptRoot();
    var live = window.dispatchLive;
    if (root && root.getAttribute("data-mode") === "push" && live && live.subscribe) {
      // Push: live.js calls onLive every frame; the store's copy is not needed here.
      if (!S.unsubscribe) {
        S.unsubscribe = live.subscribe(onLive, {frameIntervalMs: FRAME_INTERVAL_MS,
                                                store: false});
      }
      return noUpdate;
    }
    if (!data) { tick(); return noUpdate; }
    var diffs = {};
    Object.keys(KINDS).forEach(function (kind) {
      diffs[kind] = intake(kind, entityList(data[kind]));
    });
    if (data.freshness) { S.freshness = data.freshness; }
    var intakeMs = performance.now() - t0;
    draw(diffs, Boolean(data.freshness));
    window.wallRenderTimes[window.wallRenderTimes.length - 1] += intakeMs;
    return noUpdate;
  }

  /* wall-sources (every 10 s): which feeds' sources are alive, from their heartbeats. */
  function sources(data) {
    S.alive = data || {};
    if (S.ready && S.root) { updateFeeds(nowS()); }
    return window.dash_clientside.no_update;
  }

  function toggleSound(nClicks) {
    var on = soundOn();
    if (nClicks) {
      on = !on;
      try { window.localStorage.setItem("wall.sound", on ? "on" : "off"); } catch (e) { /* private mode */ }
      if (on) { audioContext(); beep([660]); }
    }
    var button = el("wall-sound");
    if (button) { button.classList.toggle("wall-sound-on", on); }
    return on ? "♪ Sound on" : "Sound off";
  }

  // --- dash-leaflet functional props ------------------------------------------------------
  // Leaflet strokes are in screen pixels: scale them as the CSS scales text (4K = x2).
  function strokeScale() { return Math.max(1, (window.innerHeight || 1080) / 1080); }
  function boundaryStyle(feature, context) {
    var tiles = context && context.hideout && context.hideout.tiles;
    return {color: "#9fb3c8", weight: 2 * strokeScale(), opacity: 0.9, fillColor: "#18222e",
            fillOpacity: tiles ? 0.35 : 0.9};
  }
  /* The wall's map never pans or zooms once fitted. Without 3D transforms Leaflet places the
   * names and the boundaries' SVG with left/top, so they are painted with the page instead
   * of each being a compositing layer that every redraw of the markers composites again.
   * Only after the fit (fractional zoom needs 3D), only while this map lives (forgetMap puts
   * it back for the other pages' maps), and not under tiles (scaling them needs 3D). */
  function placeFlat(context) {
    var tiles = context && context.hideout && context.hideout.tiles;
    if (tiles || S.had3d !== undefined) { return; }
    S.had3d = window.L.Browser.any3d;
    window.L.Browser.any3d = false;
  }
  function forgetMap() {
    if (S.had3d !== undefined) { window.L.Browser.any3d = S.had3d; S.had3d = undefined; }
    if (S.marks) { S.marks.destroy(); }
    S.marks = null;
    S.map = null;
    S.markers = {calls: new Map(), units: new Map(), alerts: new Map(), shares: new Map()};
    S.labels = new Map();
  }
  function boundaryFeature(feature, layer, context) {
    if (context && context.map && S.map !== context.map) {
      // A new map (first load, or the page was opened again in this tab): markers and
      // names of the old map are gone with it.
      forgetMap();
      S.map = context.map;
      S.map.once("unload", forgetMap);  // the page was left: its map is gone
      placeFlat(context);
      S.map.createPane("wallLabels").style.zIndex = 590;  // names under the markers' canvas
      drawHotspots(S.map);
      S.marks = window.WallMarks.create(S.map, el("wall-root"));
      S.markers = S.marks.items;
      prepareMarks();
      drawWholeMap();
      S.cityBounds = null;
      S.hoodBounds = {};
      keepCityInView(S.map);
    }
    if (S.map && layer.getBounds) {
      S.cityBounds = grow(S.cityBounds, layer.getBounds());
      S.hoodBounds[(feature.properties || {}).name] = layer.getBounds();
    }
    var props = feature.properties || {}, name = props.name;
    if (!S.map || !name) { return; }
    // The name sits at the server's label point (pole of inaccessibility), not at the
    // polygon's centroid, in its own pane under the markers.
    var at = props.label || layer.getBounds().getCenter();
    var label = window.L.tooltip({permanent: true, direction: "center", pane: "wallLabels",
                                  className: "wall-hood-label", interactive: false})
      .setLatLng(at).setContent(esc(props.label_text || name));
    if (S.labels.has(name)) { S.map.removeLayer(S.labels.get(name)); }
    S.labels.set(name, label);
    label.addTo(S.map);
  }
  function grow(bounds, more) {
    return bounds ? bounds.extend(more) :
      window.L.latLngBounds(more.getSouthWest(), more.getNorthEast());
  }
  /* Room left of the city for the names of its western neighborhoods (they reach past the
   * outline): two letters of the wall's text. */
  function nameRoom() {
    return 2 * (parseFloat(getComputedStyle(el("wall-root") || document.body).fontSize) || 13);
  }
  /* The hot-spot panel (top right of the map) gets the width the city (or the district of a
   * rotating wall's view) leaves free at the scale it would have without the panel (a city
   * taller than wide leaves room beside it on a 16:9 screen), and the map is fitted left of
   * it, so the panel costs the map no scale. Where no room is free it lies over the corner. */
  function fitView(map) {
    var bounds = viewBounds();
    if (!bounds) { return; }
    var panel = el("wall-hotspots"), right = 0;
    if (panel) {
      var zoom = map.getBoundsZoom(bounds, false, window.L.point(24, 24));
      var wide = map.project(bounds.getNorthEast(), zoom).x -
        map.project(bounds.getSouthWest(), zoom).x;
      var free = Math.floor(map.getSize().x - wide - 24 - nameRoom());
      // Measured at its own width: squeezed into less, its names were cut to a letter.
      panel.style.maxWidth = "";
      right = panel.offsetWidth && panel.offsetWidth <= free ? panel.offsetWidth : 0;
      panel.style.maxWidth = right ? free + "px" : "";
      if (S.marks) {
        // No callsign under the panel.
        var frame = map.getContainer().getBoundingClientRect(), box = panel.getBoundingClientRect();
        S.marks.avoid(box.width ? [{x: box.left - frame.left, y: box.top - frame.top,
                                    w: box.width, h: box.height}] : []);
      }
    }
    map.fitBounds(bounds, {paddingTopLeft: [nameRoom(), 12],
                           paddingBottomRight: [right + 12, 12], animate: false});
  }
  /* The whole service area stays in view: Leaflet keeps its centre and zoom when its box
   * changes (the header wrapping, the banner, a resize), which cut off the south of the
   * city; refit the boundaries instead. */
  function keepCityInView(map) {
    var box = map.getContainer(), panel = el("wall-hotspots"), last = null;
    var observer = new ResizeObserver(function () {
      var size = box.clientWidth + "x" + box.clientHeight + "-" + (panel ? panel.offsetWidth : 0);
      if (size === last || S.map !== map || !S.cityBounds) { last = size; return; }
      last = size;
      map.invalidateSize({animate: false});
      fitView(map);
    });
    observer.observe(box);
    if (panel) { observer.observe(panel); }
  }

  // --- hot spots: the areas drawn to scale, their names and live counts ------------------
  var HOTSPOT_COLOUR = "#F0E442";  // Okabe-Ito yellow: clear of the priority palette
  /* Drawn from S.config.hotspots (wallview.hotspot_config) as they are counted: a corridor
   * is a stroke of twice its half-width with round ends and bends, which is exactly the
   * points within width_m of its centre line; circles and polygons as they are. */
  function drawHotspots(map) {
    S.hotspots = [];
    var areas = (S.config && S.config.hotspots) || [];
    if (!areas.length) { return; }
    map.createPane("wallHotspots").style.zIndex = 410;  // over the boundaries, under names
    areas.forEach(function (area) {
      var options = {pane: "wallHotspots", interactive: false, color: HOTSPOT_COLOUR,
                     className: "wall-hotspot"}, layer;
      if (area.shape === "corridor") {
        layer = window.L.polyline(area.points, Object.assign(options, {
          opacity: 0.5, lineCap: "round", lineJoin: "round"}));
      } else {
        Object.assign(options, {weight: 2 * strokeScale(), dashArray: "6 6", opacity: 0.9,
                                fillColor: HOTSPOT_COLOUR, fillOpacity: 0.14});
        layer = area.shape === "circle" ?
          window.L.circle(area.points[0], Object.assign(options, {radius: area.width_m})) :
          window.L.polygon(area.parts.map(function (rings) {
            return rings.map(function (ring) {
              return ring.map(function (v) { return [v[1], v[0]]; });
            });
          }), options);
      }
      layer.addTo(map);
      // Its short name on the map (above a corridor's band, so the calls in it stay in
      // sight), under the markers like the neighborhoods'; name and counts in the panel.
      var label = window.L.tooltip({permanent: true, pane: "wallLabels", interactive: false,
                                    direction: area.shape === "area" ? "center" : "top",
                                    className: "wall-hotspot-label"})
        .setLatLng(area.label).setContent(esc(area.short || area.name));
      label.addTo(map);
      S.hotspots.push({area: area, layer: layer, label: label});
    });
    map.on("zoomend moveend resize", fitHotspots);
    fitHotspots();
    updateHotspots(nowS());
  }
  /* Screen pixels of ``metres`` north of ``latlng`` at the map's zoom now. */
  function metresToPx(map, latlng, metres) {
    var a = map.latLngToContainerPoint(latlng);
    var b = map.latLngToContainerPoint([latlng[0] + metres / METERS_PER_DEGREE_LAT, latlng[1]]);
    return Math.abs(a.y - b.y);
  }
  function fitHotspots() {
    if (!S.map || !S.hotspots) { return; }
    S.hotspots.forEach(function (h) {
      h.band = h.area.shape === "area" ? 0 : metresToPx(S.map, h.area.points[0], 2 * h.area.width_m);
      if (h.area.shape === "corridor") { h.layer.setStyle({weight: Math.max(2, h.band)}); }
    });
    placeHotspotTags();
  }
  /* Where a hot spot's short name may go: beside its middle (above, below), or past either
   * end of a corridor, off the band so the calls in it stay in sight. */
  function tagSpots(h) {
    var a = h.area, half = (h.band || 0) / 2, spots = [[a.label, "top", [0, -half]],
                                                       [a.label, "bottom", [0, half]]];
    if (a.shape === "corridor") {
      var first = a.points[0], last = a.points[a.points.length - 1], west = first[1] < last[1];
      spots.push([first, west ? "left" : "right", [west ? -half : half, 0]]);
      spots.push([last, west ? "right" : "left", [west ? half : -half, 0]]);
    }
    return a.shape === "area" ? [[a.label, "center", [0, 0]]] : spots;
  }
  function overlaps(a, b) {
    return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  }
  /* Each name at its first place that touches no neighborhood name, no other hot spot's
   * name and stays inside the map; a name with no such place is left off the map (the
   * panel has it). Runs when the map's zoom or size changes, not per frame. */
  function placeHotspotTags() {
    var taken = Array.from(S.labels.values()).map(function (l) {
      return l.getElement() && l.getElement().getBoundingClientRect();
    }).filter(Boolean);
    var frame = S.map.getContainer().getBoundingClientRect();
    S.hotspots.forEach(function (h) {
      var placed = tagSpots(h).some(function (spot) {
        h.label.options.direction = spot[1];
        h.label.options.offset = window.L.point(spot[2][0], spot[2][1]);
        h.label.setLatLng(spot[0]);
        var node = h.label.getElement();
        if (!node) { return false; }
        node.style.visibility = "";
        var box = node.getBoundingClientRect();
        var fits = box.left >= frame.left && box.right <= frame.right && box.top >= frame.top &&
          box.bottom <= frame.bottom && !taken.some(function (t) { return overlaps(box, t); });
        if (fits) { taken.push(box); }
        return fits;
      });
      var node = h.label.getElement();
      if (node) { node.style.visibility = placed ? "" : "hidden"; }
      h.tagShown = placed;
    });
  }
  function countCell(n, floor) {
    return '<span class="whs-n">' + (n == null ? "?" : (floor ? "≥" : "") + esc(n)) + "</span>";
  }
  function hotspotRow(row, i) {
    var area = S.hotspots[i].area;
    return '<div class="whs-row' + (row.alerts ? " whs-shots" : "") + '" data-hotspot="' +
      esc(row.name) + '" data-calls="' + (row.calls == null ? "?" : esc(row.calls)) +
      '" data-alerts="' + (row.alerts == null ? "?" : esc(row.alerts)) + '">' +
      '<span class="whs-name" title="' + esc(row.name) + '">' + esc(area.short || row.name) +
      "</span>" +
      countCell(row.calls, row.calls_floor) + countCell(row.alerts, row.alerts_floor) + "</div>";
  }
  /* Counts of open calls and the last hour's gunshot alerts inside each hot spot; unknown
   * ("?") before the first data, with the live connection lost, or while the count's feed
   * is stale or has sent nothing (wallview.counts_known). */
  function updateHotspots(now) {
    if (!S.hotspots || !S.hotspots.length) { return; }
    var states = {};
    feedHealth(S.freshness, Object.keys(S.config.feed_limits), now, S.config.feed_limits,
               S.alive).forEach(function (h) { states[h.source] = h.state; });
    var known = countsKnown(states, S.rendered > 0 && !liveLost());
    var counts = hotspotCounts(S.hotspots.map(function (h) { return h.area; }),
                               Array.from(S.items.calls.values()),
                               Array.from(S.items.alerts.values()), now,
                               S.config.alert_active_s, known);
    var box = el("wall-hotspots"), html = '<div class="whs-row whs-head"><span>Hot spots' +
      '</span><span class="whs-n">Calls</span><span class="whs-n">Shots</span></div>' +
      counts.map(hotspotRow).join("");
    if (box && box._html !== html) { box.innerHTML = html; box._html = html; }
  }

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    wall: {
      render: render, toggleSound: toggleSound, sources: sources,
      boundaryStyle: boundaryStyle, boundaryFeature: boundaryFeature,
      hotspotContains: hotspotContains, hotspotCounts: hotspotCounts,
      countsKnown: countsKnown,
      agingLevel: agingLevel, queueOrder: queueOrder, queueRows: queueRows, formatAge: formatAge,
      nearestUnits: nearestUnits, linkedCalls: linkedCalls, alertOpacity: alertOpacity,
      feedHealth: feedHealth, haversineM: haversineM, nightAt: nightAt,
      _state: S,
    },
  });
})();
