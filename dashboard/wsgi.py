"""WSGI entry point: `gunicorn dashboard.wsgi:server`, as `python -m dashboard serve` runs."""

from __future__ import annotations

import os

from dashboard.app import create_app
from streams.core.settings import Settings

# An entry point, so one of the two places allowed to read the environment.
server = create_app(Settings.from_env(os.environ)).server
