"""What a request needs from the application: settings and the plan catalogue."""
from __future__ import annotations

from flask import current_app

from app.config import Settings
from app.plans import Catalogue


def settings() -> Settings:
    """The running application's settings."""
    return current_app.extensions["entitle"]["settings"]


def catalogue() -> Catalogue:
    """The running application's plan catalogue."""
    return current_app.extensions["entitle"]["catalogue"]
