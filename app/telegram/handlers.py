"""Inbox handlers for Telegram: payments, refunds, bot commands and messages to send again.

`HANDLERS` at the end is the table the inbox runs them from: event type -> handler, its
queue and how it meets the transaction. Replies to people (commands, messages) go to the
`sessions` queue, so a burst of /start never delays a grant.
"""
from __future__ import annotations

import contextlib

import requests
from telebot import types
from telebot.apihelper import ApiException, ApiTelegramException

from app import entitlements, inbox, metrics, timeline, users
from app.clock import from_timestamp
from app.db import for_update
from app.inbox import Context
from app.models import Event, Gift
from app.telegram import SOURCE, budget, commands, payments, refunds, subscriptions
from app.telegram.messages import write_message
from app.ways import gifts
from app.telegram.client import NotConfigured, bot_username, client_for, describe_error

SESSIONS = "sessions"


def _message(event: Event) -> types.Message:
    message = types.Update.de_json(event.payload).message
    if message is None:
        raise inbox.PermanentError("the update carries no message")
    return message


@contextlib.contextmanager
def outcomes():
    """Map Bot API failures onto the inbox: blocked or gone chats are ignored, bad requests fail, the rest retry."""
    try:
        yield
    except NotConfigured as exc:
        raise inbox.Ignore(f"{exc}; nothing was sent") from None
    except ApiTelegramException as exc:
        if exc.error_code == 403:
            raise inbox.Ignore(describe_error(exc)) from None
        if exc.error_code == 400:
            raise inbox.PermanentError(describe_error(exc)) from None
        raise RuntimeError(describe_error(exc)) from None
    except (ApiException, requests.RequestException) as exc:
        raise RuntimeError(describe_error(exc)) from None


def successful_payment(event: Event, context: Context) -> None:
    """Grant what a Stars payment bought, if it is what was invoiced, and thank the payer."""
    message = _message(event)
    payment = message.successful_payment
    if payment is None:
        raise inbox.PermanentError("the message carries no successful_payment")
    charge_id = payment.telegram_payment_charge_id
    try:  # a payment refunded before it granted raises `entitlements.PaymentReversed`: the row is ignored
        if payments.is_gift(payment):
            if entitlements.was_reversed(SOURCE, charge_id):
                raise inbox.Ignore("this payment was refunded before it was granted")
            _gift_paid(context, message, payment)
            return
        done = payments.fulfil(context.catalogue, message.from_user, payment, from_timestamp(message.date))
    except payments.PaymentMismatch as exc:
        if entitlements.was_reversed(SOURCE, charge_id):
            raise inbox.Ignore("this payment was refunded before it was granted") from None
        metrics.telegram_payments.labels(result="unfulfilled").inc()
        # Retrying cannot make the payment match; the payer's Stars go back only by refund.
        raise inbox.PermanentError(
            f"{exc}; nothing was granted; refund it with `entitle refund telegram {charge_id}`"
        ) from None
    if done.created:
        # Written with the grant, sent after its commit: no Bot API call holds the grant's transaction open.
        write_message(context, message.chat.id, payments.confirmation_text(done), key=f"confirm:{charge_id}")


def _gift_paid(context: Context, message: types.Message, payment: types.SuccessfulPayment) -> None:
    """A gift's payment: open the gift (no grant for its buyer) and send the buyer the link to pass on."""
    plan, _ = payments.check_payment(context.catalogue, message.from_user.id, payment)
    buyer = users.ensure_user(message.from_user.id, **users.profile_from_telegram(message.from_user.to_dict()))
    charge_id = payment.telegram_payment_charge_id
    detail = {"charge_id": charge_id, "amount": payment.total_amount, "currency": payment.currency}
    _, created = gifts.record_purchase(buyer, plan, SOURCE, charge_id, detail)
    if created:
        metrics.telegram_payments.labels(result="paid").inc()
        metrics.telegram_payment_value.labels(currency=payment.currency).inc(payment.total_amount)


