"""`entitle plans list`."""
from __future__ import annotations

import typer

from app.plans import Catalogue, PlanError
from cli import context
from cli.output import console, fail, print_json, table

app = typer.Typer(help="The plan catalogue.", no_args_is_help=True)


@app.command("list")
def list_plans(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List the plans of PLANS_FILE."""
    try:
        catalogue = Catalogue.from_file(context.settings().plans_file)
    except PlanError as exc:
        fail(str(exc))
    if as_json:
        print_json([plan.to_dict() for plan in catalogue])
        return
    rows = [
        (
            p.key,
            p.title,
            p.entitlement,
            f"{p.days} days" if p.days else "lifetime",
            (f"{p.stars} ⭐" + (" / 30 days" if p.stars_subscription else "")) if p.sold_for_stars else "—",
            f"{p.stripe_price} ({p.stripe_mode})" if p.sold_by_card else "—",
        )
        for p in catalogue
    ]
    console.print(table(f"Plans ({context.settings().plans_file})", ["plan", "title", "grants", "length", "stars", "card"], rows,
                        optional=["card", "grants"]))
