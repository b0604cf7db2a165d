"""The plan catalogue that decides what a transition does (chats, reminders), for the unit of work at hand.

Grants change deep inside `entitlements`, whose callers are handlers, web requests, CLI commands
and the expiry job; each of those has the runtime's catalogue and sets it here for the duration
of its work. A transition written where none is set still loses nothing: a `transition` inbox
event takes its consumers to a worker, which has the catalogue.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Iterator

from app.plans import Catalogue

_current: ContextVar[Catalogue | None] = ContextVar("entitle_access_catalogue", default=None)


@contextlib.contextmanager
def using(catalogue: Catalogue | None) -> Iterator[None]:
    """Let transitions inside this block read their entitlements' rules from `catalogue`."""
    token = _current.set(catalogue)
    try:
        yield
    finally:
        _current.reset(token)


def current() -> Catalogue | None:
    """The catalogue set for this unit of work, or None."""
    return _current.get()
