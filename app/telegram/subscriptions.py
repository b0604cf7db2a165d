"""Star subscriptions in Telegram: the `subscription` update (canceled, re-enabled, renewal failed) and the payer's
/cancel and /resume, with inline buttons when they have more than one subscription."""
from __future__ import annotations

import logging

import telebot
from telebot import types

from app import inbox, subscription_actions, subscriptions, users
from app.inbox import Context
from app.models import Event, Subscription
from app.telegram import SOURCE
from app.telegram.payments import until_text

log = logging.getLogger(__name__)

CALLBACK_PREFIX = "sub"  # callback data `sub:cancel:<id>` / `sub:resume:<id>`


def key_for(invoice_payload: str) -> str:
    """The key of the Star subscription whose first invoice carried this payload (as its grants carry it)."""
    return f"{SOURCE}:{invoice_payload}"


def _known(payer_id: int, invoice_payload: str) -> Subscription:
    row = subscriptions.find(key_for(invoice_payload))
    if row is None:
        raise inbox.PermanentError(
            f"no Star subscription with invoice payload {invoice_payload!r} is known here (no payment of it was recorded); nothing changed"
        )
    if row.user.telegram_id != payer_id:
        raise inbox.PermanentError(
            f"the Star subscription with invoice payload {invoice_payload!r} is user {row.user.telegram_id}'s, "
            f"not user {payer_id}'s; nothing changed"
        )
    return row


def _title(context: Context, row: Subscription) -> str:
    plan = context.catalogue.get(row.plan)
    return plan.title if plan is not None else row.plan


def subscription_updated(event: Event, context: Context) -> None:
    """Apply Telegram's word on a Star subscription: canceled by the payer, re-enabled, or its renewal failed."""
    from app.telegram.messages import write_message

    change = event.payload["subscription"]
    payer_id, state = int(change["user"]["id"]), change["state"]
    row = _known(payer_id, change["invoice_payload"])
    if state == "canceled":
        subscriptions.move(row, subscriptions.CANCELED, actor="telegram", reason="canceled_in_telegram",
                           canceled_by=subscriptions.BY_PAYER)
    elif state == "active":
        if row.state == subscriptions.ENDED:
            raise inbox.Ignore(f"subscription {row.id} already ended; re-enabling it changes nothing here")
        subscriptions.move(row, subscriptions.ACTIVE, actor="telegram", reason="reenabled_in_telegram", canceled_by=None)
    elif state == "failed":
        plan = context.catalogue.get(row.plan)
        if subscriptions.fail_renewal(row, plan, actor="telegram"):
            row = Subscription.get_by_id(row.id)
            # Written with the change, sent after its commit.
            write_message(context, payer_id, failed_renewal_text(_title(context, row), row), key=f"renewal_failed:{row.id}:{event.id}")
    else:
        raise inbox.Ignore(f"subscription state {state!r} is not one this service knows; nothing changed")


def failed_renewal_text(title: str, row: Subscription) -> str:
    """What a payer is told when Telegram could not charge their renewal: until when they keep access, and how to pay."""
    keeps = row.grace_until or row.period_end
    lines = [f"Telegram could not charge the renewal of {title}."]
    if row.grace_until is not None:
        lines.append(f"You keep it {until_text(keeps)} while you sort it out.")
    lines.append("Top up your Stars and renew it in Telegram (Settings → My Stars), or subscribe again with /buy.")
    return "\n".join(lines)


# -- /cancel and /resume ---------------------------------------------------------------------


def _candidates(user, action: str) -> list[Subscription]:
    wanted = (subscriptions.ACTIVE, subscriptions.PAST_DUE) if action == "cancel" else (subscriptions.CANCELED,)
    return [row for row in subscriptions.of_user(user) if row.state in wanted] if user else []


def describe(row: Subscription, title: str) -> str:
    """One line about a subscription for the payer: its plan, state and next renewal or end."""
    if row.state == subscriptions.ACTIVE:
        return f"{title}: renews {until_text(row.period_end).removeprefix('until ')}"
    if row.state == subscriptions.CANCELED:
        return f"{title}: canceled, yours {until_text(row.period_end)}"
    if row.state == subscriptions.PAST_DUE:
        return f"{title}: renewal failed, yours {until_text(row.grace_until or row.period_end)}"
    return f"{title}: ended"


