"""Security headers on every response: pages, callbacks, assets, sign-in and errors.

The Content-Security-Policy allows scripts only from this server plus the hashes of Dash's
own inline scripts (``app.csp_hashes()``: the renderer and clientside callbacks), connections
only to this server and the push service, images from here and the map tile host. Styles
allow 'unsafe-inline' because Dash, Plotly, Leaflet and AG Grid set element styles at run
time; no script can be injected through a style. Framing is refused (frame-ancestors and
X-Frame-Options), MIME sniffing is off, and the Referer never leaves this site.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

FIXED_HEADERS: Mapping[str, str] = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HSTS = "max-age=31536000"
"""Sent only on responses that went out over https (a browser remembers it a year)."""
STATIC_PREFIXES = ("/assets/", "/_dash-component-suites/", "/_favicon")
"""Paths whose responses may be cached (code and styles, no police data)."""


def origin_of(url: str | None) -> str | None:
    """scheme://host[:port] of ``url``; template parts such as {s} become a wildcard."""
    if not url:
        return None
    parts = urlsplit(url.replace("{s}", "*"))
    if not parts.scheme or not parts.netloc:
        return None
    host = parts.netloc.split("@")[-1]
    if "{" in host or "}" in host:
        return None
    return f"{parts.scheme}://{host}"


def content_security_policy(script_hashes: Iterable[str], push_url: str,
                            tile_url: str | None) -> str:
    """The policy for one response (the push URL depends on the page's host)."""
    tiles = origin_of(tile_url)
    push = origin_of(push_url)
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:", *([tiles] if tiles else [])],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'", *([push] if push else [])],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def security_headers(csp: str, https: bool, path: str) -> dict[str, str]:
    """Every header a response gets (``Cache-Control`` only where the app set none)."""
    headers = {"Content-Security-Policy": csp, **FIXED_HEADERS}
    if https:
        headers["Strict-Transport-Security"] = HSTS
    if not path.startswith(STATIC_PREFIXES):
        headers["Cache-Control"] = "no-store"
    return headers
