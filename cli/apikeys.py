"""`entitle apikeys create|list|revoke`: keys for the operator's backend (`/api/v1`)."""
from __future__ import annotations

import typer

from app import apikeys
from cli import context
from cli.output import console, fail, plain, print_json, table

app = typer.Typer(help="API keys for /api/v1 (the operator's backend).", no_args_is_help=True)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="What the key is for, e.g. backend-prod."),
    read_only: bool = typer.Option(False, "--read-only", help="The key may check users and entitlements, never grant or revoke."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the key (for `KEY=$(…)`)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Make a key and print it once; only its hash is kept."""
    if not 0 < len(name) <= 128:
        fail("NAME must be 1 to 128 characters", code=2)
    context.ready_database()
    created = apikeys.create(name, read_only=read_only)
    if as_json:
        print_json({"id": created.row.id, "name": name, "key": created.key, "read_only": read_only})
        return
    if quiet:
        console.print(created.key, highlight=False, soft_wrap=True)
        return
    access = "read-only " if read_only else ""
    console.print(plain(f"{access}API key {created.row.id} ({name}); shown only now, store it safely:"), highlight=False)
    console.print(created.key, highlight=False, soft_wrap=True)


@app.command("list")
def list_keys(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Every key (never the key itself), newest first."""
    context.ready_database()
    rows = [apikeys.key_to_dict(row) for row in apikeys.list_keys()]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no API keys; `entitle apikeys create NAME` makes one")
        return
    console.print(table("API keys", ["id", "name", "prefix", "access", "created", "revoked"],
                        [(r["id"], r["name"], r["prefix"], "read" if r["read_only"] else "read, write", r["created_at"],
                          r["revoked_at"] or "") for r in rows]))


@app.command("revoke")
def revoke(
    key_id: int = typer.Argument(..., help="The key's id (from `apikeys list`)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Revoke a key; requests with it are refused at once."""
    context.ready_database()
    row = apikeys.revoke(key_id)
    if row is None:
        fail(f"no API key {key_id}")
    if as_json:
        print_json(apikeys.key_to_dict(row))
        return
    console.print(f"revoked API key {row.id} ({row.name})", highlight=False)
