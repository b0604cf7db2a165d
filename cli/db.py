"""`entitle db migrate|status`."""
from __future__ import annotations

import typer

from app import migrations
from cli import context
from cli.output import console, fail, print_json, table

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@app.command("migrate")
def migrate() -> None:
    """Apply pending schema migrations."""
    context.database()
    try:
        applied = migrations.migrate()
    except Exception as exc:
        fail(f"migration failed: {type(exc).__name__}: {exc}")
    if applied:
        for m in applied:
            console.print(f"applied {m.version:04d} {m.name}")
    else:
        console.print("database schema is up to date")


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Show which migrations are applied."""
    context.database()
    try:
        rows = migrations.status()
    except Exception as exc:
        fail(f"database unreachable: {type(exc).__name__}: {exc}")
    if as_json:
        print_json([{"version": m.version, "name": m.name, "applied": done} for m, done in rows])
        return
    console.print(table("Migrations", ["version", "name", "state"], [(f"{m.version:04d}", m.name, "applied" if done else "pending") for m, done in rows]))
