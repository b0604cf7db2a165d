"""`entitle webhooks`: endpoints for outgoing webhooks, the delivery log, redelivery and a `ping`."""
from __future__ import annotations

import time
from typing import List, Optional

import typer

from app.webhooks import delivery, endpoints, outbox
from cli import context
from cli.output import console, fail, print_json, table

app = typer.Typer(help="Outgoing webhooks to the operator's backend (Standard Webhooks).", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Machine-readable output.")


@app.command("add")
def add(
    url: str = typer.Argument(..., help="Where to POST the messages (http:// or https://)."),
    events: Optional[List[str]] = typer.Option(None, "--event", help="Only this type (repeatable); default: every type."),
    as_json: bool = JSON,
) -> None:
    """Add an endpoint and print its signing secret, once."""
    try:
        endpoints.check_url(url)
        endpoints.check_events(events)
    except endpoints.EndpointError as exc:
        fail(str(exc), code=2)
    context.ready_database()
    added = endpoints.add(url, events)
    if as_json:
        print_json({"id": added.row.id, "url": added.row.url, "secret": added.secret})
        return
    console.print(f"webhook endpoint {added.row.id} → {added.row.url} ({_events(added.row.events)})", highlight=False)
    console.print("signing secret, shown only now (verify with any Standard Webhooks library):", highlight=False)
    console.print(added.secret, highlight=False, soft_wrap=True)


@app.command("list")
def list_endpoints(as_json: bool = JSON) -> None:
    """Every live endpoint (never its secret), oldest first."""
    context.ready_database()
    rows = [endpoints.endpoint_to_dict(row) for row in endpoints.live()]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no webhook endpoints; `entitle webhooks add URL` adds one")
        return
    console.print(table("Webhook endpoints", ["id", "url", "events", "created"],
                        [(r["id"], r["url"], _events(r["events"]), r["created_at"]) for r in rows]))


@app.command("remove")
def remove(endpoint_id: int = typer.Argument(..., help="The endpoint's id (from `webhooks list`)."), as_json: bool = JSON) -> None:
    """Stop sending to an endpoint; what was pending for it is marked failed."""
    context.ready_database()
    row = endpoints.remove(endpoint_id)
    if row is None:
        fail(f"no webhook endpoint {endpoint_id}")
    if as_json:
        print_json(endpoints.endpoint_to_dict(row))
        return
    console.print(f"removed webhook endpoint {row.id} ({row.url})", highlight=False)


@app.command("deliveries")
def deliveries(
    endpoint_id: Optional[int] = typer.Option(None, "--endpoint", help="Only this endpoint's."),
    status: Optional[str] = typer.Option(None, "--status", help="pending, delivered or failed."),
    user: Optional[int] = typer.Option(None, "--user", help="Only this Telegram user's."),
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many, newest first."),
    as_json: bool = JSON,
) -> None:
    """The delivery log, newest first."""
    if status is not None and status not in delivery.STATUSES:
        fail(f"--status must be one of {', '.join(delivery.STATUSES)}", code=2)
    context.ready_database()
    rows = [delivery.delivery_to_dict(row) for row in delivery.list_deliveries(endpoint_id, status, user, limit)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no webhook deliveries match")
        return
    console.print(table(
        "Webhook deliveries (newest first)",
        ["id", "endpoint", "type", "user", "seq", "status", "attempts", "last answer", "when"],
        [(r["id"], r["endpoint"], r["type"], r["user"], r["sequence"], r["status"], r["attempts"], _answer(r), _when(r))
         for r in rows],
    ))


@app.command("redeliver")
def redeliver(
    delivery_ids: Optional[List[int]] = typer.Argument(None, help="Deliveries to send again (ids from `webhooks deliveries`)."),
    failed: bool = typer.Option(False, "--failed", help="Every failed delivery."),
    as_json: bool = JSON,
) -> None:
    """Send deliveries again with a fresh retry schedule (the same `webhook-id`); the workers send them."""
    if bool(delivery_ids) == failed:
        fail("give DELIVERY_ID… or --failed (one of them)", code=2)
    context.ready_database()
    if failed:
        count = delivery.redeliver_failed()
        if as_json:
            print_json({"requeued": count})
        else:
            console.print(f"{count} failed deliver{'y' if count == 1 else 'ies'} queued again", highlight=False)
        return
    found = {row.id for row in delivery.redeliver(delivery_ids)}
    missing = [i for i in delivery_ids if i not in found]
    if as_json:
        print_json({"requeued": sorted(found), "unknown": missing})
    else:
        for i in sorted(found):
            console.print(f"delivery {i} queued again", highlight=False)
    if missing:
        fail(f"no webhook deliver{'y' if len(missing) == 1 else 'ies'} {', '.join(map(str, missing))} to an endpoint still in use")


@app.command("test")
def test(endpoint_id: int = typer.Argument(..., help="The endpoint's id (from `webhooks list`)."), as_json: bool = JSON) -> None:
    """Send a `ping` to an endpoint now, through the same path as every message; exit 1 unless it answers 2xx."""
    context.ready_database()
    endpoint = endpoints.find(endpoint_id)
    if endpoint is None:
        fail(f"no webhook endpoint {endpoint_id}")
    settings = context.settings()
    pinged = outbox.ping(endpoint)
    if delivery.attempt_now(pinged.id, settings) is None:  # a worker took it first: wait for its answer
        _wait_for_attempt(pinged.id, settings.webhook_timeout + 5)
    row = delivery.find(pinged.id)
    shown = delivery.delivery_to_dict(row)
    if as_json:
        print_json(shown)
    elif shown["status"] == delivery.DELIVERED:
        console.print(f"ping delivered to {endpoint.url}: HTTP {shown['last_status']} (delivery {row.id})", highlight=False)
    if shown["status"] != delivery.DELIVERED:
        fail(f"ping to {endpoint.url} failed: {shown['last_error'] or 'no answer yet'} (delivery {row.id}; the workers retry it)")


def _wait_for_attempt(delivery_id: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        row = delivery.find(delivery_id)
        if row.attempts and row.claimed_until is None:
            return
        time.sleep(0.1)


def _events(events: list[str] | None) -> str:
    return ", ".join(events) if events else "every type"


def _answer(row: dict) -> str:
    if row["last_error"]:
        return row["last_error"]
    return f"HTTP {row['last_status']}" if row["last_status"] else ""


def _when(row: dict) -> str:
    if row["status"] == delivery.DELIVERED:
        return f"delivered {row['delivered_at']}"
    if row["status"] == delivery.PENDING:
        return f"next {row['next_attempt_at']}"
    return f"created {row['created_at']}"
