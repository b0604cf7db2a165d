"""`entitle events list|show|replay`: the event inbox."""
from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import List, Optional

import typer
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax

from app import inbox
from app.models import Event, EventStatus
from cli import context
from cli.output import console, errors, fail, plain, print_json, styled, table

app = typer.Typer(help="The event inbox: every accepted webhook.", no_args_is_help=True)

PROVIDERS = ("telegram", "stripe", "access")
REPLAY_WAIT = 30.0  # seconds `events replay` waits for the workers' outcome by default
STATUS_STYLE = {"pending": "yellow", "processed": "green", "failed": "red", "ignored": "dim"}


def _check_choice(value: Optional[str], allowed: tuple[str, ...], name: str) -> None:
    if value is not None and value not in allowed:
        raise typer.BadParameter(f"must be one of {', '.join(allowed)}", param_hint=name)


@app.command("list")
def list_events(
    provider: Optional[str] = typer.Option(None, "--provider", help="telegram, stripe or access."),
    status: Optional[str] = typer.Option(None, "--status", help="pending, processed, failed or ignored."),
    user: Optional[int] = typer.Option(None, "--user", min=1, help="Only the events about this Telegram user (the payer, the requester)."),
    search: Optional[str] = typer.Option(None, "--search", help="A charge id, PaymentIntent, Checkout Session id or any text in the payload."),
    limit: int = typer.Option(50, "--limit", min=1, max=10000, help="At most this many rows."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List events, newest first; says how many matched when it shows fewer."""
    _check_choice(provider, PROVIDERS, "--provider")
    _check_choice(status, EventStatus.ALL, "--status")
    context.ready_database()
    filters = dict(provider=provider, status=status, search=search, user=user)
    rows = [inbox.event_to_dict(e) for e in inbox.list_events(**filters, limit=limit)]
    if len(rows) == limit:
        total = inbox.count_events(**filters)
        if total > limit:
            errors.print(f"showing {limit} of {total} matching events (newest first); --limit N shows more", highlight=False)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no events")
        return
    console.print(
        table(
            "Events",
            ["id", "provider", "type", "external id", "user", "status", "attempts", "received", "error"],
            [
                (
                    r["id"],
                    r["provider"],
                    r["type"],
                    r["external_id"],
                    r["user"],
                    styled(r["status"], STATUS_STYLE[r["status"]]),
                    r["attempts"],
                    r["received_at"],
                    r["error"] or "",
                )
                for r in rows
            ],
            optional=["attempts", "provider", "user", "error", "received"],
        )
    )


@app.command("show")
def show(
    event_id: int = typer.Argument(..., help="The event's id."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """One event, its payload and its history."""
    context.ready_database()
    event = Event.get_or_none(Event.id == event_id)
    if event is None:
        fail(f"no event {event_id}")
    data = inbox.event_to_dict(event, with_payload=True)
    if as_json:
        print_json(data)
        return
    head = {k: v for k, v in data.items() if k not in ("payload", "history")}
    console.print(table(f"Event {event_id}", ["field", "value"], head.items()))
    console.print(Panel(Syntax(json.dumps(data["payload"], indent=2), "json", word_wrap=True), title="payload"))
    console.print(table("History", ["at", "action", "detail"], [(h["at"], h["action"], h["detail"]) for h in data["history"]]))


@app.command("replay")
def replay(
    event_ids: Optional[List[int]] = typer.Argument(None, help="Event ids to run again."),
    failed: bool = typer.Option(False, "--failed", help="Replay every failed event."),
    provider: Optional[str] = typer.Option(None, "--provider", help="With --failed: only this provider."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="A line per event, and the handlers' warnings."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="With a broker: wait for the workers' outcome (default) or only queue."),
    timeout: float = typer.Option(REPLAY_WAIT, "--timeout", min=0, help="With a broker: seconds to wait for the outcome at most."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Run events again; safe, since nothing is granted twice. A processed event is left as it is.

    Without a broker (embedded mode) the events run here and now; with one they are queued for the workers,
    each on the queue its kind is routed to (a bot command on `sessions`), and the command waits (bounded)
    for their outcome. A failed event is shown with its reason.
    """
    _check_choice(provider, PROVIDERS, "--provider")
    if bool(event_ids) == failed:
        raise typer.BadParameter("give event ids or --failed (not both)")
    context.ready_database()
    ids = inbox.failed_ids(provider) if failed else list(dict.fromkeys(event_ids))
    if not ids:
        if as_json:
            print_json({"replayed": [], "missing": [], "results": {}})
        else:
            console.print("nothing to replay")
        return
    runtime = context.runtime()
    inline = context.settings().embedded_broker
    known = inbox.statuses(ids)
    unchanged = [i for i in ids if known.get(i) == EventStatus.PROCESSED]
    found = set(inbox.mark_for_replay([i for i in ids if i in known and i not in unchanged]))
    unchanged += [i for i in ids if i in known and i not in found and i not in unchanged]  # processed meanwhile
    missing = [i for i in ids if i not in known]
    results: dict[int, str] = {}
    with Progress(
        TextColumn("[bold]replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=errors, transient=as_json, disable=len(found) < 2,
    ) as progress, _quiet_handlers(unless=verbose):
        task = progress.add_task("replay", total=len(found))
        for event_id in [i for i in ids if i in found]:
            results[event_id] = runtime.run_inline(event_id) if inline else ("queued" if runtime.enqueue(event_id) else "pending")
            progress.advance(task)
    if results and not inline and wait:
        results.update(_outcomes(list(results), timeout))
    reasons = _reasons([i for i, outcome in results.items() if outcome in (EventStatus.FAILED, EventStatus.PENDING, EventStatus.IGNORED)])
    if as_json:
        print_json({"replayed": sorted(found), "unchanged": unchanged, "missing": missing, "results": results, "errors": reasons})
    elif verbose or len(ids) == 1:
        for event_id in unchanged:
            console.print(f"event {event_id}: already processed; nothing changed")
        for event_id, outcome in results.items():
            line = f"event {event_id}: {_described(outcome, timeout)}"
            reason = reasons.get(event_id)
            style = "red" if outcome == EventStatus.FAILED else None
            # The outcome may quote a provider's error: printed as text, never as markup.
            (errors if style else console).print(styled(line, style) if style else plain(line), highlight=False, soft_wrap=True)
            if reason:
                (errors if style else console).print(plain(f"  {reason}"), highlight=False, soft_wrap=True)
        for event_id in missing:
            errors.print(f"[red]event {event_id}: no such event[/]")
    else:
        console.print(_summary(results, unchanged, missing), highlight=False)
    if missing or any(r == "failed" for r in results.values()):
        raise typer.Exit(1)


def _outcomes(event_ids: list[int], timeout: float) -> dict[int, str]:
    """Wait until the workers have run these events (or `timeout` seconds passed); their statuses."""
    deadline = time.monotonic() + timeout
    while True:
        known = inbox.statuses(event_ids)
        if all(status != EventStatus.PENDING for status in known.values()) or time.monotonic() >= deadline:
            return known
        time.sleep(0.2)


def _reasons(event_ids: list[int]) -> dict[int, str]:
    """The last error of each of these events that has one: why it failed, or why it is still being retried."""
    if not event_ids:
        return {}
    rows = Event.select(Event.id, Event.error).where(Event.id.in_(event_ids) & Event.error.is_null(False))
    return {row.id: row.error for row in rows}


def _described(outcome: str, timeout: float) -> str:
    if outcome == EventStatus.PENDING:
        return f"still pending after {timeout:g} s (queued; the workers retry it)"
    return outcome


def _summary(results: dict[int, str], unchanged: list[int], missing: list[int]) -> str:
    """One line for a bulk replay: `300 queued, 0 skipped`, then what needs a look."""
    outcomes: dict[str, int] = {}
    for outcome in results.values():
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    parts = [f"{n} {outcome}" for outcome, n in sorted(outcomes.items(), key=lambda kv: -kv[1])] or ["0 queued"]
    parts.append(f"{len(unchanged)} skipped (already processed)" if unchanged else "0 skipped")
    if missing:
        parts.append(f"{len(missing)} missing ({', '.join(map(str, missing[:10]))}{'…' if len(missing) > 10 else ''})")
    line = ", ".join(parts)
    if outcomes.get("failed"):
        line += "; `entitle events list --status failed` shows why (`--verbose` for a line per event)"
    return line


@contextlib.contextmanager
def _quiet_handlers(*, unless: bool):
    """Keep the handlers' per-event warnings off the terminal during a bulk replay (errors still show)."""
    root = logging.getLogger()
    previous = root.level
    if not unless:
        root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(previous)
