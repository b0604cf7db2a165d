"""`entitle reconcile telegram|stripe`: find in the providers' own ledgers what the webhooks never delivered."""
from __future__ import annotations

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from app.clock import iso, utcnow
from app.reconcile import runs, service
from cli import context
from cli.output import console, errors, fail, print_json, table

app = typer.Typer(help="Record what the providers' ledgers hold and the inbox lacks (missed payments and refunds).", no_args_is_help=True)

DAYS = typer.Option(30, "--days", min=1, max=30, help="How far back to read (both providers keep 30 days at most).")
DRY_RUN = typer.Option(False, "--dry-run", help="List what would be recorded; change nothing.")
AS_JSON = typer.Option(False, "--json", help="Machine-readable output.")


def _hand_off(event_ids: list[int]) -> dict[int, str]:
    """Queue the recorded events for the workers, or run them here without a broker."""
    runtime = context.runtime()
    inline = context.settings().embedded_broker
    return {i: runtime.run_inline(i) if inline else ("queued" if runtime.enqueue(i) else "pending") for i in event_ids}


def _run(provider: str, days: int, dry_run: bool, as_json: bool) -> None:
    context.ready_database()
    settings = context.settings()
    with Progress(
        SpinnerColumn(), BarColumn(), TextColumn("[bold]reading {task.fields[ledger]}[/] {task.completed} entries, {task.fields[calls]} call(s)"),
        TimeElapsedColumn(), console=errors, transient=True,
    ) as progress:
        task = progress.add_task("ledger", total=None, ledger=provider, calls=0)

        def advance(entries: int, calls: int) -> None:
            progress.update(task, completed=entries, calls=calls)

        try:
            report = service.reconcile(provider, settings, days=days, dry_run=dry_run, progress=advance)
        except service.NotConfigured as exc:
            fail(str(exc))
        except Exception as exc:  # the provider's API failed: say which, never a secret
            from app.inbox import describe_error

            fail(f"could not read the {provider} ledger: {describe_error(exc)}")
    handed_off_at = utcnow()
    outcomes = {} if dry_run else _hand_off(report.recorded_ids)
    if not dry_run:
        runs.finish(provider, report=report)
    summary = {**report.summary(), "provider": provider, "dry_run": dry_run}
    # Run here (no broker) and failed: said with its reason, and the command exits 1.
    failed = [i for i, outcome in outcomes.items() if outcome == "failed"]
    if as_json:
        print_json({"summary": summary, "rows": report.rows, "processed": {str(k): v for k, v in outcomes.items()}})
        if failed:
            raise typer.Exit(1)
        return
    rows = [(r["at"], r["external_id"], r["kind"], r["summary"], r["action"]) for r in report.rows if r["action"] != runs.Action.KNOWN]
    if rows:
        console.print(table(f"{provider} ledger since {summary['since']}", ["at", "external id", "kind", "what", "action"], rows))
    verb = "would be recorded" if dry_run else "recorded"
    count = summary["would_record"] if dry_run else summary["recorded"]
    console.print(
        f"{summary['found']} found, {summary['known']} already known, {count} {verb}, {summary['listed']} listed (not granted), "
        f"{summary['malformed']} malformed (skipped); "
        f"{summary['calls']} API call(s)" + (" — dry run, nothing changed" if dry_run else ""),
        highlight=False,
    )
    for line in _what_became_of(outcomes, handed_off_at):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _what_became_of(outcomes: dict[int, str], since) -> list[str]:
    """One line per recorded event: run here (what it granted or revoked, or why it failed), or left to the workers."""
    from app.models import Event, Grant, User

    lines = []
    for event_id, outcome in outcomes.items():
        event = Event.get_or_none(Event.id == event_id)
        if event is None:
            continue
        what = f"event {event_id} ({event.type} {event.external_id}" + (f", user {event.subject})" if event.subject else ")")
        if outcome in ("queued", "pending"):
            lines.append(f"{what}: {'queued for the workers' if outcome == 'queued' else 'left for the sweeper (the broker is down)'}; "
                         f"see `entitle events show {event_id}`")
            continue
        if outcome != "processed":
            reason = f": {event.error}" if event.error else ""
            lines.append(f"{what}: {outcome}{reason}; see `entitle events show {event_id}`")
            continue
        changed = []
        if event.subject is not None:
            mine = Grant.select().join(User).where(User.telegram_id == event.subject)
            for grant in mine.where(Grant.created_at >= since).order_by(Grant.id):
                changed.append(f"granted {grant.entitlement} to user {event.subject} "
                               + (f"until {iso(grant.ends_at)}" if grant.ends_at else "for good"))
            for grant in mine.where(Grant.revoked_at >= since).order_by(Grant.id):
                changed.append(f"revoked {grant.entitlement} of user {event.subject} ({grant.revoke_reason or 'revoked'})")
        lines.append(f"{what}: processed" + (f" — {'; '.join(changed)}" if changed else ""))
    return lines


@app.command("telegram")
def telegram(days: int = DAYS, dry_run: bool = DRY_RUN, as_json: bool = AS_JSON) -> None:
    """Compare the bot's Star transactions (getStarTransactions) with the inbox; record missed payments and refunds."""
    _run("telegram", days, dry_run, as_json)


@app.command("stripe")
def stripe(days: int = DAYS, dry_run: bool = DRY_RUN, as_json: bool = AS_JSON) -> None:
    """Compare Stripe's event list with the inbox; record the handled events never delivered."""
    _run("stripe", days, dry_run, as_json)
