"""Refuse to boot a worker that production settings forbid."""
from __future__ import annotations

from dramatiq.middleware import Middleware, MiddlewareError

from app.config import ConfigError, Settings, check_for_startup


class StartupCheck(Middleware):
    """A worker with a missing or default secret in production stops, naming the variable."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def before_worker_boot(self, broker, worker):
        from app.plans import Catalogue, PlanError

        try:
            check_for_startup(self.settings)
            Catalogue.from_file(self.settings.plans_file)  # a bad chat id or plan stops the worker, named
        except (ConfigError, PlanError) as exc:
            # Dramatiq lets only MiddlewareError stop a boot; anything else is logged and ignored.
            raise MiddlewareError(str(exc)) from None
