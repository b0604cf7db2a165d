"""One payer's history, oldest first: payments, grants, revocations, refunds and messages from the ledger, and webhook deliveries."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app.clock import iso
from app.db import transaction
from app.inbox import NO_HANDLER
from app.models import Event, EventStatus, JoinQuery, LedgerEntry, User
from app.stripe.prices import operator_amount
from app.users import find_user

PAYMENT_SOURCES = ("telegram", "stripe")
# Grants that came another way than a payment, as the timeline says them.
WAYS_IN = {
    "trial": "free trial of {what} started (via {via})",
    "promo": "{what} from promo code {code} (via {via})",
    "gift": "{what} received as a gift (code {code})",
}

# Ledger actions and the kind of timeline line each one is.
KINDS = {
    "grant": "grant",
    "extend": "grant",
    "reschedule": "reschedule",
    "revoke": "revocation",
    "refund": "refund",
    "partial_refund": "refund",
    "dispute": "dispute",
    "payment_failed": "payment_failed",
    "message": "message",
    "gift": "gift",
}


@dataclass(frozen=True)
class Line:
    """One thing that happened to a payer."""

    at: datetime
    kind: str
    source: str
    reference: str | None
    entitlement: str | None
    summary: str
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The line as JSON."""
        return {
            "at": iso(self.at), "kind": self.kind, "source": self.source, "reference": self.reference,
            "entitlement": self.entitlement, "summary": self.summary, "detail": self.detail,
        }


@dataclass(frozen=True)
class Timeline:
    """A payer and what happened to them."""

    user: User
    lines: list[Line]


def customer_timeline(telegram_id: int) -> Timeline | None:
    """The payer's timeline, oldest first; None when the service has never seen them."""
    user = find_user(telegram_id)
    if user is None:
        return None
    rows = LedgerEntry.select().where(LedgerEntry.user == user.id).order_by(LedgerEntry.at, LedgerEntry.id)
    lines = [_line(row) for row in rows] + _webhook_lines(user) + _event_lines(user) + _join_lines(user) + _subscription_lines(user)
    return Timeline(user, sorted(lines, key=lambda line: line.at))  # stable: the ledger's own order holds


def note_message(telegram_id: int, text: str, what: str) -> None:
    """Keep in the user's timeline a message the bot sent them (`what`: confirmation, invite, reminder…)."""
    user = find_user(telegram_id)
    if user is not None:
        with transaction():
            LedgerEntry.create(user=user, action="message", source="telegram", reference=what, detail={"text": text[:500]})


# Chat access as the inbox ran it: invites, removals, join requests.
ACCESS_TYPES = {"chat_invite": "invite", "chat_remove": "removal", "chat_join_request": "join request"}
# Decided at the door: the join query's own line tells what became of it.
_OWN_LINES = ("chat_join_query",)


def _event_lines(user: User) -> list[Line]:
    """The user's chat access and every delivery that did not end processed (a payment that failed its checks, say),
    but for those of a type the service does not handle."""
    lines = []
    for event in Event.select().where(Event.subject == user.telegram_id).order_by(Event.id):
        chat = ACCESS_TYPES.get(event.type)
        if event.type in _OWN_LINES and event.status == EventStatus.PROCESSED:
            continue
        if chat is None and (event.status == EventStatus.PROCESSED or event.provider == "access"):
            continue  # its grant, refund or message has a line of its own; the rest of access is bookkeeping
        if event.status == EventStatus.IGNORED and (event.error or "").startswith(NO_HANDLER):
            continue  # a type the service does not handle (Stripe's `charge.succeeded` beside a checkout): `events list` has it
        if chat is not None:
            where = (event.payload or {}).get("chat") or ((event.payload or {}).get("chat_join_request") or {}).get("chat", {}).get("id")
            summary = f"chat {chat} {where}: {event.status}" + (f" ({event.error})" if event.error else "")
            kind = "chat"
        else:
            summary = f"{event.provider} {event.type} {event.status}" + (f": {event.error}" if event.error else "")
            kind = "event"
        lines.append(Line(event.received_at, kind, event.provider, event.external_id, None, summary[:300], {"event": event.id}))
    return lines


# What became of a join request a chat handed to the bot, by its state.
_JOIN_OUTCOMES = {
    "approved": "approved at the door (a holder)", "declined": "declined", "queued": "left to the chat's admins",
    "paywall": "paywall shown, waiting for a payment", "paid": "approved after the payment",
    "invited": "paid after the request closed; an invite link was sent", "failed": "not answered",
}


def _join_lines(user: User) -> list[Line]:
    """The user's join requests that a chat handed to the bot, and what became of each."""
    lines = []
    rows = JoinQuery.select().where(JoinQuery.telegram_id == user.telegram_id).order_by(JoinQuery.created_at, JoinQuery.id)
    for row in rows:
        outcome = f"left unpaid; answered {row.answer}" if row.state == "unpaid" else _JOIN_OUTCOMES.get(row.state, row.state)
        summary = f"join request to chat {row.chat}: {outcome}" + (f" ({row.note})" if row.note else "")
        lines.append(Line(row.created_at, "chat", "telegram", f"join:{row.chat}", None, summary[:300],
                          {"chat": row.chat, "state": row.state, "answer": row.answer}))
    return lines


