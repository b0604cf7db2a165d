"""Reconcile with Telegram's ledger, `getStarTransactions`.

A StarTransaction's id is the `telegram_payment_charge_id` of the payment it is (and a refund's
is the refunded payment's), so an incoming invoice payment from a user is recorded as the
`successful_payment` update the webhook would have carried, under the same external id, and an
outgoing transaction to a user as its `refunded_payment` (`refund:<id>`). The same handlers then
check and grant or revoke them. Everything else (gifts, paid media, ads, withdrawals) is listed.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from telebot import apihelper

from app import entitlements
from app.clock import from_timestamp, utcnow
from app.models import Grant, LedgerEntry
from app.reconcile.runs import Entry, Report, apply, known_in_inbox, malformed
from app.telegram.payments import CURRENCY, SOURCE
from app.telegram.shapes import MAX_TIMESTAMP, MalformedUpdate, admit_update
from app.text import unstorable

PAGE_SIZE = 100  # the most getStarTransactions returns at once
LEDGER = "getStarTransactions"
# A routine run reads again a little before its cursor: a transaction may be dated a moment before one seen.
CURSOR_OVERLAP = timedelta(minutes=10)

Progress = Callable[[int, int], None]  # (transactions read so far, API calls so far)


def _date(transaction: object) -> datetime | None:
    """A transaction's date, or None when it is not a Unix time Telegram could send."""
    value = transaction.get("date") if isinstance(transaction, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_TIMESTAMP:
        return None
    return from_timestamp(value)


def _newest_first(dates: list[datetime]) -> bool:
    """True when these dates (the previous page's last, then this page's) go from newest to oldest."""
    return len(dates) > 1 and all(a >= b for a, b in zip(dates, dates[1:])) and dates[0] > dates[-1]


def read_ledger(
    bot, since: datetime, report: Report, progress: Progress | None = None, *, start: int = 0, back: int = PAGE_SIZE
) -> list[dict]:
    """Every Star transaction dated `since` or later (and every undated one, to be reported), in whichever order Telegram pages them.

    The Bot API documents getStarTransactions as returning the transactions "in chronological
    order" (oldest first, https://core.telegram.org/bots/api#getstartransactions), while
    Telegram's servers have also been seen answering newest first. The reader relies on neither:
    pages that go newest first end the reading at the first transaction older than `since`;
    in any other order every page is read, up to the end of the ledger. `start` (where an earlier
    run's chronological reading ended, less a page) skips the pages before it, once the first page
    read shows that it begins before `since`; otherwise it steps back twice as far each time, down to 0.
    """
    found: list[dict] = []
    offset = start
    previous: datetime | None = None
    while True:
        page = apihelper.get_star_transactions(bot.token, offset, PAGE_SIZE) or {}
        report.calls += 1
        transactions = page.get("transactions") if isinstance(page, dict) else None
        transactions = transactions if isinstance(transactions, list) else []
        dated = [(t, _date(t)) for t in transactions]
        dates = [at for _, at in dated if at is not None]
        if offset == start and start > 0 and not (dates and dates[0] < since and not _newest_first(dates)):
            # Not provably before the window (or not chronological after all): start further back.
            return read_ledger(bot, since, report, progress, start=max(0, start - 2 * back), back=2 * back)
        found += [t for t, at in dated if at is None or at >= since]
        if progress is not None:
            progress(len(found), report.calls)
        older = any(at < since for at in dates)
        newest_first = _newest_first(([previous] if previous else []) + dates)
        if len(transactions) < PAGE_SIZE or (older and newest_first):
            report.ledger_read_to = None if newest_first else offset + len(transactions)
            return found
        previous = dates[-1] if dates else previous
        offset += len(transactions)


def _partner_kind(partner: dict) -> str:
    kind = str(partner.get("type") or "unknown")
    detail = partner.get("transaction_type") or partner.get("withdrawal_state", {}).get("type")
    return f"{kind}:{detail}" if detail else kind


def _is_invoice_payment(partner: dict | None) -> bool:
    if not isinstance(partner, dict) or partner.get("type") != "user" or not isinstance(partner.get("user"), dict):
        return False
    kind = partner.get("transaction_type")
    # Before Bot API 9.0 a user's partner had no transaction_type; an invoice payment carried its payload.
    return kind == "invoice_payment" or (kind is None and "invoice_payload" in partner and "paid_media" not in partner)


def _integer(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedUpdate(field, "an integer")
    return value


def _message(transaction: dict, user: dict, **content) -> dict:
    """An Update carrying a service message from `user` in their private chat with the bot, as the webhook would."""
    if not isinstance(user, dict) or "id" not in user:
        raise MalformedUpdate("user.id", "present")
    chat = {"id": user["id"], "type": "private", "first_name": user.get("first_name", "")}
    if user.get("username"):
        chat["username"] = user["username"]
    message = {"message_id": 0, "date": transaction["date"], "chat": chat, "from": user, **content}
    return {"update_id": 0, "message": message}


def payment_update(transaction: dict, *, first_of_subscription: bool) -> dict:
    """The `successful_payment` update an incoming invoice payment would have been delivered as."""
    partner = transaction["source"]
    payment = {
        "currency": CURRENCY,
        "total_amount": transaction["amount"],
        "invoice_payload": partner.get("invoice_payload") or "",
        "telegram_payment_charge_id": transaction["id"],
        "provider_payment_charge_id": "",
    }
    period = partner.get("subscription_period")
    if period:
        payment["subscription_expiration_date"] = _integer(transaction["date"], "date") + _integer(period, "source.subscription_period")
        payment["is_recurring"] = True
        if first_of_subscription:
            payment["is_first_recurring"] = True
    return _message(transaction, partner["user"], successful_payment=payment)


def refund_update(transaction: dict) -> dict:
    """The `refunded_payment` update a refund to a user would have been delivered as."""
    partner = transaction["receiver"]
    refund = {
        "currency": CURRENCY,
        "total_amount": transaction["amount"],
        "invoice_payload": partner.get("invoice_payload") or "",
        "telegram_payment_charge_id": transaction["id"],
    }
    return _message(transaction, partner["user"], refunded_payment=refund)


def _summary(transaction: dict, partner: dict | None) -> str:
    user = (partner or {}).get("user") or {}
    who = f"user {user['id']}" if "id" in user else _partner_kind(partner or {})
    return f"{transaction.get('amount', 0)} Stars, {who}"


def _subscriptions_started(transactions: list[dict]) -> set[str]:
    """Invoice payloads of subscriptions whose first payment is already granted."""
    payloads = {
        f"{SOURCE}:{t['source'].get('invoice_payload')}"
        for t in transactions
        if _is_invoice_payment(t.get("source")) and t["source"].get("subscription_period")
    }
    started: set[str] = set()
    listed = list(payloads)
    for i in range(0, len(listed), 500):
        rows = Grant.select(Grant.subscription_id).where(Grant.subscription_id.in_(listed[i:i + 500])).distinct()
        started.update(row.subscription_id for row in rows)
    return started


def _checked(update: dict) -> dict:
    """The update a transaction stands for, through the webhook door's own checks and cleaning (MalformedUpdate naming the field)."""
    return admit_update(update)


def _entry(t: dict, started: set[str]) -> Entry:
    at, tx_id = _date(t), t.get("id")
    if at is None:
        raise MalformedUpdate("date", "a Unix time (an integer)")
    if not isinstance(tx_id, str) or not tx_id or unstorable(tx_id) is not None:
        raise MalformedUpdate("id", "a non-empty string")
    source, receiver = t.get("source"), t.get("receiver")
    if _is_invoice_payment(source):
        subscription = f"{SOURCE}:{source.get('invoice_payload')}" if source.get("subscription_period") else None
        first = subscription is not None and subscription not in started
        update = _checked(payment_update(t, first_of_subscription=first))
        if subscription is not None:
            started.add(subscription)
        return Entry(tx_id, "payment", at, tx_id, "successful_payment", update, _summary(t, source))
    if _is_invoice_payment(receiver) or (isinstance(receiver, dict) and receiver.get("type") == "user" and not receiver.get("transaction_type")):
        if isinstance(receiver.get("user"), dict):
            update = _checked(refund_update(t))
            return Entry(f"refund:{tx_id}", "refund", at, tx_id, "refunded_payment", update, _summary(t, receiver))
        return Entry(tx_id, _partner_kind(receiver), at, tx_id, summary=_summary(t, receiver))
    partner = source if isinstance(source, dict) else receiver if isinstance(receiver, dict) else {}
    return Entry(tx_id, _partner_kind(partner), at, tx_id, summary=_summary(t, partner))


def _order(t: object) -> tuple:
    at = _date(t)
    return (at is not None, at or datetime.min, str(t.get("id", "")) if isinstance(t, dict) else "")


def entries(transactions: list[dict]) -> list[Entry]:
    """The transactions as ledger entries, oldest first, each recordable as the webhook's update, only listed, or malformed."""
    ordered = sorted(transactions, key=_order)
    started = _subscriptions_started([t for t in ordered if isinstance(t, dict)])
    result = []
    for t in ordered:
        ledger_id = t.get("id") if isinstance(t, dict) else None
        try:
            if not isinstance(t, dict):
                raise MalformedUpdate("the transaction", "an object")
            result.append(_entry(t, started))
        except MalformedUpdate as exc:
            result.append(malformed(ledger_id, f"transaction {exc}", _date(t)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            result.append(malformed(ledger_id, f"transaction is not a StarTransaction ({type(exc).__name__})", _date(t)))
    return result


def known(found: list[Entry]) -> set[str]:
    """External ids the service already has: inbox rows, and refunds the ledger already records (an operator's refund)."""
    ids = known_in_inbox(SOURCE, [e.external_id for e in found])
    refunds = [e.ledger_id for e in found if e.kind == "refund" and e.external_id not in ids]
    for i in range(0, len(refunds), 500):
        rows = LedgerEntry.select(LedgerEntry.reference).where(
            (LedgerEntry.source == SOURCE)
            & LedgerEntry.reference.in_(refunds[i:i + 500])
            & LedgerEntry.action.in_(list(entitlements.REVERSALS))
        )
        ids.update(f"refund:{row.reference}" for row in rows)
    return ids


def window_start(days: int, cursor: tuple[datetime, str] | None) -> datetime:
    """Where a run starts reading: `days` back, or just before the cursor when that is later."""
    start = utcnow() - timedelta(days=days)
    if cursor is not None:
        start = max(start, cursor[0] - CURSOR_OVERLAP)
    return start


def reconcile(bot, *, days: int = 30, dry_run: bool = False, cursor: tuple[datetime, str] | None = None,
              progress: Progress | None = None, read_to: int | None = None) -> Report:
    """Read the bot's Star transactions of the last `days` (or since the cursor) and record what the inbox lacks.

    `read_to`: how far an earlier run read a chronological ledger; reading resumes a page before it.
    """
    report = Report(SOURCE, dry_run)
    report.since = window_start(days, cursor)
    start = max(0, read_to - PAGE_SIZE) if read_to else 0
    transactions = read_ledger(bot, report.since, report, progress, start=start)
    return apply(report, entries(transactions), known, ledger=LEDGER)

