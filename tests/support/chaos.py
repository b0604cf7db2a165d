"""What the fast fault tests share: real signed webhooks for both providers, their concurrent delivery, and the final tally."""
from __future__ import annotations

import json
import threading

import peewee
import requests

from app.models import Event, Grant, LedgerEntry, User
from bench import payloads
from bench.tally import Tally

# The Stripe price of the plan bench payloads buy (`payloads.STRIPE_PLAN` in plans.toml).
STRIPE_PRICE = "price_premium_week"


def providers(app) -> tuple[str, ...]:
    """The payment providers whose webhook route this app has."""
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    return tuple(p for p in ("telegram", "stripe") if f"/webhooks/{p}" in routes)


def post(client, request: dict) -> int:
    """Deliver one webhook request through the Flask test client; its status."""
    return client.post(request["path"], data=request["body"], headers=request["headers"]).status_code


def deliver_concurrently(url: str, requests_: list[dict], copies: int) -> list[int]:
    """Send every request `copies` times at the same moment over HTTP; the best status each got."""
    best = [599] * len(requests_)
    lock = threading.Lock()

    def send(i: int, barrier: threading.Barrier) -> None:
        request = requests_[i]
        barrier.wait()
        status = requests.post(url + request["path"], data=request["body"], headers=request["headers"], timeout=30).status_code
        with lock:
            best[i] = min(best[i], status)

    threads = []
    for i in range(len(requests_)):
        barrier = threading.Barrier(copies)
        threads += [threading.Thread(target=send, args=(i, barrier)) for _ in range(copies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return best


def tally(requests_: list[dict], statuses: list[int]) -> Tally:
    """Count what the inbox and the grants hold for these deliveries (each tagged with its user)."""
    accepted = [r for r, s in zip(requests_, statuses) if s < 300]
    users = sorted({r["user"] for r in accepted})
    grants = dict(
        Grant.select(User.telegram_id, peewee.fn.COUNT(Grant.id)).join(User)
        .where(User.telegram_id.in_(users)).group_by(User.telegram_id).tuples()
    )
    ledger = dict(
        LedgerEntry.select(User.telegram_id, peewee.fn.COUNT(LedgerEntry.id)).join(User)
        .where(User.telegram_id.in_(users) & LedgerEntry.action.in_(("grant", "extend"))).group_by(User.telegram_id).tuples()
    )
    stored = Event.select().where(Event.external_id.in_([r["external_id"] for r in accepted])).count()
    return Tally(
        events_accepted=stored,
        grants_expected=len(users),
        grants_present=sum(1 for u in users if grants.get(u, 0) >= 1),
        grants_doubled=sum(1 for u in users if grants.get(u, 0) > 1 or ledger.get(u, 0) > 1),
        events_lost=sum(1 for u in users if grants.get(u, 0) == 0),
    )


def all_granted(requests_: list[dict]) -> bool:
    """True once every user of these deliveries holds a grant."""
    users = {r["user"] for r in requests_}
    return Grant.select().join(User).where(User.telegram_id.in_(users)).count() >= len(users)


def clean(n: int) -> Tally:
    """The tally of n payments, each accepted and granted exactly once."""
    return Tally(n, n, n, 0, 0)


def payments_for(app, count: int, first_user: int, stripe_api) -> list[dict]:
    """`count` signed payment webhooks for distinct users, alternating over the app's providers.

    The Stripe stand-in is told of each paid Checkout Session, since the service reads it back.
    """
    paid = payloads.payments(count, first_user, providers(app))
    for payment in paid:
        if payment.provider == "stripe":
            session = json.loads(payment.request["body"])["data"]["object"]
            stripe_api.put_checkout_session(session, prices=[STRIPE_PRICE])
    return [p.request for p in paid]
