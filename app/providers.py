"""Loads every provider's inbox handlers, so a worker knows all event types."""
from __future__ import annotations

import importlib

from app.config import Settings, load_settings

HANDLER_MODULES = ("app.telegram.handlers", "app.stripe.handlers")

_settings: Settings | None = None


def load_handlers(settings: Settings | None = None) -> None:
    """Import the handler modules; each registers itself with the inbox. Settings given here are what handlers run with."""
    global _settings
    if settings is not None:
        _settings = settings
    for name in HANDLER_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not exc.name or not name.startswith(exc.name):
                raise


def settings() -> Settings:
    """The settings handlers run with: those the worker was set up with, else the environment's."""
    return _settings if _settings is not None else load_settings()