def gift_link(event: Event, context: Context) -> None:
    """Send a gift's buyer the link to pass on (after either provider's payment)."""
    gift = Gift.get_or_none(Gift.code == event.payload["gift"])
    if gift is None:
        raise inbox.Ignore("the gift no longer exists")
    plan = context.catalogue.get(gift.plan)
    with outcomes():
        bot = client_for(context.settings)
        text = gifts.bought_text(bot_username(bot), plan.title if plan else gift.plan, gift)
        bot.send_message(event.payload["chat_id"], text)
    timeline.note_message(event.payload["chat_id"], text, "gift")


def refunded_payment(event: Event, context: Context) -> None:
    """Revoke the grant of a payment Telegram reports refunded, and nothing else; a refund seen first keeps it from granting."""
    message = _message(event)
    refund = message.refunded_payment
    if refund is None:
        raise inbox.PermanentError("the message carries no refunded_payment")
    charge_id = refund.telegram_payment_charge_id
    # Waits while a worker is granting this payment, so the refund never lands between check and grant.
    for_update(Event.select().where((Event.provider == SOURCE) & (Event.external_id == charge_id))).first()
    charge = refunds.find_charge(charge_id)
    if charge is not None and charge.grant is not None and charge.grant.revoked_at is not None:
        raise inbox.Ignore(f"the grant of {charge_id} was already revoked")
    # The payer's row is what `entitlements.grant` locks: with it, a payment granted at this moment sees the refund.
    payer = users.ensure_user(charge.user_id if charge is not None else message.from_user.id)
    # Also without a payment yet: the refund in the ledger keeps the payment from ever granting.
    entitlements.revoke_payment(
        SOURCE, charge_id, reason="refund", actor="telegram", user=payer,
        detail={"amount": refund.total_amount, "before_payment": charge is None},
    )
    metrics.telegram_payments.labels(result="refunded").inc()


def command(event: Event, context: Context) -> None:
    """Answer a bot command."""
    settings = context.settings
    message = _message(event)
    with outcomes():
        bot = client_for(settings)
        budget.for_settings(settings).count(message.chat.id)  # a reply never waits: bulk work leaves room for it
        answered = commands.answer(bot, settings, context.catalogue, message)
    if answered is None:
        raise inbox.Ignore("not a command of this bot")


def callback_query(event: Event, context: Context) -> None:
    """Answer a press of one of the bot's inline buttons (the /cancel and /resume choices)."""
    settings = context.settings
    query = types.Update.de_json(event.payload).callback_query
    if query is None:
        raise inbox.PermanentError("the update carries no callback_query")
    with outcomes():
        subscriptions.callback(client_for(settings), settings, context.catalogue, query)


def send_message(event: Event, context: Context) -> None:
    """Send a message the service wrote (a payment's thank-you), and keep it in the payer's timeline."""
    chat_id, text = event.payload["chat_id"], event.payload["text"]
    with outcomes():
        bot = client_for(context.settings)
        budget.for_settings(context.settings).count(chat_id)  # a reply never waits: bulk work leaves room for it
        bot.send_message(chat_id, text)
    timeline.note_message(chat_id, text, event.external_id.partition(":")[0])


HANDLERS: inbox.Table = {
    "successful_payment": inbox.handler(successful_payment),
    "refunded_payment": inbox.handler(refunded_payment),
    "command": inbox.handler(command, queue=SESSIONS, transactional=False),
    "send_message": inbox.handler(send_message, queue=SESSIONS, transactional=False),
    "gift_link": inbox.handler(gift_link, queue=SESSIONS, transactional=False),
    "callback_query": inbox.handler(callback_query, queue=SESSIONS, transactional=False),
    # A payer canceled, re-enabled or failed to renew a Star subscription: a state change, beside payments.
    "subscription": inbox.handler(subscriptions.subscription_updated),
}
"""Telegram's event types and how the inbox runs each (payments on `payments`, replies on `sessions`); chat join
requests are added from `app.access.handlers` where the tables are composed (on `access`)."""
