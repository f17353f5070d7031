"""Feed health judged per feed (issue 10 item 2), on the real stack's wall.

Each feed has its own limit (DISPATCH_STALE_AFTER, per feed) and may have a source heartbeat
(Keys.health of the simulator, the webhook, a poller). A feed silent past its limit is
STALE, never "live"; one whose source is alive is QUIET; the STALE chip reads in every frame
of its blink.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from tests.browser.conftest import Stack, reader_of, wait_until
from tests.browser.test_wall import hold_answers, open_wall, publish_events, unit
from tests.conftest import TIMEOUT_SCALE

SOURCES_REFRESH_S = 10


def chips(page: Any) -> dict[str, tuple[str, str]]:
    """source -> (state class, text) of the wall's feed chips."""
    found = page.eval_on_selector_all(
        "#wall-feeds .wf", "ns => ns.map(n => [n.dataset.source, n.className, n.textContent])")
    return {source: (re.search(r"wf-(\w+)", cls).group(1), text) for source, cls, text in found}


def luminance(rgb: str) -> float:
    channels = [int(v) / 255 for v in re.findall(r"\d+", rgb)[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_each_feed_is_judged_on_its_own(stack: Stack, page_for: Callable[..., Any]) -> None:
    """AVL silent past its 120 s: STALE while CAD is live; ShotSpotter silent for 2 h but
    its webhook alive: QUIET, then STALE once the webhook's heartbeat is gone; AVL back to
    live on its next event. No chip says "live" for a silent feed."""
    limits = {source: stack.settings.feed_stale_after.of(source)
              for source in ("cad", "avl", "shotspotter", "mutualink")}
    assert limits == {"cad": 900, "avl": 120, "shotspotter": 3600, "mutualink": 3600}
    now = time.time()
    before = stack.redis.hgetall(stack.keys.freshness)
    stack.redis.hset(stack.keys.freshness, mapping={
        "cad": now - 30, "cad:seen": now - 30, "avl": now - 500, "avl:seen": now - 500,
        "shotspotter": now - 7200, "shotspotter:seen": now - 7200,
        "mutualink": now - 4000, "mutualink:seen": now - 4000})
    webhook = stack.keys.health("webhook")
    stack.redis.set(webhook, json.dumps({"time": now, "accepted": 0}), ex=120)
    try:
        page = open_wall(page_for)
        page.wait_for_function("() => document.querySelector("
                               "'#wall-feeds .wf[data-source=shotspotter].wf-quiet')")
        shown = chips(page)
        assert shown["cad"] == ("live", "● CAD live")
        # (the page may open a minute or two after the clocks were set, on a busy machine)
        assert shown["avl"][0] == "stale" and re.fullmatch(r"✖ AVL STALE (8|9|10) min",
                                                            shown["avl"][1]), shown
        assert shown["shotspotter"] == ("quiet", "◐ ShotSpotter quiet")
        assert shown["mutualink"][0] == "stale" and re.fullmatch(
            r"✖ Video STALE 1 h 0[6-9] min", shown["mutualink"][1]), shown

        # The STALE chip blinks between two frames; each must read (WCAG AA, 4.5:1).
        frames = page.evaluate("""() => {
          const chip = document.querySelector('#wall-feeds .wf-stale');
          const blink = chip.getAnimations()[0];
          blink.pause();
          return [0, 250, 500, 750].map(t => { blink.currentTime = t;
            const cs = getComputedStyle(chip); return [cs.color, cs.backgroundColor]; });
        }""")
        assert len({tuple(f) for f in frames}) == 2, frames
        for color, background in frames:
            assert contrast(color, background) >= 4.5, (color, background)

        stack.redis.delete(webhook)  # the webhook stopped: ShotSpotter is no longer vouched for
        page.wait_for_function(
            "() => document.querySelector('#wall-feeds .wf[data-source=shotspotter].wf-stale')",
            timeout=int((SOURCES_REFRESH_S + 10) * 1000 * TIMEOUT_SCALE))
        assert chips(page)["shotspotter"][1].startswith("✖ ShotSpotter STALE 2 h 0")

        tag = uuid.uuid4().hex[:6]
        publish_events(stack, [unit(f"F{tag}", "available", 41.76, -72.68)])
        wait_until(lambda: any(u["unit_id"] == f"F{tag}" for u in reader_of(stack).units()),
                   "the consumer to apply the unit")
        page.wait_for_function(
            "() => document.querySelector('#wall-feeds .wf[data-source=avl].wf-live')")
        assert all(state != "live" for source, (state, _) in chips(page).items()
                   if source in {"shotspotter", "mutualink"})
    finally:
        stack.redis.delete(webhook)
        # Put the feeds' clocks back, so later tests' walls do not show these STALE chips.
        stack.redis.delete(stack.keys.freshness)
        if before:
            stack.redis.hset(stack.keys.freshness, mapping=before)


def test_a_feed_is_not_called_stale_or_silent_before_its_source_is_known(
        stack: Stack, page_for: Callable[..., Any]) -> None:
    """Until the wall has heard which sources are alive (an answer a few seconds after the
    page opens, longer on a busy server), a feed with nothing recent may be QUIET: its chip
    says it is being checked, never "STALE" or "no data" (make run's wall showed
    "ShotSpotter no data" for its first seconds, then "quiet")."""
    now = time.time()
    before = stack.redis.hgetall(stack.keys.freshness)
    stack.redis.hset(stack.keys.freshness, mapping={"shotspotter": now - 7200,
                                                    "shotspotter:seen": now - 7200})
    stack.redis.hdel(stack.keys.freshness, "mutualink", "mutualink:seen")
    webhook = stack.keys.health("webhook")
    stack.redis.set(webhook, json.dumps({"time": now, "accepted": 0}), ex=120)
    try:
        page = open_wall(page_for)
        release = hold_answers(page, "wall-sources.data")
        page.reload()
        page.wait_for_function("() => window.wallFirstRenderAt !== undefined && "
                               "document.querySelector('#wall-feeds .wf[data-source=cad]')")
        page.wait_for_timeout(1500)
        shown = chips(page)
        assert shown["shotspotter"] == ("unknown", "? ShotSpotter checking"), shown
        assert shown["mutualink"] == ("unknown", "? Video checking"), shown
        release()
        page.wait_for_function("() => document.querySelector("
                               "'#wall-feeds .wf[data-source=shotspotter].wf-quiet')",
                               timeout=int((SOURCES_REFRESH_S + 10) * 1000 * TIMEOUT_SCALE))
        assert chips(page)["mutualink"][0] == "none"  # no event and no source: truly silent
    finally:
        stack.redis.delete(webhook)
        stack.redis.delete(stack.keys.freshness)
        if before:
            stack.redis.hset(stack.keys.freshness, mapping=before)
