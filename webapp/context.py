"""What a request needs from the application: settings and the plan catalogue."""
from __future__ import annotations

from flask import current_app

from app.config import Settings
from app.plans import Catalogue, Plan
from webapp.body import json_object, raw_body
from webapp.errors import ApiError


def settings() -> Settings:
    """The running application's settings."""
    return current_app.extensions["entitle"]["settings"]


def catalogue() -> Catalogue:
    """The running application's plan catalogue."""
    return current_app.extensions["entitle"]["catalogue"]


def requested_plan(*, stars: bool) -> Plan:
    """The plan named by the JSON body `{"plan": …}`, sold for Stars (`stars=True`) or by card; 400 otherwise."""
    body = json_object(what='a JSON object like {"plan": "…"}') if raw_body() else {}
    key = body.get("plan")
    if not isinstance(key, str) or not key:
        raise ApiError(400, "plan_required", 'send {"plan": "<plan key>"} naming a plan from GET /api/plans')
    plan = catalogue().get(key)
    if plan is None:
        raise ApiError(400, "unknown_plan", f"there is no plan {key!r}")
    if stars and not plan.sold_for_stars:
        raise ApiError(400, "not_sold_for_stars", f"plan {key!r} is not sold for Telegram Stars")
    if not stars and not plan.sold_by_card:
        raise ApiError(400, "not_sold_by_card", f"plan {key!r} is not sold by card")
    return plan
