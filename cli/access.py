"""`entitle access audit`: members of the entitlements' chats that entitle knows, checked against what they hold."""
from __future__ import annotations

from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cli import context
from cli.output import console, errors, fail, print_json, table

app = typer.Typer(help="Telegram chat access of entitlements.", no_args_is_help=True)

MEMBER_STATUSES = ("member", "restricted")


def _specs(entitlement: str | None):
    from app.plans import Catalogue, PlanError

    try:
        catalogue = Catalogue.from_file(context.settings().plans_file)
    except PlanError as exc:
        fail(str(exc))
    specs = [s for s in catalogue.entitlements.values() if s.chats and (entitlement is None or s.key == entitlement)]
    if entitlement is not None and not specs:
        fail(f"entitlement {entitlement!r} has no chats in {context.settings().plans_file}")
    return catalogue, specs


def _known_users(entitlement: str):
    from app.models import Grant, User

    return list(User.select().join(Grant, on=(Grant.user == User.id)).where(Grant.entitlement == entitlement).distinct().order_by(User.telegram_id))


def _check(bot, catalogue, spec, chat: int, user, fix: bool) -> dict:
    from telebot.apihelper import ApiException

    from app.access import chats, membership
    from app.telegram.client import describe_error

    # The removals' own rule: any entitlement listing the chat keeps its holder in, not only `spec`.
    kept_by = membership.keeping_entitlement(catalogue, user.id, chat)
    row = {"entitlement": spec.key, "chat": chat, "user": user.telegram_id, "holds": kept_by is not None, "kept_by": kept_by}
    try:
        row["status"] = chats.member_status(bot, chat, user.telegram_id)
    except ApiException as exc:
        return {**row, "status": "unknown", "verdict": "error", "detail": describe_error(exc)}
    inside = row["status"] in MEMBER_STATUSES
    if row["status"] in chats.ADMIN_STATUSES:
        verdict = "admin"
    elif inside and not row["holds"]:
        verdict = "should_leave"
        if fix:
            try:
                chats.remove(bot, chat, user.telegram_id)
                verdict = "removed"
            except ApiException as exc:
                return {**row, "verdict": "error", "detail": describe_error(exc)}
    else:
        verdict = "ok"
    return {**row, "verdict": verdict, "detail": None}


@app.command("audit")
def audit(
    entitlement: Optional[str] = typer.Option(None, "--entitlement", help="Only this entitlement's chats."),
    fix: bool = typer.Option(False, "--fix", help="Remove members who hold nothing that keeps them in the chat."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check the members of configured chats that entitle knows against their entitlements (getChatMember)."""
    from app.telegram.client import NotConfigured, client_for

    context.ready_database()
    catalogue, specs = _specs(entitlement)
    try:
        bot = client_for(context.settings())
    except NotConfigured:
        fail("TELEGRAM_BOT_TOKEN is not set")
    work = [(spec, chat, user) for spec in specs for user in _known_users(spec.key) for chat in spec.chats]
    rows = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=errors, transient=True, disable=as_json) as progress:
        task = progress.add_task("checking chat members", total=len(work))
        for spec, chat, user in work:
            rows.append(_check(bot, catalogue, spec, chat, user, fix))
            progress.advance(task)
    _count(rows)
    held = _held_join_requests(specs)
    if as_json:
        print_json(rows + held)
    elif not specs:
        console.print(f"no entitlement lists a chat in {context.settings().plans_file}", highlight=False)
    elif not rows:
        console.print("no known users in any configured chat")
    else:
        console.print(table("Chat access", ["entitlement", "chat", "user", "status", "holds", "verdict"],
                            [(r["entitlement"], r["chat"], r["user"], r["status"], "yes" if r["holds"] else "no", r["verdict"]) for r in rows]))
    if held and not as_json:
        console.print(table("Join requests held at the paywall", ["entitlement", "chat", "user", "waiting"],
                            [(r["entitlement"], r["chat"], r["user"], r["detail"]) for r in held]))
    if any(r["verdict"] in ("should_leave", "error") for r in rows):
        raise typer.Exit(1)


def _held_join_requests(specs) -> list[dict]:
    """Join requests of these entitlements' chats waiting at the paywall, as audit rows (verdict `held`)."""
    from app.access import join_queries
    from app.clock import iso

    chats = {chat: spec.key for spec in specs for chat in spec.chats}
    return [
        {"entitlement": chats[row.chat], "chat": row.chat, "user": row.telegram_id, "status": "join request at the paywall",
         "holds": False, "verdict": "held", "detail": f"since {iso(row.created_at)}; unpaid at {iso(row.expires_at)}"}
        for row in join_queries.pending() if row.chat in chats
    ]


def _count(rows: list[dict]) -> None:
    from app import metrics

    for row in rows:
        result = {"removed": "ok", "should_leave": "skipped", "error": "failed", "admin": "admin"}.get(row["verdict"], "ok")
        metrics.chat_access.labels(action="audit", result=result).inc()