def command(bot: telebot.TeleBot, settings, catalogue, message: types.Message, action: str) -> None:
    """Answer /cancel or /resume: act on the payer's one subscription, or offer a button for each of several."""
    user = users.find_user(message.from_user.id)
    rows = _candidates(user, action)
    titles = {row.id: (catalogue.get(row.plan).title if catalogue.get(row.plan) else row.plan) for row in rows}
    if not rows:
        bot.send_message(message.chat.id, _nothing_to_do(user, action, catalogue))
        return
    if len(rows) == 1:
        bot.send_message(message.chat.id, act(settings, rows[0], action, titles[rows[0].id]))
        return
    markup = types.InlineKeyboardMarkup()
    for row in rows:
        label = f"{'Cancel' if action == 'cancel' else 'Resume'} {titles[row.id]}"[:64]
        markup.add(types.InlineKeyboardButton(label, callback_data=f"{CALLBACK_PREFIX}:{action}:{row.id}"))
    lines = [f"Which subscription do you want to {action}?"] + [f"• {describe(row, titles[row.id])}" for row in rows]
    bot.send_message(message.chat.id, "\n".join(lines), reply_markup=markup)


def _nothing_to_do(user, action: str, catalogue) -> str:
    """What /cancel or /resume says when no subscription can take the action: the ones already so, or that there are none."""
    already = subscriptions.CANCELED if action == "cancel" else subscriptions.ACTIVE
    rows = [row for row in subscriptions.of_user(user) if row.state == already] if user else []
    if not rows:
        return "You have no subscription to cancel." if action == "cancel" else "You have no canceled subscription to resume."
    head = "Already canceled, nothing changed:" if action == "cancel" else "Already renewing, nothing changed:"
    lines = [head] + [f"• {describe(row, catalogue.get(row.plan).title if catalogue.get(row.plan) else row.plan)}" for row in rows]
    if action == "cancel":
        lines.append("/resume to keep it.")
    return "\n".join(lines)


def act(settings, row: Subscription, action: str, title: str) -> str:
    """Cancel or resume one subscription for its payer; the plain words that say what became of it."""
    try:
        if action == "cancel":
            outcome = subscription_actions.cancel(settings, row, actor="payer")
        else:
            outcome = subscription_actions.resume(settings, row, actor="payer")
    except subscription_actions.Refused as exc:
        return exc.message
    except subscription_actions.ProviderFailed as exc:
        log.warning("%s of subscription %s failed: %s", action, row.id, exc)
        return "That did not work just now; please try again in a minute."
    current = outcome.subscription
    if action == "cancel":
        if current.state == subscriptions.ENDED:
            return f"{title} is canceled and has ended."
        prefix = "Canceled." if outcome.changed else "This subscription was already canceled."
        return f"{prefix} {title} stays yours {until_text(current.period_end)} and will not renew. /resume to keep it."
    prefix = "Resumed." if outcome.changed else "This subscription already renews."
    return f"{prefix} {title} renews {until_text(current.period_end).removeprefix('until ')}."


def parse_callback(data: str | None) -> tuple[str, int] | None:
    """(`cancel`|`resume`, subscription id) from an inline button's callback data, or None when it is not ours."""
    parts = (data or "").split(":")
    if len(parts) != 3 or parts[0] != CALLBACK_PREFIX or parts[1] not in ("cancel", "resume") or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


def callback(bot: telebot.TeleBot, settings, catalogue, query: types.CallbackQuery) -> None:
    """An inline button of /cancel or /resume was pressed: act on that subscription if it is the presser's own."""
    parsed = parse_callback(query.data)
    user = users.find_user(query.from_user.id)
    row = subscriptions.owned_by(user, parsed[1]) if parsed and user else None
    if row is None:
        bot.answer_callback_query(query.id, "That subscription is not yours or no longer exists.")
        return
    plan = catalogue.get(row.plan)
    text = act(settings, row, parsed[0], plan.title if plan else row.plan)
    bot.answer_callback_query(query.id)
    bot.send_message(query.from_user.id, text)
