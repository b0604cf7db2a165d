"""`entitle reconcile telegram|stripe`: find in the providers' own ledgers what the webhooks never delivered."""
from __future__ import annotations

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

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
    outcomes = {} if dry_run else _hand_off(report.recorded_ids)
    if not dry_run:
        runs.finish(provider, report=report)
    summary = {**report.summary(), "provider": provider, "dry_run": dry_run}
    if as_json:
        print_json({"summary": summary, "rows": report.rows, "processed": {str(k): v for k, v in outcomes.items()}})
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


@app.command("telegram")
def telegram(days: int = DAYS, dry_run: bool = DRY_RUN, as_json: bool = AS_JSON) -> None:
    """Compare the bot's Star transactions (getStarTransactions) with the inbox; record missed payments and refunds."""
    _run("telegram", days, dry_run, as_json)


@app.command("stripe")
def stripe(days: int = DAYS, dry_run: bool = DRY_RUN, as_json: bool = AS_JSON) -> None:
    """Compare Stripe's event list with the inbox; record the handled events never delivered."""
    _run("stripe", days, dry_run, as_json)
