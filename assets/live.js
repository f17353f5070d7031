/*
 * Live updates for every Dash page (see streams/state-contract.md, "Push protocol").
 *
 * A page that wants live data renders dcc.Store(id="live-store") and a hidden
 * html.Div(id="live-config", data-url=ws://..., data-token=..., data-kinds=...). The kinds
 * of entity (each one's list name and id field) come from Python's change feed
 * (streams/core/changefeed.py, kinds_table): this script keeps no list of its own. It opens one
 * reconnecting WebSocket to the push service, merges snapshot/delta messages into
 * window.dispatchLive, and hands what changed on:
 * - to subscribers (window.dispatchLive.subscribe(fn)) once per animation frame: the hot
 *   path, no Dash or React work at all (the wall draws from here);
 * - to Dash with at most one set_props("live-store", ...) every STORE_INTERVAL_MS, however
 *   many messages arrived: building the store's lists and Dash's callback dispatch cost
 *   far more than a subscriber's diff, so ten wall screens at 200 events/s would spend
 *   their CPU there if it ran every frame.
 *
 * Connection truth: push sends every page a message at least every 2 s (a delta or a ping,
 * streams/state-contract.md "Heartbeat"). A page that hears nothing for SILENCE_MS, or
 * whose socket closes, is "lost" at once: live.lost is true, <html> gets the class
 * live-lost (display.css dims the live data of every page), a banner says "Live updates
 * lost at HH:MM:SS - reconnecting" (the time of the last message heard, in the city's
 * time zone) and the document gets a "live:status" event. The first message after a
 * reconnect (the resync: a snapshot or the deltas missed) clears all of it.
 */
