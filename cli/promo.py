"""`entitle promo create|list|show|disable`: codes an operator hands out for days of an entitlement."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import typer

from cli import context
from cli.output import console, fail, print_json, table

app = typer.Typer(help="Promo codes payers redeem for days of an entitlement.", no_args_is_help=True)


def _expiry(raw: Optional[str]) -> datetime | None:
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--expires {raw!r} is not a date (YYYY-MM-DD, or YYYY-MM-DDTHH:MM in UTC)", code=2)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


@app.command("create")
def create(
    code: str = typer.Argument(..., help="The code payers type (3-32 letters, digits, '-' or '_'; any case)."),
    entitlement: str = typer.Option(..., "--entitlement", help="The entitlement it grants."),
    days: int = typer.Option(..., "--days", help="How many days it grants (stacked on what the payer holds)."),
    max_uses: Optional[int] = typer.Option(None, "--max-uses", help="How many redemptions in all (default: no cap)."),
    per_user: int = typer.Option(1, "--per-user", help="How many times one payer may redeem it."),
    expires: Optional[str] = typer.Option(None, "--expires", help="When it stops working (a date, UTC)."),
    new_users_only: bool = typer.Option(False, "--new-users-only", help="Only for payers who never held anything."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Create a promo code."""
    from app.ways import promo

    context.ready_database()
    spec = promo.NewCode(code, entitlement, days, max_uses, per_user, _expiry(expires), new_users_only)
    try:
        row = promo.create(spec)
    except promo.CodeError as exc:
        fail(str(exc))
    if as_json:
        print_json(promo.to_dict(row))
        return
    cap = f"{row.max_uses} uses" if row.max_uses else "no cap"
    console.print(f"promo code {row.code}: {row.days} days of {row.entitlement}, {cap}, {row.per_user} per payer", highlight=False)
    console.print(f"payers redeem it with /redeem {row.code}, the link https://t.me/<your bot>?start=promo_{row.code},"
                  " or in the Mini App", highlight=False, soft_wrap=True)


@app.command("list")
def list_codes(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Every code with its uses, newest first."""
    from app.models import PromoCode
    from app.ways import promo

    context.ready_database()
    rows = [promo.to_dict(row) for row in PromoCode.select().order_by(PromoCode.created_at.desc(), PromoCode.id.desc())]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no promo codes; `entitle promo create CODE --entitlement KEY --days N` makes one")
        return
    console.print(table("Promo codes", ["code", "entitlement", "days", "uses", "expires", "state"],
                        [(r["code"], r["entitlement"], r["days"], f"{r['uses']}/{r['max_uses'] or '∞'}", r["expires_at"] or "",
                          "disabled" if r["disabled_at"] else "active") for r in rows]))


def _found(code: str):
    from app.ways import promo

    context.ready_database()
    row = promo.find(code)
    if row is None:
        fail(f"no promo code {code!r} (see `entitle promo list`)")
    return row


@app.command("show")
def show(
    code: str = typer.Argument(..., help="The code (any case)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """A code and who redeemed it."""
    from app.clock import iso
    from app.ways import promo

    row = _found(code)
    used = [{"user": r.user.telegram_id, "at": iso(r.at), "grant": r.grant_reference} for r in promo.redemptions(row)]
    if as_json:
        print_json({**promo.to_dict(row), "redemptions": used})
        return
    data = promo.to_dict(row)
    console.print(f"{row.code}: {row.days} days of {row.entitlement}; used {row.uses}/{row.max_uses or '∞'}"
                  + (f"; expires {data['expires_at']}" if row.expires_at else "") + ("; disabled" if row.disabled_at else ""),
                  highlight=False)
    if used:
        console.print(table("Redemptions", ["user", "at", "grant"], [(u["user"], u["at"], u["grant"]) for u in used]))


@app.command("disable")
def disable(
    code: str = typer.Argument(..., help="The code (any case)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Stop a code from being redeemed (its grants stand)."""
    from app.ways import promo

    row = promo.disable(_found(code))
    if as_json:
        print_json(promo.to_dict(row))
        return
    console.print(f"promo code {row.code} disabled; {row.uses} redemption(s) stand", highlight=False)
