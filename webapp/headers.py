"""An oversized request header is answered 431 in the JSON error shape, by the app rather than by the server in front."""
from __future__ import annotations

from flask import Flask, request

from webapp.errors import ApiError

# The largest header line (name, ": ", value) accepted: gunicorn's own default. gunicorn.conf.py lets lines up to
# SERVER_HEADER_LINE_BYTES through so that the app, not gunicorn's HTML page, answers those between the two.
MAX_HEADER_LINE_BYTES = 8190
SERVER_HEADER_LINE_BYTES = 65536


def init_header_limit(app: Flask) -> None:
    """Refuse, before any other hook runs, a request with a header line longer than MAX_HEADER_LINE_BYTES."""
    app.before_request_funcs.setdefault(None, []).insert(0, _refuse_oversized_headers)


def _refuse_oversized_headers() -> None:
    for name, value in request.headers.items():
        size = len(name) + 2 + len(value.encode("latin-1", "replace"))
        if size > MAX_HEADER_LINE_BYTES:
            raise ApiError(
                431, "header_too_large",
                f"the request header {name[:64]} is {size} bytes long; at most {MAX_HEADER_LINE_BYTES} are accepted",
            )
