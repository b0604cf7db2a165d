"""Inbox handlers for Telegram: payments, refunds, bot commands and messages to send again."""
from __future__ import annotations

import contextlib
import logging

import requests
from telebot import types
from telebot.apihelper import ApiException, ApiTelegramException

from app import entitlements, inbox, metrics, providers, users
from app.clock import from_timestamp
from app.db import for_update
from app.models import Event
from app.telegram import commands, payments, refunds
from app.telegram.bot_api import describe_api_error
from app.telegram.payments import SOURCE, TelegramNotConfigured, bot_for

log = logging.getLogger(__name__)


def _message(event: Event) -> types.Message:
    message = types.Update.de_json(event.payload).message
    if message is None:
        raise inbox.PermanentError("the update carries no message")
    return message


@contextlib.contextmanager
def telegram_errors():
    """Map Bot API failures onto the inbox: blocked or gone chats are ignored, bad requests fail, the rest retry."""
    try:
        yield
    except TelegramNotConfigured as exc:
        raise inbox.Ignore(f"{exc}; nothing was sent") from None
    except ApiTelegramException as exc:
        if exc.error_code == 403:
            raise inbox.Ignore(describe_api_error(exc)) from None
        if exc.error_code == 400:
            raise inbox.PermanentError(describe_api_error(exc)) from None
        raise RuntimeError(describe_api_error(exc)) from None
    except (ApiException, requests.RequestException) as exc:
        raise RuntimeError(describe_api_error(exc)) from None


def notify(settings, chat_id: int, text: str, *, key: str) -> None:
    """Send a message now; when Telegram cannot take it, leave it in the inbox to be sent again."""
    try:
        bot_for(settings).send_message(chat_id, text)
        return
    except TelegramNotConfigured:
        log.warning("TELEGRAM_BOT_TOKEN is not set; message %s not sent", key)
        return
    except ApiTelegramException as exc:
        if exc.error_code in (400, 403):
            log.warning("message %s not sent: %s", key, describe_api_error(exc))
            return
        reason = describe_api_error(exc)
    except (ApiException, requests.RequestException) as exc:
        reason = describe_api_error(exc)
    # The sweeper hands this event to a worker, which sends the message again.
    inbox.record(SOURCE, key, "send_message", {"chat_id": chat_id, "text": text}, note=f"first attempt failed: {reason}")


@inbox.handles(SOURCE, "successful_payment")
def successful_payment(event: Event) -> None:
    """Grant what a Stars payment bought, if it is what was invoiced, and thank the payer."""
    settings = providers.settings()
    message = _message(event)
    payment = message.successful_payment
    if payment is None:
        raise inbox.PermanentError("the message carries no successful_payment")
    charge_id = payment.telegram_payment_charge_id
    if entitlements.was_reversed(SOURCE, charge_id):
        raise inbox.Ignore("this payment was refunded before it was granted")
    try:
        done = payments.fulfil(providers.catalogue(), message.from_user, payment, from_timestamp(message.date))
    except entitlements.PaymentReversed as exc:
        raise inbox.Ignore(str(exc)) from None
    except payments.PaymentMismatch as exc:
        metrics.telegram_payments.labels(result="unfulfilled").inc()
        # Retrying cannot make the payment match; the payer's Stars go back only by refund.
        raise inbox.PermanentError(
            f"{exc}; nothing was granted; refund it with `entitle refund telegram {charge_id}`"
        ) from None
    if done.created:
        text, key = payments.confirmation_text(done), f"confirm:{charge_id}"
        # After the commit: a slow Bot API call must not hold the grant's transaction open.
        inbox.after_commit(lambda: notify(settings, message.chat.id, text, key=key))


@inbox.handles(SOURCE, "refunded_payment")
def refunded_payment(event: Event) -> None:
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


@inbox.handles(SOURCE, "command", transactional=False)
def command(event: Event) -> None:
    """Answer a bot command."""
    settings = providers.settings()
    message = _message(event)
    with telegram_errors():
        answered = commands.answer(bot_for(settings), settings, providers.catalogue(), message)
    if answered is None:
        raise inbox.Ignore("not a command of this bot")


@inbox.handles(SOURCE, "send_message", transactional=False)
def send_message(event: Event) -> None:
    """Send a message whose first attempt failed."""
    settings = providers.settings()
    with telegram_errors():
        bot_for(settings).send_message(event.payload["chat_id"], event.payload["text"])
