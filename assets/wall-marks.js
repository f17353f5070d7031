/* Wall map markers (calls, units, gunshot alerts, video shares) drawn on one canvas over the
 * Leaflet map, by assets/wall.js (window.WallMarks.create(map, root)).
 *
 * Why a canvas: at 200 events/s new markers land all over the map every frame. As DOM
 * markers, each frame paid style, layout, paint and tile raster over the whole map, about
 * 28 ms of CPU per frame per screen, so ten wall screens on one small machine fell behind.
 * Here new marks are stamped on top from cached sprites (a bitmap per distinct look), a
 * change, move or removal redraws them all, and the canvas is a single layer to composite.
 *
 * The looks are not restated here: each sprite is measured from wall.css's .wm-* rules on a
 * hidden probe element (sizes, colours, borders, fonts, the star's clip-path), so the map
 * and its legend (which still uses those rules in the DOM) cannot drift apart.
 */
(function () {
  "use strict";

  var ORDER = ["units", "calls", "shares", "alerts"];  // bottom to top

  var CAMERA_PATH = "M3 6h12a2 2 0 0 1 2 2v1.5l4-2.5v10l-4-2.5V16a2 2 0 0 1-2 2H3a2 2 0 0 " +
    "1-2-2V8a2 2 0 0 1 2-2z";  // 24 x 24 view box, as the shares panel's icon

  function px(value) { return parseFloat(value) || 0; }

  /* Computed styles of many throwaway elements at once (one style and layout pass, not one
   * per element): ``probes`` is a list of [html, pick]; pick reads what it needs from the
   * element built from html before it is removed. */
  function measureAll(box, probes) {
    box.innerHTML = probes.map(function (p) { return "<div>" + p[0] + "</div>"; }).join("");
    try {
      return probes.map(function (p, i) { return p[1](box.children[i].firstChild); });
    } finally { box.innerHTML = ""; }
  }

  function boxStyle(node) {
    var cs = getComputedStyle(node), w = px(cs.width), h = px(cs.height);
    var radius = cs.borderTopLeftRadius;
    return {
      w: w, h: h, left: px(cs.left), top: px(cs.top),
      fill: cs.backgroundColor, color: cs.color, border: px(cs.borderTopWidth),
      borderColor: cs.borderTopColor, clipPath: cs.clipPath,
      radius: /%$/.test(radius) ? Math.min(w, h) * px(radius) / 100 : px(radius),
      font: cs.fontWeight + " " + cs.fontSize + " " + cs.fontFamily, fontSize: px(cs.fontSize),
      padX: px(cs.paddingLeft), padY: px(cs.paddingTop),
    };
  }

  function roundRect(ctx, x, y, w, h, r) {
    ctx.beginPath();
    if (ctx.roundRect) { ctx.roundRect(x, y, w, h, Math.min(r, w / 2, h / 2)); } else { ctx.rect(x, y, w, h); }
  }

  /* A filled box with a border drawn inside it (CSS border-box). */
  function paintBox(ctx, s, x, y) {
    roundRect(ctx, x, y, s.w, s.h, s.radius);
    ctx.fillStyle = s.borderColor;
    ctx.fill();
    var b = s.border;
    roundRect(ctx, x + b, y + b, s.w - 2 * b, s.h - 2 * b, Math.max(0, s.radius - b));
    ctx.fillStyle = s.fill;
    ctx.fill();
  }

  function paintText(ctx, s, text, cx, cy) {
    if (!text) { return; }
    ctx.font = s.font;
    ctx.fillStyle = s.color;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(text, cx, cy);
  }

  /* clip-path: polygon(50% 0%, 61% 35%, ...) -> [[0.5, 0], [0.61, 0.35], ...] */
  function polygonOf(clipPath) {
    var points = [];
    String(clipPath).replace(/(-?[\d.]+)%\s+(-?[\d.]+)%/g, function (_m, x, y) {
      points.push([px(x) / 100, px(y) / 100]);
    });
    return points;
  }

  function paintPolygon(ctx, points, x, y, w, h, fill) {
    ctx.beginPath();
    points.forEach(function (p, i) {
      if (i) { ctx.lineTo(x + p[0] * w, y + p[1] * h); } else { ctx.moveTo(x + p[0] * w, y + p[1] * h); }
    });
    ctx.closePath();
    ctx.fillStyle = fill;
    ctx.fill();
  }

  // --- sprites: one small canvas per distinct look, drawn from the probe's styles ---------
  function newSprite(w, h, ax, ay, ratio) {
    var canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.ceil(w * ratio));
    canvas.height = Math.max(1, Math.ceil(h * ratio));
    var ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    return {canvas: canvas, ctx: ctx, ax: ax, ay: ay};  // (ax, ay): the map point, in CSS px
  }

  // What to measure for each shape: the probe element (wall.css's classes) and what to read.
  var PROBES = {
    call: function (look) {
      return ['<div class="wm wm-call p' + look.priority +
              (look.pending ? " wm-pending" : " wm-assigned") + '"><span></span><b>x</b></div>',
              function (node) {
                return {box: boxStyle(node), tag: boxStyle(node.querySelector("b"))};
              }];
    },
    unit: function (look) {
      return ['<div class="wm-anchor"><div class="wm wm-unit st-' + look.status +
              (look.stale ? " wm-stale" : "") + '"></div></div>',
              function (node) { return boxStyle(node.firstChild); }];
    },
    shot: function () {
      return ['<div class="wm wm-shot"><span></span></div>', function (node) {
        var inner = getComputedStyle(node, "::before");  // the purple star inside the white
        return {star: boxStyle(node), fill: inner.backgroundColor, inset: px(inner.top)};
      }];
    },
    share: function () { return ['<div class="wm wm-share"></div>', boxStyle]; },
  };

  function callSprite(parts, look, ratio) {
    var box = parts.box, tag = parts.tag, tagW = 0, tagH = 0;
    if (look.tag) {
      var scratch = document.createElement("canvas").getContext("2d");
      scratch.font = tag.font;
      tagW = Math.ceil(scratch.measureText(look.tag).width + 2 * tag.padX + 2 * tag.border);
      tagH = Math.ceil(tag.fontSize * 1.15 + 2 * tag.padY + 2 * tag.border);
    }
    var w = Math.max(box.w, tagW), top = box.h - box.border;  // the tag hangs from the padding box
    var sprite = newSprite(w, Math.max(box.h, top + tagH), w / 2, box.h / 2, ratio);
    paintBox(sprite.ctx, box, (w - box.w) / 2, 0);
    paintText(sprite.ctx, box, String(look.priority), w / 2, box.h / 2 + box.fontSize * 0.05);
    if (look.tag) {
      var t = Object.assign({}, tag, {w: tagW, h: tagH});
      paintBox(sprite.ctx, t, (w - tagW) / 2, top);
      paintText(sprite.ctx, t, look.tag, w / 2, top + tagH / 2 + t.fontSize * 0.05);
    }
    return sprite;
  }

  function unitSprite(s, look, ratio) {
    // Offset down-right of its point (wall.css), so a unit parked on its call leaves the
    // call's digit in sight.
    var sprite = newSprite(s.w, s.h, s.w / 2 - s.left, s.h / 2 - s.top, ratio);
    paintBox(sprite.ctx, s, 0, 0);
    paintText(sprite.ctx, s, look.letter, s.w / 2, s.h / 2 + s.fontSize * 0.05);
    return sprite;
  }

  function shotSprite(parts, look, ratio) {
    var s = parts.star, star = polygonOf(s.clipPath), inset = parts.inset;
    var sprite = newSprite(s.w, s.h, s.w / 2, s.h / 2, ratio), ctx = sprite.ctx;
    paintPolygon(ctx, star, 0, 0, s.w, s.h, s.fill);
    paintPolygon(ctx, star, inset, inset, s.w - 2 * inset, s.h - 2 * inset, parts.fill);
    paintText(ctx, s, String(look.rounds), s.w / 2, s.h / 2 + s.fontSize * 0.2);
    return sprite;
  }

  function shareSprite(s, _look, ratio) {
    var sprite = newSprite(s.w, s.h, s.w / 2, s.h / 2, ratio), ctx = sprite.ctx;
    paintBox(ctx, s, 0, 0);
    var inset = s.border + s.padX, size = s.w - 2 * inset;
    ctx.save();
    ctx.translate(inset, inset);
    ctx.scale(size / 24, size / 24);
    ctx.fillStyle = s.color;
    ctx.fill(new Path2D(CAMERA_PATH));
    ctx.restore();
    return sprite;
  }

  var SPRITES = {call: callSprite, unit: unitSprite, shot: shotSprite, share: shareSprite};

  function lookKey(look) {
    return [look.shape, look.priority, look.pending, look.tag, look.status, look.letter,
            look.rounds, look.stale].join("|");
  }

  // --- the layer --------------------------------------------------------------------------
  /* Marks over ``map``, styled from the CSS that applies inside ``root``. Use set/remove to
   * change what is shown (cheap, nothing drawn), then draw() once per frame. */
  function Marks(map, root) {
    var container = map.getContainer();
    this.map = map;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "wall-marks";
    this.canvas.setAttribute("aria-hidden", "true");
    container.appendChild(this.canvas);
    this.probe = document.createElement("div");
    this.probe.className = "wall-marks-probe";
    root.appendChild(this.probe);
    this.items = {};
    ORDER.forEach(function (kind) { this.items[kind] = new Map(); }, this);
    this.sprites = new Map();
    this.styles = new Map();  // probe html -> measured style
    // full: everything must be redrawn (a mark moved, changed or went). fresh: new marks,
    // which can simply be drawn on top unless a mark of a kind drawn above them overlaps.
    this.full = true;
    this.fresh = [];
    map.on("resize zoomend moveend viewreset", this.relayout, this);
    this.resize();
    this.prepare([{shape: "shot", rounds: 1}, {shape: "share"}]);
  }

  Marks.prototype.resize = function () {
    var size = this.map.getSize(), ratio = window.devicePixelRatio || 1;
    if (ratio !== this.ratio) { this.sprites.clear(); this.ratio = ratio; }
    this.canvas.width = Math.round(size.x * ratio);
    this.canvas.height = Math.round(size.y * ratio);
    this.canvas.style.width = size.x + "px";
    this.canvas.style.height = size.y + "px";
  };

  /* The map moved or resized (a 4K screen, a window resize): new points and sprite sizes. */
  Marks.prototype.relayout = function () {
    this.resize();
    this.sprites.clear();  // --wm follows the viewport height
    this.styles.clear();
    this.textWidths = new Map();
    this.prepare(this.expected);
    ORDER.forEach(function (kind) {
      this.items[kind].forEach(function (mark) { this.place(mark); }, this);
    }, this);
    this.full = true;
    this.draw();
  };

  Marks.prototype.place = function (mark) {
    var point = this.map.latLngToContainerPoint([mark.lat, mark.lon]);
    mark.x = point.x;
    mark.y = point.y;
  };

  Marks.prototype.sprite = function (look) {
    var key = lookKey(look), sprite = this.sprites.get(key);
    if (!sprite) {
      this.measureStyles([look]);
      sprite = SPRITES[look.shape](this.styles.get(PROBES[look.shape](look)[0]), look,
                                   this.ratio);
      this.sprites.set(key, sprite);
    }
    return sprite;
  };

  /* Measure the styles ``looks`` need that are not known yet, all in one layout pass. */
  Marks.prototype.measureStyles = function (looks) {
    var wanted = new Map();
    looks.forEach(function (look) {
      var probe = PROBES[look.shape](look);
      if (!this.styles.has(probe[0])) { wanted.set(probe[0], probe); }
    }, this);
    if (!wanted.size) { return; }
    var probes = Array.from(wanted.values()), styles = measureAll(this.probe, probes);
    probes.forEach(function (probe, i) { this.styles.set(probe[0], styles[i]); }, this);
  };

  /* Sprites for ``looks`` made now, measured together, rather than in the first frames of
   * a burst (when every screen is busiest); made again after a resize. */
  Marks.prototype.prepare = function (looks) {
    this.expected = looks;
    this.measureStyles(looks);
    looks.forEach(this.sprite, this);
  };

  /* Show ``kind``/``id`` at lat/lon with ``look`` ({shape: "call", priority, pending, tag} |
   * {shape: "unit", status, letter} | {shape: "shot", rounds} | {shape: "share"}) and
   * ``alpha`` (alerts fade with age). */
  Marks.prototype.set = function (kind, id, lat, lon, look, alpha, label) {
    var items = this.items[kind], mark = items.get(id), key = lookKey(look);
    var a = alpha == null ? 1 : alpha, text = label ? label.text + "|" + label.rank : "";
    if (!mark) {
      mark = {id: id};
      this.fresh.push({kind: kind, mark: mark});
      if (label) { this.full = true; }  // labels are placed together, on a full redraw
    } else if (mark.lat === lat && mark.lon === lon && mark.key === key && mark.alpha === a &&
               mark.labelKey === text) {
      return;
    } else {
      this.full = true;
    }
    mark.label = label || null;
    mark.labelKey = text;
    mark.lat = lat;
    mark.lon = lon;
    mark.key = key;
    mark.look = look;
    mark.alpha = a;
    this.place(mark);
    items.set(id, mark);
  };

  Marks.prototype.remove = function (kind, id) {
    if (this.items[kind].delete(id)) { this.full = true; }
  };

  Marks.prototype.box = function (mark) {
    var sprite = this.sprite(mark.look);
    return {x: mark.x - sprite.ax, y: mark.y - sprite.ay, w: sprite.canvas.width / this.ratio,
            h: sprite.canvas.height / this.ratio};
  };

  /* Would drawing ``entry`` on top hide part of a mark that belongs above it? */
  Marks.prototype.covers = function (entry) {
    var a = this.box(entry.mark), above = ORDER.slice(ORDER.indexOf(entry.kind) + 1);
    return above.some(function (kind) {
      var hit = false;
      this.items[kind].forEach(function (other) {
        var b = hit ? null : this.box(other);
        // A pixel of margin: boxes are fractional, the painter rounds to device pixels.
        hit = hit || (a.x - 1 < b.x + b.w && b.x - 1 < a.x + a.w &&
                      a.y - 1 < b.y + b.h && b.y - 1 < a.y + a.h);
      }, this);
      return hit;
    }, this);
  };

  /* Looks the coming draw has no sprite for (all marks' on a full redraw). */
  Marks.prototype.newLooks = function (fresh) {
    var looks = [], add = function (mark) {
      if (!this.sprites.has(mark.key)) { looks.push(mark.look); }
    };
    if (this.full) {
      ORDER.forEach(function (kind) { this.items[kind].forEach(add, this); }, this);
    } else {
      fresh.forEach(function (entry) { add.call(this, entry.mark); }, this);
    }
    return looks;
  };

  Marks.prototype.paint = function (ctx, mark) {
    var sprite = this.sprite(mark.look), ratio = this.ratio;
    ctx.globalAlpha = mark.alpha;
    ctx.drawImage(sprite.canvas, Math.round((mark.x - sprite.ax) * ratio),
                  Math.round((mark.y - sprite.ay) * ratio));
  };

  /* Bring the canvas up to date: new marks drawn on top (most frames of a burst), or
   * everything redrawn. Returns whether it drew. */
  Marks.prototype.draw = function () {
    var fresh = this.fresh, ctx = this.canvas.getContext("2d");
    this.fresh = [];
    if (!this.full && fresh.some(this.covers, this)) { this.full = true; }
    this.measureStyles(this.newLooks(fresh));
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    if (this.full) {
      this.full = false;
      ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
      this.placeLabels();
      ORDER.forEach(function (kind) {
        this.items[kind].forEach(function (mark) { this.paint(ctx, mark); }, this);
        // Callsigns over the units, under the calls and alerts (which stay in sight).
        if (kind === "units") { this.paintLabels(ctx); }
      }, this);
    } else if (fresh.length) {
      fresh.forEach(function (entry) { this.paint(ctx, entry.mark); }, this);
    } else {
      return false;
    }
    ctx.globalAlpha = 1;
    return true;
  };

  // --- callsign labels ------------------------------------------------------------------
  /* A unit mark may carry {text, rank}: its callsign and how much it matters (lower first).
   * At 200 units a label on each would bury the map, so labels go to the units that matter
   * most first (wall.js ranks them: the units the gunshot banner suggests, then those on
   * P1/P2 calls, then busy ones, then free ones), each right (else left) of its mark,
   * never over another label or unit nor off the map, and at most one per
   * LABEL_AREA_LINES^2 label heights of map area: about 18 at any screen size at the
   * city's zoom, where a label is as tall as the wall's smallest text. A label of rank
   * MUST_RANK (the banner's suggestions) that finds no free spot may cover other units'
   * marks: in a crowd the unit to send must still be found by name. */
  var LABEL_AREA_LINES = 7.75, MUST_RANK = 0;
  Marks.prototype.labelStyle = function () {
    var probe = ['<div class="wm-label">x</div>', boxStyle];
    if (!this.styles.has(probe[0])) {
      this.styles.set(probe[0], measureAll(this.probe, [probe])[0]);
      this.textWidths = new Map();
    }
    return this.styles.get(probe[0]);
  };
  Marks.prototype.textWidth = function (style, text) {
    var widths = this.textWidths || (this.textWidths = new Map()), width = widths.get(text);
    if (width === undefined) {
      var ctx = this.canvas.getContext("2d");
      ctx.font = style.font;
      width = ctx.measureText(text).width;
      widths.set(text, width);
    }
    return width;
  };
  /* Boxes (container px) no label may cover, e.g. a panel over the map. */
  Marks.prototype.avoid = function (boxes) {
    this.obstacles = boxes;
    this.full = true;
  };
  Marks.prototype.placeLabels = function () {
    var wanted = [];
    this.items.units.forEach(function (mark) { if (mark.label) { wanted.push(mark); } });
    this.labels = [];
    if (!wanted.length) { return; }
    var style = this.labelStyle(), size = this.map.getSize();
    var h = Math.ceil(style.fontSize * 1.2 + 2 * style.padY + 2 * style.border);
    var cap = Math.max(1, Math.floor(size.x * size.y / Math.pow(h * LABEL_AREA_LINES, 2)));
    wanted.sort(function (a, b) {
      return (a.label.rank - b.label.rank) || (a.id < b.id ? -1 : (a.id > b.id ? 1 : 0));
    });
    var units = [];
    this.items.units.forEach(function (mark) { units.push(this.box(mark)); }, this);
    var taken = (this.obstacles || []).slice();
    for (var i = 0; i < wanted.length && this.labels.length < cap; i++) {
      var mark = wanted[i], own = this.box(mark), text = mark.label.text;
      var w = Math.ceil(this.textWidth(style, text) + 2 * style.padX + 2 * style.border);
      var y = own.y + own.h / 2 - h / 2, gap = 2, right = own.x + own.w + gap;
      var left = own.x - gap - w;
      // Beside the mark; in a cluster, up to two lines above or below (with a leader).
      var spots = [];
      [0, -1, 1, -2, 2].forEach(function (lines) {
        spots.push([right, y + lines * h], [left, y + lines * h]);
      });
      var passes = mark.label.rank === MUST_RANK ? 2 : 1, placed = false;
      for (var pass = 0; pass < passes && !placed; pass++) {
        for (var j = 0; j < spots.length; j++) {
          var box = {x: spots[j][0], y: spots[j][1], w: w, h: h};
          if (box.x < 0 || box.y < 0 || box.x + w > size.x || box.y + h > size.y) { continue; }
          if (taken.some(function (t) { return hits(box, t); }) || (pass === 0 &&
              units.some(function (u) { return u !== own && hits(box, u); }))) { continue; }
          taken.push(box);
          this.labels.push({id: mark.id, text: text, x: box.x, y: box.y, w: w, h: h,
                            alpha: mark.alpha, leader: j > 1 ? [mark.x, mark.y] : null});
          placed = true;
          break;
        }
      }
    }
  };
  function hits(a, b) {
    return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
  }
  Marks.prototype.paintLabels = function (ctx) {
    if (!this.labels || !this.labels.length) { return; }
    var style = this.labelStyle(), ratio = this.ratio;
    ctx.save();
    ctx.scale(ratio, ratio);
    this.labels.forEach(function (label) {
      ctx.globalAlpha = label.alpha;
      if (label.leader) {
        var toRight = label.leader[0] >= label.x + label.w / 2;
        ctx.beginPath();
        ctx.moveTo(toRight ? label.x + label.w : label.x, label.y + label.h / 2);
        ctx.lineTo(label.leader[0], label.leader[1]);
        ctx.strokeStyle = style.color;
        ctx.lineWidth = Math.max(1, style.fontSize / 13);
        ctx.stroke();
      }
      paintBox(ctx, Object.assign({}, style, {w: label.w, h: label.h}), label.x, label.y);
      paintText(ctx, style, label.text, label.x + label.w / 2, label.y + label.h / 2 +
                style.fontSize * 0.05);
    });
    ctx.restore();
    ctx.globalAlpha = 1;
  };

  Marks.prototype.destroy = function () {
    this.map.off("resize zoomend moveend viewreset", this.relayout, this);
    this.canvas.remove();
    this.probe.remove();
  };

  window.WallMarks = {
    create: function (map, root) { return new Marks(map, root); },
    CAMERA_PATH: CAMERA_PATH,
  };
})();
