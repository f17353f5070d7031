"""A tiny local SODA + ArcGIS server for the pollers' tests: pages, filters, faults."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import TIMEOUT_SCALE


class FeedServer:
    """Serves ``soda_rows`` at /resource/<any>.json and ``features`` at /arcgis/0/query.

    ``faults`` are consumed one per request: an int status (429 carries Retry-After: 1),
    or "slow" (answers after ``slow_seconds``).
    """

    def __init__(self) -> None:
        self.soda_rows: list[dict[str, Any]] = []
        self.features: list[dict[str, Any]] = []
        self.arcgis_cap = 2  # the server's maxRecordCount, below the client's page size
        self.faults: list[int | str] = []
        self.slow_seconds = 2.0 * TIMEOUT_SCALE
        self.requests: list[tuple[float, str, dict[str, str], int | str]] = []
        self.lock = threading.Lock()

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            fault = self.faults.pop(0) if self.faults else 200
            self.requests.append((time.monotonic(), path, params, fault))
        if fault == "slow":
            time.sleep(self.slow_seconds)
        elif fault != 200:
            headers = {"Retry-After": "1"} if fault == 429 else {}
            return int(fault), headers, {"error": True, "message": f"fault {fault}"}
        if path.startswith("/resource/") and path.endswith(".json"):
            return 200, {}, self.soda(params)
        if path == "/arcgis/0/query":
            return 200, {}, self.arcgis(params)
        return 404, {}, {"error": True, "message": "no such resource"}

    def soda(self, params: dict[str, str]) -> list[dict[str, Any]]:
        rows = list(self.soda_rows)
        for field, value in re.findall(r"(\w+) > '([^']+)'", params.get("$where", "")):
            rows = [row for row in rows if row.get(field, "") > value]
        if "$order" in params:
            order = [part.strip().split()[0] for part in params["$order"].split(",")]
            rows.sort(key=lambda row: tuple(str(row.get(name, "")) for name in order))
        offset, limit = int(params["$offset"]), int(params["$limit"])
        return rows[offset:offset + limit]

    def arcgis(self, params: dict[str, str]) -> dict[str, Any]:
        assert params["outFields"] == "*" and params["f"] == "json"
        assert params["where"] == "1=1"
        offset = int(params["resultOffset"])
        count = min(int(params["resultRecordCount"]), self.arcgis_cap)
        page = self.features[offset:offset + count]
        return {"objectIdFieldName": "OBJECTID", "features": page,
                "exceededTransferLimit": offset + count < len(self.features)}


@pytest.fixture
def feed_server() -> Iterator[tuple[FeedServer, str]]:
    """The fake feed on a free port; yields (state, base URL)."""
    state = FeedServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            parts = urlsplit(self.path)
            params = {key: values[0] for key, values in parse_qs(parts.query).items()}
            status, headers, payload = state.answer(parts.path, params)
            body = json.dumps(payload).encode()
            try:
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
