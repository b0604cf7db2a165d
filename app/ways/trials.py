"""Free trials: a plan's `trial_days`, once per payer and entitlement, for payers who never held it."""
from __future__ import annotations

import peewee

from app import entitlements, metrics
from app.db import for_update, transaction
from app.entitlements import GrantResult
from app.models import Grant, Trial, User
from app.plans import Catalogue, Plan
from app.ways.refusals import Refused, plan_named, unknown_plan

SOURCE = "trial"


def trial_plans(catalogue: Catalogue) -> list[Plan]:
    """The plans that offer a free trial."""
    return [plan for plan in catalogue if plan.trial_days]


def choose_plan(catalogue: Catalogue, key: str | None) -> Plan:
    """The plan named (or the only one with a trial); Refused naming the choices otherwise."""
    offered = trial_plans(catalogue)
    if key:
        plan = plan_named(catalogue, key)
        if plan is None:
            raise unknown_plan(key)
        if not plan.trial_days:
            raise Refused("no_trial", f"{plan.title} has no free trial.", 400)
        return plan
    if len(offered) == 1:
        return offered[0]
    if not offered:
        raise Refused("no_trial", "There is no free trial right now.", 400)
    raise Refused("plan_required", "Which plan? Free trials: " + ", ".join(p.key for p in offered), 400)


def _refuse_if_taken(user: User, plan: Plan) -> None:
    if Trial.select().where((Trial.user == user.id) & (Trial.entitlement == plan.entitlement)).exists():
        raise Refused("trial_used", f"You have already had your free trial of {plan.title}.")
    if Grant.select().where((Grant.user == user.id) & (Grant.entitlement == plan.entitlement)).exists():
        raise Refused("held_before", f"Free trials are for first-timers, and you have had {plan.title} before.")


def start(user: User, plan: Plan, *, via: str) -> GrantResult:
    """Start the plan's trial for the user; Refused when they had it or held its entitlement before (from any source)."""
    if not plan.trial_days:
        raise Refused("no_trial", f"{plan.title} has no free trial.", 400)
    try:
        with transaction():
            # The user's lock serialises their trials; the unique (user, entitlement) index is the last word.
            for_update(User.select(User.id).where(User.id == user.id)).get()
            _refuse_if_taken(user, plan)
            Trial.create(user=user, entitlement=plan.entitlement, plan=plan.key, via=via)
            result = entitlements.grant(
                user, plan.entitlement, source=SOURCE, reference=f"trial:{user.telegram_id}:{plan.entitlement}",
                days=plan.trial_days, plan=plan.key, actor=via, detail={"trial": True},
            )
    except peewee.IntegrityError:
        raise Refused("trial_used", f"You have already had your free trial of {plan.title}.") from None
    metrics.trials_started.inc()
    return result


def reserve_for_checkout(user: User, plan: Plan, session_reference: str | None = None) -> bool:
    """Reserve a card subscription's trial for a Checkout Session; False when the payer cannot have one (no error)."""
    if not plan.trial_days:
        return False
    try:
        with transaction():
            for_update(User.select(User.id).where(User.id == user.id)).get()
            try:
                _refuse_if_taken(user, plan)
            except Refused:
                return False
            Trial.create(user=user, entitlement=plan.entitlement, plan=plan.key, via="stripe", reference=session_reference)
    except peewee.IntegrityError:
        return False
    metrics.trials_started.inc()
    return True


def is_trial_grant(grant: Grant | None) -> bool:
    """True when the grant is a free trial's."""
    return grant is not None and grant.source == SOURCE
