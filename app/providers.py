"""Loads every provider's inbox handlers, so a worker knows all event types."""
from __future__ import annotations

import importlib
import os

from app.config import Settings, load_settings
from app.plans import Catalogue

HANDLER_MODULES = ("app.telegram.handlers", "app.stripe.handlers", "app.access.handlers")

_settings: Settings | None = None
# (path, mtime_ns, size) of the plan file last read, and what it held.
_catalogue: tuple[tuple[str, int, int], Catalogue] | None = None


def load_handlers(settings: Settings | None = None) -> None:
    """Import the handler modules; each registers itself with the inbox. Settings given here are what handlers run with."""
    global _settings
    if settings is not None:
        _settings = settings
    for name in HANDLER_MODULES:
        importlib.import_module(name)


def settings() -> Settings:
    """The settings handlers run with: those the worker was set up with, else the environment's."""
    return _settings if _settings is not None else load_settings()


def catalogue() -> Catalogue:
    """The plan catalogue of `settings().plans_file`, read again only when the file changes (an operator's edit)."""
    global _catalogue
    path = os.fspath(settings().plans_file)
    try:
        stat = os.stat(path)
    except OSError:
        return Catalogue.from_file(path)  # raises PlanError naming the file
    key = (path, stat.st_mtime_ns, stat.st_size)
    cached = _catalogue
    if cached is not None and cached[0] == key:
        return cached[1]
    loaded = Catalogue.from_file(path)
    _catalogue = (key, loaded)
    return loaded
