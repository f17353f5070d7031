/* Shared display rules of every page: number/duration formatters and the priority palette.
 *
 * The JavaScript twin of streams/core/display.py: both are checked against one table of
 * cases (tests/cases/display.json) by a Python test and a browser test, so a number reads
 * the same on the wall, the tablets and /response. Rounding is half up, Math.floor(x + 0.5),
 * exactly as the Python side does it (never toFixed, which rounds binary fractions).
 * The palette's source is assets/display.css; palette() reads its custom properties.
 */
(function () {
  "use strict";

  var MISSING = "—", MINUS = "−";

  function known(x) { return typeof x === "number" && isFinite(x); }
  function halfUp(x) { return Math.floor(x + 0.5); }
  function two(n) { return (n < 10 ? "0" : "") + n; }

  /* 'm:ss' under an hour, 'h:mm:ss' from an hour; '—' when not known; negative -> 0:00. */
  function duration(seconds) {
    if (!known(seconds)) { return MISSING; }
    var whole = Math.max(0, halfUp(seconds));
    var h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
    return h ? h + ":" + two(m) + ":" + two(s) : m + ":" + two(s);
  }

  /* A difference: '+1:05', '−0:30', '±0:00'; '' when not known. */
  function signedDuration(seconds) {
    if (!known(seconds)) { return ""; }
    var whole = halfUp(seconds);
    if (whole === 0) { return "±0:00"; }
    return (whole > 0 ? "+" : MINUS) + duration(Math.abs(whole));
  }

  /* '45 s', '12 min', '3 h 05 min', '2 d 4 h'. */
  function shortDuration(seconds) {
    if (!known(seconds)) { return MISSING; }
    var whole = Math.max(0, halfUp(seconds));
    if (whole < 60) { return whole + " s"; }
    if (whole < 3600) { return Math.floor(whole / 60) + " min"; }
    if (whole < 86400) {
      return Math.floor(whole / 3600) + " h " + two(Math.floor((whole % 3600) / 60)) + " min";
    }
    return Math.floor(whole / 86400) + " d " + Math.floor((whole % 86400) / 3600) + " h";
  }

  /* '1,234' (no locale: every screen groups the same way). */
  function count(value) {
    if (!known(value)) { return MISSING; }
    var whole = halfUp(value), digits = String(Math.abs(whole)), out = "";
    for (var i = 0; i < digits.length; i++) {
      if (i && (digits.length - i) % 3 === 0) { out += ","; }
      out += digits[i];
    }
    return (whole < 0 ? MINUS : "") + out;
  }

  /* '300 m' under a kilometre, '1.2 km' from there. */
  function distance(metres) {
    if (!known(metres)) { return MISSING; }
    var whole = Math.max(0, halfUp(metres));
    if (whole < 1000) { return whole + " m"; }
    var tenths = halfUp(metres / 100);
    return Math.floor(tenths / 10) + "." + (tenths % 10) + " km";
  }

  /* '87%'. */
  function percent(fraction) {
    if (!known(fraction)) { return MISSING; }
    return halfUp(fraction * 100) + "%";
  }

  var clocks = {};
  /* '14:02:10' (or '14:02') in ``timezone``, 24-hour; cut to the unit, not rounded. */
  function clock(epoch, timezone, withSeconds) {
    if (!known(epoch)) { return MISSING; }
    var seconds = withSeconds !== false, key = timezone + (seconds ? "|s" : "|m");
    if (!clocks[key]) {
      var options = {timeZone: timezone, hour: "2-digit", minute: "2-digit", hourCycle: "h23"};
      if (seconds) { options.second = "2-digit"; }
      clocks[key] = new Intl.DateTimeFormat("en-GB", options);
    }
    var parts = {};
    clocks[key].formatToParts(new Date(Math.floor(epoch) * 1000)).forEach(function (p) {
      parts[p.type] = p.value;
    });
    return parts.hour + ":" + parts.minute + (seconds ? ":" + parts.second : "");
  }

  /* {1: {fill, ink}, ..., 5: {...}} as the CSS applies at ``node`` (default: the page). */
  function palette(node) {
    var style = getComputedStyle(node || document.documentElement), out = {};
    [1, 2, 3, 4, 5].forEach(function (p) {
      out[p] = {fill: style.getPropertyValue("--prio-" + p).trim(),
                ink: style.getPropertyValue("--prio-" + p + "-ink").trim()};
    });
    return out;
  }

  window.dispatchDisplay = {
    MISSING: MISSING, duration: duration, signedDuration: signedDuration,
    shortDuration: shortDuration, count: count, distance: distance, percent: percent,
    clock: clock, palette: palette,
  };
})();