(function () {
  "use strict";

  var MAX_BACKOFF_MS = 5000;
  // Push pings a quiet page every second and never leaves one 2 s without a message, so
  // 4 s of nothing (twice the longest gap) means the link or push is gone, even with the
  // socket still open.
  var SILENCE_MS = window.dispatchLiveSilenceMs || 4000;
  var WATCH_MS = 250;
  var KINDS = {};  // entity -> {plural, id}: from data-kinds of live-config
  var STORE_INTERVAL_MS = 100;
  var SESSION_ENDED = 4401;  // close code: the page's session is over

  var live = window.dispatchLive = {
    lastId: null, freshness: {},
    connected: false, version: 0, status: "connecting", batchTimes: [],
    messages: 0, subscribers: [],
    // Connection truth: lost is true from the first silence or close until the resync;
    // lastHeardAt is the epoch ms of the last message (null before the first).
    lost: false, lastHeardAt: null, lostAt: null,
    // Minimum gap between subscriber calls: each call of a drawing subscriber costs a frame
    // of style, layout and paint, so a subscriber may ask for fewer (subscribe options).
    frameIntervalMs: 0, storeIntervalMs: STORE_INTERVAL_MS
  };
  var socket = null, attempt = 0, token = null, url = null;
  var frameRequested = false, pendingMs = 0, lastMessageAt = 0, socketStartedAt = 0;
  var reconnectTimer = null, timezone = null;
  var storeTimer = null, lastStoreAt = 0, frameTimer = null, lastFrameAt = 0;
  // Two accumulators: subscribers drain theirs every frame, Dash's store every interval.
  var changed = emptyChanges(), frameChanged = emptyChanges();

  function emptyChanges() {
    var changes = {freshness: {}, snapshot: false};
    eachKind(function (kind) { changes[kind.plural] = {}; });
    return changes;
  }

  function eachKind(fn) {
    Object.keys(KINDS).forEach(function (entity) { fn(KINDS[entity]); });
  }

  // Once, from the first live-config seen (subscribers may come before the socket does).
  function learnKinds() {
    var config = document.getElementById("live-config");
    if (Object.keys(KINDS).length || !config) { return; }
    KINDS = JSON.parse(config.getAttribute("data-kinds") || "{}");
    eachKind(function (kind) { if (!live[kind.plural]) { live[kind.plural] = {}; } });
    changed = emptyChanges();
    frameChanged = emptyChanges();
  }

  // "1700000000000-3" ids compare as (milliseconds, sequence) numbers, not as text.
  function compareIds(a, b) {
    var x = String(a).split("-"), y = String(b).split("-");
    return (Number(x[0]) - Number(y[0])) || (Number(x[1] || 0) - Number(y[1] || 0));
  }

  // A cursor is one id per partition ("5-0,7-1"): a message at `cursor` may hold changes a
  // page at `held` lacks when any partition's id is ahead; cursors of different lengths
  // count as newer (the page takes what it is given). streams.core.partitions.
  // cursor_is_newer is the same rule; tests/cases/cursors.json is the table both pass.
  function cursorIsNewer(cursor, held) {
    var next = String(cursor).split(","), have = String(held).split(",");
    if (next.length !== have.length) { return true; }
    return next.some(function (id, at) { return compareIds(id, have[at]) > 0; });
  }

  // Where the page is after a delta at `cursor` while at `held`: each partition's newer id
  // (a delta may be behind the page in a partition it brings nothing new for), or `cursor`
  // when the lengths differ. streams.core.partitions.merge_cursors is the same rule;
  // tests/cases/cursors.json is the table both pass.
  function mergeCursors(held, cursor) {
    var next = String(cursor).split(","), have = String(held).split(",");
    if (next.length !== have.length) { return cursor; }
    return next.map(function (id, at) {
      return compareIds(id, have[at]) >= 0 ? id : have[at];
    }).join(",");
  }

  function applySnapshot(message) {
    eachKind(function (kind) {
      var name = kind.plural, next = {};
      Object.keys(live[name]).forEach(function (id) { mark(name, id); });
      (message[name] || []).forEach(function (item) {
        next[item[kind.id]] = item;
        mark(name, item[kind.id]);
      });
      live[name] = next;
    });
    live.freshness = message.freshness || {};
    Object.keys(live.freshness).forEach(function (source) { mark("freshness", source); });
    changed.snapshot = true;
    frameChanged.snapshot = true;
    live.lastId = message.last_id;
  }

  function applyChange(change) {
    if (change.entity === "freshness") {
      var source = change.data.source;
      // Each partition sends its own clock of a feed: the feed's is the newest of them.
      var held = live.freshness[source] || {};
      live.freshness[source] = Object.assign({}, held, {
        event_time: newest(held.event_time, change.data.event_time),
        seen: newest(held.seen, change.data.seen)
      });
      mark("freshness", source);
      return;
    }
    var kind = KINDS[change.entity];
    if (!kind) { return; }
    var name = kind.plural;
    if (change.op === "remove") { delete live[name][change.id]; }
    else { live[name][change.id] = change.data; }
    mark(name, change.id);
    // A record that follows another kind's member (a call's work record) is part of how
    // pages show that member: its row redraws too.
    var followed = kind.follows && KINDS[kind.follows];
    if (followed && live[followed.plural][change.id]) { mark(followed.plural, change.id); }
  }

  function newest(held, value) {
    return typeof held === "number" && !(value > held) ? held : value;
  }

  function mark(name, id) {
    // With the store off (a subscriber draws the page) nothing would ever clear `changed`.
    if (isFinite(live.storeIntervalMs)) { changed[name][id] = true; }
    frameChanged[name][id] = true;
  }

  function applyMessage(message) {
    if (message.type === "snapshot") {
      applySnapshot(message);
    } else if (message.type === "delta") {
      // Deltas replayed around a snapshot or resync may repeat what we hold: skip them.
      if (live.lastId !== null && !cursorIsNewer(message.last_id, live.lastId)) { return false; }
      message.changes.forEach(applyChange);
      live.lastId = live.lastId === null ? message.last_id
        : mergeCursors(live.lastId, message.last_id);
    } else if (message.type === "applying") {
      showUnapplied(message);
      return false;
    } else {
      return false; // ping
    }
    return true;
  }

  // Partitions no consumer is applying (streams/core/applying.py): push says so at once
  // and on connecting; their calls, units and alerts stand still, so the page says so too.
  function showUnapplied(message) {
    live.unapplied = message.unapplied || [];
    live.partitions = message.partitions || 1;
    var partial = bannerOf("live-partial-banner", "live-lost-banner live-partial-banner");
    var since = message.since ? " since " + clockText(message.since * 1000) : "";
    partial.textContent = live.partitions === 1
      ? "Live data not updating" + since + ": no consumer is applying the feeds"
      : "Part of the live data not updating" + since + ": " + live.unapplied.length +
        " of " + live.partitions + " partitions have no consumer applying them " +
        "(their calls, units and alerts may be out of date)";
    partial.hidden = live.unapplied.length === 0;
    document.documentElement.classList.toggle("live-partial", !partial.hidden);
  }

  function idsOf(set) { return Object.keys(set); }

  /* Once per animation frame: hand subscribers what changed since the last frame. */
  function flushFrame() {
    frameRequested = false;
    lastFrameAt = performance.now();
    var started = performance.now(), batch = frameChanged;
    frameChanged = emptyChanges();
    live.subscribers.slice().forEach(function (fn) {
      try { fn(live, batch); } catch (error) { console.error("dispatchLive subscriber", error); }
    });
    pendingMs += performance.now() - started;
    scheduleStore();
  }

  function scheduleStore() {
    if (storeTimer !== null) { return; }
    if (!isFinite(live.storeIntervalMs)) { return; }  // a subscriber draws the page itself
    var wait = Math.max(0, lastStoreAt + live.storeIntervalMs - performance.now());
    storeTimer = setTimeout(flushStore, wait);
  }

  /* At most every STORE_INTERVAL_MS: the whole merged state to Dash's live-store. */
  function flushStore() {
    storeTimer = null;
    lastStoreAt = performance.now();
    if (!document.getElementById("live-config") || !window.dash_clientside) { return; }
    var started = performance.now();
    live.version += 1;
    var data = {version: live.version, connected: live.connected, lastId: live.lastId,
                freshness: live.freshness,
                changed: {freshness: idsOf(changed.freshness), snapshot: changed.snapshot}};
    eachKind(function (kind) {
      data[kind.plural] = Object.values(live[kind.plural]);
      data.changed[kind.plural] = idsOf(changed[kind.plural]);
    });
    window.dash_clientside.set_props("live-store", {data: data});
    changed = emptyChanges();
    live.batchTimes.push(pendingMs + performance.now() - started);
    if (live.batchTimes.length > 500) { live.batchTimes.splice(0, live.batchTimes.length - 500); }
    pendingMs = 0;
  }

  function scheduleFlush() {
    if (frameRequested) { return; }
    frameRequested = true;
    var wait = lastFrameAt + live.frameIntervalMs - performance.now();
    if (wait <= 1) { window.requestAnimationFrame(flushFrame); return; }
    frameTimer = setTimeout(function () {
      frameTimer = null;
      window.requestAnimationFrame(flushFrame);
    }, wait);
  }

  /* fn(live, changed) runs once per animation frame (at most every options.frameIntervalMs)
   * with the ids changed since the last call (changed.snapshot: everything may have changed)
   * and once right away with the whole state. options.store === false: the subscriber draws
   * the page itself, so Dash's live-store stops following while it is subscribed (building
   * the store's lists and Dash's re-render cost a wall screen about as much as its drawing).
   * Returns a function that unsubscribes (and restores the defaults). */
  function subscribe(fn, options) {
    options = options || {};
    learnKinds();
    live.subscribers.push(fn);
    if (options.frameIntervalMs) { live.frameIntervalMs = options.frameIntervalMs; }
    if (options.store === false) { live.storeIntervalMs = Infinity; }
    var all = emptyChanges();
    all.snapshot = true;
    try { fn(live, all); } catch (error) { console.error("dispatchLive subscriber", error); }
    return function () {
      live.subscribers = live.subscribers.filter(function (other) { return other !== fn; });
      live.frameIntervalMs = 0;
      live.storeIntervalMs = STORE_INTERVAL_MS;
      changed.snapshot = true;  // the store missed what changed while it was off
    };
  }

  function setStatus(status) {
    live.status = status;
    live.connected = status === "live";
    scheduleFlush();
  }

  // --- connection truth ------------------------------------------------------------------
  // The shared formatter (assets/display.js, tested against streams/core/display.py).
  function clockText(epochMs) {
    return window.dispatchDisplay.clock(epochMs / 1000, timezone || "UTC", true);
  }

  function lostBanner() { return bannerOf("live-lost-banner", "live-lost-banner"); }

  function bannerOf(id, className) {
    var found = document.getElementById(id);
    if (!found) {
      found = document.createElement("div");
      found.id = id;
      found.className = className;
      found.setAttribute("role", "alert");
      found.hidden = true;
      document.body.appendChild(found);
    }
    return found;
  }

  function announceStatus() {
    document.documentElement.classList.toggle("live-lost", live.lost);
    var banner = lostBanner();
    if (live.lost) {
      banner.textContent = "Live updates lost at " + clockText(live.lostAt) + " - reconnecting";
    }
    banner.hidden = !live.lost;
    document.dispatchEvent(new CustomEvent("live:status", {detail: {lost: live.lost}}));
    scheduleFlush();
  }

  function markLost() {
    if (live.lost) { return; }
    live.lost = true;
    // Updates stopped after the last message heard (or since the page asked, if none came).
    live.lostAt = live.lastHeardAt === null ? firstAskedAt : live.lastHeardAt;
    setStatus(live.status === "live" ? "lost" : live.status);
    announceStatus();
  }

  function markHeard() {
    live.lastHeardAt = Date.now();
    if (!live.lost) { return; }
    live.lost = false;
    live.lostAt = null;
    announceStatus();
  }

  function onMessage(event) {
    var started = performance.now();
    lastMessageAt = Date.now();
    live.heardAt = lastMessageAt;  // the state is current as of this (pages show its age)
    live.messages += 1;
    var message = JSON.parse(event.data);
    var applied = applyMessage(message);
    markHeard();  // the first message on a new socket is the resync (state-contract.md)
    if (attempt !== 0 || live.status !== "live") { attempt = 0; setStatus("live"); }
    pendingMs += performance.now() - started;
    if (applied) { scheduleFlush(); }
  }

  function socketUrl() {
    // page: which page opened the socket, for push's audit entry (streams/push/audit.py).
    var query = "token=" + encodeURIComponent(token || "") +
      "&page=" + encodeURIComponent(window.location.pathname);
    if (live.lastId !== null) { query += "&since=" + encodeURIComponent(live.lastId); }
    return url + (url.indexOf("?") < 0 ? "?" : "&") + query;
  }

  function connect() {
    reconnectTimer = null;
    setStatus("connecting");
    socketStartedAt = lastMessageAt = Date.now();
    var opened = socket = new WebSocket(socketUrl());
    // A new push process tells this socket only if some partition is unapplied.
    if (live.unapplied && live.unapplied.length) {
      showUnapplied({unapplied: [], partitions: live.partitions});
    }
    socket.onmessage = onMessage;
    socket.onclose = function (event) {
      if (socket !== opened) { return; }  // dropped by watchSilence, which reconnects
      socket = null;
      setStatus("offline");
      markLost();
      // 4401: the session ended (signed out, ended by an admin, timed out); a new token
      // would be refused too, so the user signs in again (streams/state-contract.md).
      // A page already leaving (its sign-out form posted) goes where it was going.
      if (event.code === SESSION_ENDED) { if (!leaving) { signInAgain(); } return; }
      reconnectLater();
    };
  }

  // Set once the page starts navigating away (a form post, a link): the revocation of a
  // sign-out reaches push before the sign-out's own answer does.
  var leaving = false;
  window.addEventListener("beforeunload", function () { leaving = true; });
  window.addEventListener("pagehide", function () { leaving = true; });

  // session.js owns leaving for the sign-in form once the session has ended ("Your session
  // has ended", then back to this page).
  function signInAgain() {
    if (window.dispatchSession) { window.dispatchSession.leave(); }
  }

  // Exponential backoff with jitter, so a restarted push service is not hit by every
  // page at the same instant.
  function reconnectLater() {
    if (sessionOver) { return; }
    var delay = Math.min(MAX_BACKOFF_MS, 250 * Math.pow(2, attempt));
    attempt += 1;
    reconnectTimer = setTimeout(function () { refreshToken().then(reconnect, reconnect); },
                                delay * (0.5 + Math.random() / 2));
  }

  // A token refresh refused with "sign in first" means the session is over (it expired
  // while the socket was down, so no revocation closed it with 4401): no token will do, so
  // no socket is opened with the old one (push would refuse it, 401); session.js takes the
  // page to the sign-in form.
  var sessionOver = false;
  function reconnect() {
    reconnectTimer = null;
    if (!sessionOver) { connect(); }
  }

  // Tokens are short-lived: fetch a fresh one before every reconnect.
  function refreshToken() {
    return fetch("/auth/ws-token", {credentials: "same-origin", cache: "no-store"})
      .then(function (reply) {
        return reply.json().then(function (body) { return {ok: reply.ok, body: body}; },
                                 function () { return {ok: reply.ok, body: null}; });
      })
      .then(function (answer) {
        var body = answer.body;
        if (answer.ok && body && body.token) { token = body.token; }
        else if (body && body.error === "sign in first") { sessionOver = true; }
      });
  }

  /* Silence is loss: an open socket that hears nothing (push frozen, a network that drops
   * packets without closing, a laptop back from sleep) and a handshake that never
   * completes (push's port accepts but nobody answers) both count. The socket is then
   * dropped and a new one opened with `since`, which resyncs. */
  function watchSilence() {
    var now = Date.now();
    if (now - (live.lastHeardAt === null ? firstAskedAt : live.lastHeardAt) > SILENCE_MS) {
      markLost();
    }
    if (socket && now - lastMessageAt > SILENCE_MS && now - socketStartedAt > SILENCE_MS) {
      var dead = socket;
      socket = null;
      dead.onmessage = null;
      try { dead.close(); } catch (error) { /* already closing */ }
      setStatus("offline");
      if (reconnectTimer === null) { reconnectLater(); }
    }
  }

  // Dash renders the layout after this script runs, and pages change without a reload:
  // connect on the first page that asks for live data, and hand a newly shown page's
  // store the whole state at once.
  var configNode = null, firstAskedAt = 0;
  function watchConfig() {
    var config = document.getElementById("live-config");
    if (!config || config === configNode) { return; }
    configNode = config;
    if (url === null) {
      if (!config.getAttribute("data-url")) { return; }
      url = config.getAttribute("data-url");
      token = config.getAttribute("data-token");
      timezone = config.getAttribute("data-timezone");
      firstAskedAt = Date.now();
      learnKinds();
      connect();
      setInterval(watchSilence, WATCH_MS);
    } else {
      changed.snapshot = true;
      frameChanged.snapshot = true;
      scheduleFlush();
    }
  }

  setInterval(watchConfig, 100);
  window.dispatchLive.cursorIsNewer = cursorIsNewer;
  window.dispatchLive.mergeCursors = mergeCursors;
  window.dispatchLive.subscribe = subscribe;
})();
