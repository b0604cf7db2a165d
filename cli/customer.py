"""`entitle customer show`: where a support request starts."""
from __future__ import annotations

import typer
from rich.text import Text

from app import entitlements, timeline
from app.users import user_to_dict
from cli import context
from cli.output import console, fail, plain, print_json, styled, table

app = typer.Typer(help="One payer at a time.", no_args_is_help=True)


@app.command("show")
def show(
    telegram_id: int = typer.Argument(..., help="The payer's Telegram id."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """One payer's timeline, oldest first: payments, grants, revocations, refunds, messages and webhook deliveries."""
    context.ready_database()
    found = timeline.customer_timeline(telegram_id)
    if found is None:
        fail(f"no user with Telegram id {telegram_id} is known here")
    holds = entitlements.summary(found.user)
    if as_json:
        # `stripe_customer` means what it means in `/api/session` and `/api/me` (a card billing portal can be opened);
        # the operator gets the customer's id beside it.
        customer_id = found.user.stripe_customer_id
        user = {**user_to_dict(found.user), "stripe_customer": bool(customer_id), "stripe_customer_id": customer_id}
        print_json({"user": user, "entitlements": holds, "timeline": [line.to_dict() for line in found.lines]})
        return
    user = found.user
    customer = f" · Stripe customer {user.stripe_customer_id}" if user.stripe_customer_id else ""
    # The name is the payer's own words: printed as text, never as markup or terminal controls.
    console.print(Text.assemble(styled(user.display_name, "bold"), plain(f" (Telegram id {user.telegram_id}){customer}")), highlight=False)
    if holds:
        for held in holds:
            console.print(Text.assemble("  holds ", styled(held["entitlement"], "green"), f" until {held['expires_at'] or 'for good'}"), highlight=False)
    else:
        console.print("  holds nothing now")
    if not found.lines:
        console.print("nothing has happened to this user yet")
        return
    console.print(
        table(
            "Timeline (oldest first)",
            ["at", "kind", "what", "reference"],
            [(line.at.isoformat(timespec="seconds"), line.kind, line.summary, line.reference) for line in found.lines],
            optional=["reference"],
        )
    )
