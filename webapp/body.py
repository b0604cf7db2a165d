"""Reading request bodies: every JSON body is parsed with a size and a depth guard."""
from __future__ import annotations

import json
import logging
import re

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from webapp.errors import ApiError

log = logging.getLogger(__name__)

# No body this service accepts nests deeper than a Telegram update (about 8 levels).
MAX_JSON_DEPTH = 32


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


def _nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than `limit` (regular expressions; no parsing)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b"", body)):
        if bracket in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")
