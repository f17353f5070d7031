"""Errors are refusals, never crashes: a status and one sentence, never a traceback.

A callback that raises PermissionError (``runtime.require_page``) answers 403; a path Dash
cannot serve (``/_dash-component-suites/../``, an unknown library) 404; Redis out of reach
503; any other exception is logged here with its traceback and answered 500 with a sentence.
API paths (callbacks, ``/auth/``) get JSON, pages get a short HTML page.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from typing import Any

import flask
import redis
from dash.exceptions import DependencyException
from werkzeug.exceptions import HTTPException

from dashboard import audit

log = logging.getLogger(__name__)

API_PREFIXES = ("/_dash-", "/auth/")

ERROR_PAGE = """<!doctype html>
<html lang="en" data-bs-theme="dark"><head><meta charset="utf-8">
<title>{status} - Hartford dispatch</title>
<link rel="stylesheet" href="/assets/vendor/bootstrap.min.css"></head>
<body class="container py-5"><h1 class="h4">{title}</h1><p>{message}</p>
<p><a href="/">Back to the status page</a></p></body></html>"""


def refusal(status: int, message: str) -> flask.Response:
    """A ``status`` answer saying ``message``: JSON for API paths, a page otherwise."""
    if flask.request.path.startswith(API_PREFIXES):
        response = flask.jsonify(error=message)
        response.status_code = status
        return response
    title = {400: "Bad request", 403: "Not allowed", 404: "Not found",
             405: "Not allowed this way", 429: "Too many requests",
             503: "Temporarily unavailable"}.get(status, "Something went wrong")
    page = ERROR_PAGE.format(status=status, title=title, message=html.escape(message))
    return flask.Response(page, status=status, mimetype="text/html")


def install_error_handlers(server: flask.Flask) -> None:
    """Register the refusals above on the Flask server."""

    @server.errorhandler(PermissionError)
    def forbidden(error: PermissionError) -> flask.Response:
        log.warning("refused %s %s: %s", flask.request.method, flask.request.path, error)
        try:
            audit.record("refused", path=flask.request.path, why=str(error))
        except redis.RedisError as down:  # the refusal stands; the log line above has it
            log.error("refusal not audited: redis unreachable: %s", down)
        return refusal(403, "Not allowed for your role.")

    @server.errorhandler(DependencyException)
    def no_such_file(_: DependencyException) -> flask.Response:
        return refusal(404, "No such file.")

    @server.errorhandler(redis.RedisError)
    def redis_down(error: redis.RedisError) -> flask.Response:
        log.error("redis error on %s: %s", flask.request.path, error)
        return refusal(503, "The dashboard cannot reach its database; try again shortly.")

    @server.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        status = error.code or 500
        if status < 400:
            return error  # routing redirects (a missing trailing slash) stay redirects
        response = refusal(status, error.description or "" if status < 500
                           else "Something went wrong on the server; it has been logged.")
        allowed = error.get_response().headers.get("Allow")
        if allowed:
            response.headers["Allow"] = allowed
        return response

    @server.errorhandler(Exception)
    def crash(error: Exception) -> flask.Response:
        log.exception("unhandled error on %s %s", flask.request.method, flask.request.path)
        return refusal(500, "Something went wrong on the server; it has been logged.")


def callback_problem(body: Any, known_outputs: Mapping[str, Any]) -> str | None:
    """What is wrong with a callback request's JSON body (None: Dash can run it), so a
    malformed or unknown callback is a 400 instead of an exception inside Dash."""
    if not isinstance(body, dict):
        return "a callback request needs a JSON object"
    if not isinstance(body.get("output"), str) or body["output"] not in known_outputs:
        return "no such callback"
    for name in ("inputs", "state"):
        items = body.get(name, [])
        if not isinstance(items, list) or not all(isinstance(i, dict | list) for i in items):
            return f"callback {name} must be a list"
    if not isinstance(body.get("outputs", []), dict | list):
        return "callback outputs must be an object or a list"
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        return "changedPropIds must be a list of names"
    return None
