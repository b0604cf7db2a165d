"""`entitle entitlements list|grant|revoke`."""
from __future__ import annotations

from typing import Optional

import typer

from app import entitlements, users
from cli import context
from cli.output import console, fail, print_json, table

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
                    "[green]yes[/]" if r["active"] else "no",
                    r["expires_at"] or "never",
                    r["source"],
                    r["reference"],
                    f"{r['revoked_at']} ({r['revoke_reason']})" if r["revoked_at"] else "",
                )
                for r in rows
            ],
        )
    )


@app.command("grant")
def grant(
    telegram_id: int = typer.Argument(..., help="The user's Telegram id."),
    entitlement: str = typer.Argument(..., help="The entitlement key, e.g. premium."),
    days: Optional[int] = typer.Option(None, "--days", min=1, help="How long; omit for lifetime."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Grant an entitlement by hand (recorded in the audit ledger)."""
    context.ready_database()
    user = users.ensure_user(telegram_id)
    result = entitlements.grant_manually(user, entitlement, days=days)
    data = entitlements.grant_to_dict(result.grant)
    if as_json:
        print_json(data)
        return
    console.print(f"granted [bold]{entitlement}[/] to {telegram_id} until {data['expires_at'] or 'forever'} ({data['reference']})")


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
    revoked = entitlements.revoke_entitlement(user, entitlement, reason="manual")
    if as_json:
        print_json([entitlements.grant_to_dict(g) for g in revoked])
    if not revoked:
        fail(f"user {telegram_id} holds no {entitlement!r} grant to revoke")
    if as_json:
        return
    console.print(f"revoked {len(revoked)} grant(s) of [bold]{entitlement}[/] from {telegram_id}")
