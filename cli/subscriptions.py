"""`entitle subscriptions list|cancel|resume`: the payers' subscriptions and their states."""
from __future__ import annotations

from typing import Optional

import typer

from app import subscription_actions, subscriptions
from app.models import Subscription
from cli import context
from cli.output import console, fail, print_json, table

app = typer.Typer(help="The payers' subscriptions: list, cancel, resume.", no_args_is_help=True)


def _find(subscription_id: int) -> Subscription:
    context.ready_database()
    row = Subscription.get_or_none(Subscription.id == subscription_id)
    if row is None:
        fail(f"no subscription with id {subscription_id} (see `entitle subscriptions list`)")
    return row


def _next(row: Subscription) -> str:
    """The renewal or the end, in words."""
    if row.state == subscriptions.ACTIVE:
        return f"renews {_day(row.period_end)}"
    if row.state == subscriptions.CANCELED:
        return f"ends {_day(row.period_end)}"
    if row.state == subscriptions.PAST_DUE:
        return f"grace to {_day(row.grace_until or row.period_end)}"
    return f"ended {_day(row.ended_at)} ({row.end_reason})"


def _day(value) -> str:
    return value.isoformat(sep=" ", timespec="minutes") if value is not None else "?"


@app.command("list")
def list_subscriptions(
    user: Optional[int] = typer.Option(None, "--user", help="Only this Telegram user id."),
    state: Optional[str] = typer.Option(None, "--state", help="Only this state: active, canceled, past_due or ended."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List subscriptions, newest first, with their state and next renewal or end."""
    if state is not None and state not in subscriptions.STATES:
        fail(f"--state must be one of {', '.join(subscriptions.STATES)}, not {state!r}", code=2)
    context.ready_database()
    rows = subscriptions.list_subscriptions(user, state)
    if as_json:
        print_json([subscriptions.to_dict(row) for row in rows])
        return
    if not rows:
        console.print("no subscriptions" + (f" for user {user}" if user else "") + (f" in state {state}" if state else ""))
        return
    console.print(table(
        "Subscriptions",
        ["id", "user", "provider", "plan", "state", "next"],
        [(row.id, row.user.telegram_id, row.provider, row.plan, row.state, _next(row)) for row in rows],
    ))


def _run(action, row: Subscription, **kwargs):
    try:
        with context.grant_changes():
            return action(context.settings(), row, **kwargs)
    except subscription_actions.Refused as exc:
        fail(exc.message)
    except subscription_actions.ProviderFailed as exc:
        fail(f"nothing changed: {exc}")


@app.command("cancel")
def cancel(
    subscription_id: int = typer.Argument(..., help="The subscription's id (from `subscriptions list`)."),
    now: bool = typer.Option(False, "--now", help="End it and its grant at once, without a refund."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Stop a subscription's renewals (held to its period end), or with --now end it and its access at once."""
    row = _find(subscription_id)
    if now:
        outcome = _run(subscription_actions.end_now, row, actor="operator")
        said = "ended now, with its access; nothing was refunded" if outcome.changed else "already ended"
    else:
        outcome = _run(subscription_actions.cancel, row, actor="operator")
        current = outcome.subscription
        said = (f"canceled; held until {_day(current.period_end)}, will not renew" if outcome.changed
                else "already canceled; nothing changed")
        if current.state == subscriptions.ENDED:
            said = "canceled while past due: ended now"
    if as_json:
        print_json({**subscriptions.to_dict(outcome.subscription), "changed": outcome.changed})
        return
    console.print(f"subscription {subscription_id}: {said}", highlight=False)


@app.command("resume")
def resume(
    subscription_id: int = typer.Argument(..., help="The subscription's id (from `subscriptions list`)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Let a canceled subscription renew again."""
    outcome = _run(subscription_actions.resume, _find(subscription_id), actor="operator")
    if as_json:
        print_json({**subscriptions.to_dict(outcome.subscription), "changed": outcome.changed})
        return
    said = f"resumed; renews {_day(outcome.subscription.period_end)}" if outcome.changed else "already renewing; nothing changed"
    console.print(f"subscription {subscription_id}: {said}", highlight=False)
