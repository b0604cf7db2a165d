"""Reading request bodies: every JSON body is parsed with a size and a depth guard."""
from __future__ import annotations

import io
import json
import logging
import re
from itertools import accumulate

from flask import request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import RequestEntityTooLarge

from webapp.errors import ApiError

log = logging.getLogger(__name__)

# No body this service accepts nests deeper than a Telegram update (about 8 levels).
MAX_JSON_DEPTH = 32


def buffer_unsized_body(limit: int) -> None:
    """Read a body sent without Content-Length (chunked) before any route does: 413 when over `limit` bytes."""
    environ = request.environ
    # Only a server that ends the stream itself (it decodes the chunks) can be read without a length.
    if request.content_length is not None or not environ.get("wsgi.input_terminated"):
        return
    try:
        data = _read_at_most(environ["wsgi.input"], limit + 1)
    except (OSError, ValueError):  # a client that hung up mid-body, a broken chunked encoding
        raise ApiError(400, "malformed_body", "the request body could not be read") from None
    if len(data) > limit:
        raise RequestEntityTooLarge()
    # Werkzeug's own cap would silently cut an oversized body to `limit` bytes; routes now read this copy.
    environ["wsgi.input"] = io.BytesIO(data)


def _read_at_most(stream, size: int) -> bytes:
    """Up to `size` bytes from a stream, however few it returns per read."""
    chunks, remaining = [], size
    while remaining > 0:
        chunk = stream.read(min(remaining, 64 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def raw_body() -> bytes:
    """The request body, at most `MAX_BODY_BYTES` long whether or not a length was declared (413 beyond)."""
    try:
        return request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise
    except Exception:  # a client that hung up mid-body, a broken chunked encoding
        raise ApiError(400, "malformed_body", "the request body could not be read") from None


def json_object(*, code: str = "malformed_json", what: str = "a JSON object") -> dict:
    """The body as a JSON object; 400 `code` when it is not JSON, too deeply nested, or not an object."""
    data = parse_json(raw_body(), code=code, what=what)
    if not isinstance(data, dict):
        raise ApiError(400, code, f"the body must be {what}")
    return data


def parse_json(body: bytes, *, code: str = "malformed_json", what: str = "a JSON object"):
    """Parse JSON bytes, refusing nesting deeper than `MAX_JSON_DEPTH` without recursing into it."""
    if _nesting_exceeds(body, MAX_JSON_DEPTH):
        log.info("refused a request body nested deeper than %d levels", MAX_JSON_DEPTH)
        raise ApiError(400, code, f"the body must be {what}, nested at most {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(400, code, f"the body must be {what}") from None


class GuardedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, whose `loads` (behind `request.get_json`) refuses nesting deeper than `MAX_JSON_DEPTH`."""

    def loads(self, s, **kwargs):
        """Parse JSON; too deep is a ValueError, which `get_json` answers 400 (or None when silent)."""
        if _nesting_exceeds(s.encode() if isinstance(s, str) else bytes(s), MAX_JSON_DEPTH):
            log.info("refused JSON nested deeper than %d levels", MAX_JSON_DEPTH)
            raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        return super().loads(s, **kwargs)


def _nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than `limit`, in time linear in the body's length."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS)
    return bool(brackets) and max(accumulate(map(_DEPTH_STEP.__getitem__, brackets))) > limit


# A string, or an unterminated one up to the end: matching the unterminated case too keeps the
# scan linear (a pattern that fails there is retried from every later quote, quadratic).
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_DEPTH_STEP = [1 if byte in b"[{" else -1 for byte in range(256)]
