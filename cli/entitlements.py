"""`entitle entitlements list|grant|revoke`."""
from __future__ import annotations

from difflib import get_close_matches
from typing import Optional

import typer
from rich.text import Text

from app import entitlements, users
from app.clock import MAX_DAYS
from app.plans import Catalogue, PlanError
from cli import context
from cli.output import console, fail, print_json, styled, table

MAX_TELEGRAM_ID = 2**53 - 1  # Telegram ids fit in 52 significant bits

app = typer.Typer(help="What users hold, and manual changes.", no_args_is_help=True)


@app.command("list")
def list_grants(
    user: Optional[int] = typer.Option(None, "--user", help="Only this Telegram user id."),
    limit: int = typer.Option(200, "--limit", min=1, help="At most this many rows."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List grants (newest first) with whether each holds now."""
    context.ready_database()
    rows = [entitlements.grant_to_dict(g) for g in entitlements.list_grants(user, limit)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no grants" + (f" for user {user}" if user else ""))
        return
    console.print(
        table(
            "Grants",
            ["user", "entitlement", "active", "expires", "source", "reference", "revoked"],
            [
                (
                    r["user"],
                    r["entitlement"],
                    styled("yes", "green") if r["active"] else "no",
                    r["expires_at"] or "never",
                    r["source"],
                    r["reference"],
                    f"{r['revoked_at']} ({r['revoke_reason']})" if r["revoked_at"] else "",
                )
                for r in rows
            ],
            optional=["source", "revoked", "active"],
        )
    )


def _known_entitlements() -> set[str]:
    """The entitlements some plan of the catalogue grants."""
    try:
        return {plan.entitlement for plan in Catalogue.from_file(context.settings().plans_file)}
    except PlanError as exc:
        fail(str(exc))


@app.command("grant")
def grant(
    telegram_id: int = typer.Argument(..., min=1, max=MAX_TELEGRAM_ID, help="The user's Telegram id."),
    entitlement: str = typer.Argument(..., help="The entitlement key, e.g. premium."),
    days: Optional[float] = typer.Option(None, "--days", min=0.0001, max=MAX_DAYS, help="How long (fractions too, e.g. 0.5); omit for lifetime."),
    new: bool = typer.Option(False, "--new", help="Grant an entitlement that no plan grants (not a typo)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Grant an entitlement by hand (recorded in the audit ledger)."""
    known = _known_entitlements()
    if entitlement not in known and not new:
        hint = f"; did you mean {' or '.join(repr(k) for k in close)}?" if (close := get_close_matches(entitlement, known)) else ""
        fail(f"no plan grants {entitlement!r}{hint} (known: {', '.join(sorted(known)) or 'none'}); pass --new if it is meant", code=1)
    context.ready_database()
    user = users.ensure_user(telegram_id)
    with context.grant_changes():
        result = entitlements.grant_manually(user, entitlement, days=days)
    data = entitlements.grant_to_dict(result.grant)
    if as_json:
        print_json(data)
        return
    console.print(Text.assemble("granted ", styled(entitlement, "bold"), f" to {telegram_id} until {data['expires_at'] or 'forever'} ({data['reference']})"))


@app.command("revoke")
def revoke(
    telegram_id: int = typer.Argument(..., help="The user's Telegram id."),
    entitlement: str = typer.Argument(..., help="The entitlement key."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Revoke every grant of an entitlement a user holds (recorded in the audit ledger)."""
    context.ready_database()
    user = users.find_user(telegram_id)
    if user is None:
        fail(f"no user with Telegram id {telegram_id}")
    with context.grant_changes():
        revoked = entitlements.revoke_entitlement(user, entitlement, reason="manual")
    if as_json:
        print_json([entitlements.grant_to_dict(g) for g in revoked])
    if not revoked:
        fail(f"user {telegram_id} holds no {entitlement!r} grant to revoke")
    if as_json:
        return
    console.print(Text.assemble(f"revoked {len(revoked)} grant(s) of ", styled(entitlement, "bold"), f" from {telegram_id}"))