def _subscription_lines(user: User) -> list[Line]:
    """Each of the user's subscriptions' state changes (kind `subscription`)."""
    from app.models import Subscription, SubscriptionChange

    lines = []
    changes = (
        SubscriptionChange.select(SubscriptionChange, Subscription).join(Subscription)
        .where(Subscription.user == user).order_by(SubscriptionChange.id)
    )
    for change in changes:
        row = change.subscription
        moved = f"{change.previous} → {change.state}" if change.previous else f"started {change.state}"
        summary = f"subscription {row.id} ({row.provider} {row.plan}) {moved} by {change.actor}" + (
            f" ({change.reason})" if change.reason else "")
        detail = {"subscription": row.id, "from": change.previous, "to": change.state, "actor": change.actor, "reason": change.reason}
        lines.append(Line(change.at, "subscription", row.provider, row.key, row.entitlement, summary, detail))
    return lines


def _webhook_lines(user: User) -> list[Line]:
    """The user's outgoing webhook deliveries (kind `webhook`), without the endpoints' secrets."""
    from app.webhooks import delivery

    lines = []
    for row in delivery.list_deliveries(telegram_id=user.telegram_id, limit=None):
        shown = delivery.delivery_to_dict(row)
        answer = f"; last answer: {shown['last_error'] or 'HTTP ' + str(shown['last_status'])}" if shown["attempts"] else ""
        summary = (f"webhook {shown['type']} #{shown['sequence']} to endpoint {shown['endpoint']}: {shown['status']}"
                   f" after {shown['attempts']} attempt(s){answer}")
        lines.append(Line(row.created_at, "webhook", "webhook", shown["message_id"], None, summary, shown))
    return lines


def _line(row: LedgerEntry) -> Line:
    detail = dict(row.detail or {})
    kind = KINDS.get(row.action, row.action)
    if kind == "grant" and row.source in PAYMENT_SOURCES:
        kind = "payment"
    return Line(row.at, kind, row.source, row.reference, row.entitlement, _summary(row.action, kind, row, detail), detail)


def _summary(action: str, kind: str, row: LedgerEntry, detail: dict) -> str:
    what = row.entitlement or "nothing yet"
    span = _span(detail)
    if kind == "payment":
        paid = _amount(detail, row.source)
        return f"paid {paid + ' ' if paid else ''}via {row.source} → {what} {span}".rstrip()
    if kind == "grant" and row.source in WAYS_IN:
        return f"{WAYS_IN[row.source].format(what=what, code=detail.get('code', ''), via=detail.get('actor', ''))} {span}".rstrip()
    if kind == "grant":
        return f"{what} granted by {detail.get('actor', row.source)} {span}".rstrip()
    if kind == "reschedule":
        return f"{what} moved to {span}"
    if kind == "revocation":
        return f"{what} revoked ({detail.get('reason', 'no reason')}, by {detail.get('actor', row.source)})"
    if kind == "refund":
        share = "partial refund" if action == "partial_refund" else "refund"
        amount = _amount(detail, row.source, "amount_refunded" if "amount_refunded" in detail else "amount")
        return f"{share}{' of ' + amount if amount else ''} via {row.source}; {detail.get('revoked', 0)} grant(s) revoked"
    if kind == "dispute":
        return f"disputed via {row.source}; {detail.get('revoked', 0)} grant(s) revoked"
    if kind == "payment_failed":
        return f"payment failed via {row.source}"
    if kind == "gift":
        paid = _amount(detail, row.source)
        return f"bought a gift of {detail.get('plan')}{' for ' + paid if paid else ''} via {row.source}"
    if kind == "message":
        text = " ".join(str(detail.get("text", "")).split())
        return f"bot sent ({row.reference}): {text if len(text) <= 80 else text[:79] + '…'}"
    return f"{action} via {row.source}"


def _amount(detail: dict, source: str, key: str = "amount") -> str:
    """An amount as the ledger keeps it, in the currency's major unit: `75 XTR`, `4.99 EUR`, `500 JPY`; empty when unknown."""
    amount = detail.get(key)
    if not isinstance(amount, int) or isinstance(amount, bool):
        return ""
    currency = str(detail.get("currency") or ("XTR" if source == "telegram" else "")).upper()
    if not currency:
        return ""  # a card amount without its currency cannot be read (cents or yen?)
    if currency == "XTR":
        return f"{amount} XTR"  # Stars are whole
    return operator_amount(amount, currency)  # Stripe's, in the currency's minor unit (cents; yen are whole)


def _span(detail: dict) -> str:
    starts, ends = detail.get("starts_at"), detail.get("ends_at")
    if not starts:
        return ""
    return f"{starts[:16]} → {ends[:16] if ends else 'for good'}"
