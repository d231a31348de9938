"""Headers on every answer: no content sniffing, and no caching of anything but assets.

Hook, feedback and discovery answers (and their errors) may hold patient data or reveal
which services and patients exist: ``Cache-Control: no-store`` keeps them out of browser,
proxy and CDN caches. ``X-Content-Type-Options: nosniff`` makes browsers take a JSON
answer as JSON, never as HTML or script, whatever it holds.
"""

from __future__ import annotations

from flask import Flask, Response, request

#: The demo page's CSS and JavaScript, the only answers worth caching.
ASSETS = "/demo/static/"


def register(app: Flask) -> None:
    @app.after_request
    def _safe_headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        if not request.path.startswith(ASSETS):
            response.headers["Cache-Control"] = "no-store"
        return response
