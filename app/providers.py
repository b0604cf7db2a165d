"""Loads every provider's inbox handlers, so a worker knows all event types."""
from __future__ import annotations

import importlib

HANDLER_MODULES = ("app.telegram.handlers", "app.stripe.handlers")


def load_handlers() -> None:
    """Import the handler modules; each registers itself with the inbox."""
    for name in HANDLER_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not exc.name or not name.startswith(exc.name):
                raise
