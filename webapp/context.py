"""What a request needs from the application: its runtime, settings and the plan catalogue."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import current_app

from app.config import Settings
from app.plans import Catalogue, Plan, PlanError
from webapp.body import json_object, raw_body
from webapp.errors import ApiError

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)


def runtime() -> "Runtime":
    """The runtime the running application was built on."""
    return current_app.extensions["entitle"]


def settings() -> Settings:
    """The running application's settings."""
    return runtime().settings


def catalogue() -> Catalogue:
    """The plan catalogue as the plan file holds it now; after a broken edit, the last one read, until it is fixed."""
    plans = runtime().plans
    try:
        return plans.current()
    except PlanError as exc:
        if plans.last_good is None:
            raise
        log.error("%s; serving the plans read before the edit", exc)
        return plans.last_good


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
