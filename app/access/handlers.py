"""Inbox handlers of the transitions' consumers: chat invites and removals, reminders, and chat join requests."""
from __future__ import annotations

import logging

import requests
from telebot import types
from telebot.apihelper import ApiException

from app import inbox, metrics
from app.inbox import Context
from app.access import chats, emoji_status, expiry, join_queries, membership, transitions
from app.access.transitions import PROVIDER
from app.clock import utcnow
from app.models import EntitlementState, EntitlementTransition, Event, Grant, JoinQuery, Reminder, User
from app.telegram.handlers import SESSIONS

log = logging.getLogger(__name__)

ACCESS = "access"
"""The queue of chat access (invites, removals, join requests) and reminders: its retries and rate limits never sit in front of a payment."""


def _user(telegram_id: int) -> User:
    user = User.get_or_none(User.telegram_id == int(telegram_id))
    if user is None:
        raise inbox.Ignore(f"user {telegram_id} is not known here")
    return user


def _title(context: Context, entitlement: str) -> str:
    spec = context.catalogue.entitlement(entitlement)
    return spec.title if spec is not None else entitlement


def _chat_call(event: Event, chat: int, action: str, fn, *args):
    try:
        return fn(*args)
    except (ApiException, requests.RequestException) as exc:
        metrics.chat_access.labels(action=action, result="failed").inc()
        raise chats.chat_problem(chat, exc, event.id) from None


def chat_invite(event: Event, context: Context) -> None:
    """Send a holder who just started holding an entitlement a join-request invite link to one of its chats."""
    data = event.payload
    bot = chats.client(context.settings)
    user = _user(data["user"])
    if not transitions.holds(user.id, data["entitlement"]):
        raise inbox.Ignore(f"user {user.telegram_id} no longer holds {data['entitlement']}; no invite")
    chats.take_share(context.settings, "invite", 2, user.telegram_id, f"event:{event.id}")  # the link, and the message that carries it
    chat = int(data["chat"])
    # A payer who came through the chat's paywall is let in by answering their waiting join request.
    if _chat_call(event, chat, "paywall_paid", join_queries.approve_paid, bot, user.telegram_id, chat):
        chats.tell(bot, user.telegram_id, f"{_title(context, data['entitlement'])}: you are in. Welcome!", "paywall")
        return
    link = _chat_call(event, chat, "invite", chats.create_invite, bot, chat, chats.invite_name(user.first_name, user.telegram_id))
    text = f"{_title(context, data['entitlement'])}: ask to join with this link, and you are let in at once.\n{link}"
    if not chats.tell(bot, user.telegram_id, text, "invite"):
        metrics.chat_access.labels(action="invite", result="skipped").inc()
        raise inbox.Ignore(f"user {user.telegram_id} cannot be messaged (blocked the bot?); the invite was not delivered")
    metrics.chat_access.labels(action="invite", result="ok").inc()


def _holds_any_for(context: Context, user: User, chat: int) -> str | None:
    """An entitlement listing `chat` that the user holds now, or None."""
    return membership.keeping_entitlement(context.catalogue, user.id, chat)


def chat_remove(event: Event, context: Context) -> None:
    """Remove a user whose entitlement ended from one of its chats (ban, then unban so they can come back); never an admin."""
    data = event.payload
    bot = chats.client(context.settings)
    user = _user(data["user"])
    chat = int(data["chat"])
    still = _holds_any_for(context, user, chat)
    if still is not None:
        metrics.chat_access.labels(action="remove", result="skipped").inc()
        raise inbox.Ignore(f"user {user.telegram_id} holds {still} again, which keeps them in chat {chat}")
    status = _chat_call(event, chat, "remove", chats.member_status, bot, chat, user.telegram_id)
    if status in chats.ADMIN_STATUSES:
        metrics.chat_access.labels(action="remove", result="admin").inc()
        raise inbox.Ignore(f"user {user.telegram_id} is the chat's {status}; not removed from chat {chat}")
    member = status in ("member", "restricted")
    chats.take_share(context.settings, "remove", 3 if member else 2, user.telegram_id if member else None, f"event:{event.id}")  # ban, unban (, and say so)
    _chat_call(event, chat, "remove", chats.remove, bot, chat, user.telegram_id)
    metrics.chat_access.labels(action="remove", result="ok").inc()
    if member:
        chats.tell(bot, user.telegram_id, f"Your {_title(context, data['entitlement'])} has ended, so you left its chat. /buy to come back.", "removal")


def reminder(event: Event, context: Context) -> None:
    """Tell a holder their entitlement ends in a few days, naming the plan and how to renew; skipped when the end moved."""
    data = event.payload
    row = Reminder.get_or_none(Reminder.id == data["reminder"])
    if row is None:
        raise inbox.Ignore("the reminder no longer exists")
    state = EntitlementState.get_or_none((EntitlementState.user == row.user_id) & (EntitlementState.entitlement == row.entitlement))
    if state is None or not state.holding or state.ends_at != row.ends_at:
        metrics.chat_access.labels(action="reminder", result="skipped").inc()
        raise inbox.Ignore("the end moved since the reminder was due; not sent")
    by_subscription, record = expiry.ending_subscription(row.user_id, row.entitlement, row.ends_at)
    if by_subscription and (record is None or record.state == "active"):
        metrics.chat_access.labels(action="reminder", result="skipped").inc()
        raise inbox.Ignore("the subscription renews again; not sent")
    bot = chats.client(context.settings)
    user = User.get_by_id(row.user_id)
    chats.take_share(context.settings, "reminder", 1, user.telegram_id, f"event:{event.id}")
    plan = _plan_title(context, row.user_id, row.entitlement)
    days = f"{row.days} day{'s' if row.days != 1 else ''}, on {chats.until_text(row.ends_at)}"
    if _ending_grant_source(row) == "trial":
        text = f"Your free trial of {plan} ends in {days}. Keep it with /buy, or in the Mini App."
    elif record is not None and record.state == "canceled":
        text = f"Your {plan} ends in {days}. Its subscription is canceled; /resume keeps it renewing."
    else:
        text = f"Your {plan} ends in {days}. Renew with /buy, or in the Mini App."
    if chats.tell(bot, user.telegram_id, text, "reminder"):
        metrics.chat_access.labels(action="reminder", result="ok").inc()
    else:
        metrics.chat_access.labels(action="reminder", result="skipped").inc()
        raise inbox.Ignore(f"user {user.telegram_id} cannot be messaged")


def _ending_grant_source(row: Reminder) -> str | None:
    """The source of the grant whose end the reminder is about (`trial` for a free trial)."""
    grant = (
        Grant.select(Grant.source).where((Grant.user == row.user_id) & (Grant.entitlement == row.entitlement)
                                         & Grant.revoked_at.is_null() & (Grant.ends_at == row.ends_at)).first()
    )
    return grant.source if grant is not None else None


def _plan_title(context: Context, user_id: int, entitlement: str) -> str:
    """The title of the plan the holder's latest grant came from, else the entitlement's."""
    grant = (
        Grant.select(Grant.plan).where((Grant.user == user_id) & (Grant.entitlement == entitlement) & Grant.revoked_at.is_null())
        .order_by(Grant.created_at.desc()).first()
    )
    plan = context.catalogue.get(grant.plan) if grant is not None else None
    return plan.title if plan is not None else _title(context, entitlement)


def chat_join_request(event: Event, context: Context) -> None:
    """Approve a join request when the requester holds an entitlement of the chat; otherwise decline and say how to buy."""
    request = types.Update.de_json(event.payload).chat_join_request
    if request is None:
        raise inbox.PermanentError("the update carries no chat_join_request")
    chat, requester = request.chat.id, request.from_user.id
    if not any(chat in spec.chats for spec in context.catalogue.entitlements.values()):
        raise inbox.Ignore(f"chat {chat} is not one of an entitlement's chats")
    bot = chats.client(context.settings)
    # The share first (an answer, and a message when declined): the decision below is made when the calls are.
    chats.take_share(context.settings, "join", 2, request.user_chat_id or requester, f"event:{event.id}")
    user = User.get_or_none(User.telegram_id == requester)
    held = _holds_any_for(context, user, chat) if user is not None else None
    if held is not None:
        _chat_call(event, chat, "approve", chats.call, "approve", bot.approve_chat_join_request, chat, requester)
        metrics.chat_access.labels(action="approve", result="ok").inc()
        return
    _chat_call(event, chat, "decline", chats.call, "decline", bot.decline_chat_join_request, chat, requester)
    metrics.chat_access.labels(action="decline", result="ok").inc()
    titles = [spec.title for spec in context.catalogue.entitlements.values() if chat in spec.chats]
    chats.tell(bot, request.user_chat_id or requester, f"This chat is for holders of {', '.join(titles)}. Buy it with /buy, then ask again.", "join declined")



def transition(event: Event, context: Context) -> None:
    """Take a transition written where no catalogue was at hand to its consumers (chat events, reminders)."""
    row = EntitlementTransition.get_or_none(EntitlementTransition.id == event.payload["transition"])
    if row is None:
        raise inbox.Ignore("the transition no longer exists")
    spec = context.catalogue.entitlement(row.entitlement)
    if spec is None:
        raise inbox.Ignore(f"{row.entitlement} has no chats or reminders")
    transitions.record_consumers(row, User.get_by_id(row.user_id), spec, utcnow())
    # The end may have moved since: reminders of an end that is no longer the end are never sent.
    state = EntitlementState.get_or_none((EntitlementState.user == row.user_id) & (EntitlementState.entitlement == row.entitlement))
    transitions.skip_stale_reminders(row.user_id, row.entitlement, state.ends_at if state is not None and state.holding else None)


def emoji_status_change(event: Event, context: Context) -> None:
    """Set, move or remove an entitlement's emoji status after a transition of its holder."""
    data = event.payload
    spec = context.catalogue.entitlement(data["entitlement"])
    if spec is None or not spec.emoji_status:
        raise inbox.Ignore(f"{data['entitlement']} has no emoji status")
    bot = chats.client(context.settings)
    user = _user(data["user"])
    done = _chat_call(event, 0, "emoji_status", emoji_status.on_transition, bot, user, spec, data.get("kind"), data.get("reason"))
    metrics.chat_access.labels(action="emoji_status", result="ok" if done != "skipped" else "skipped").inc()


def join_unpaid(event: Event, context: Context) -> None:
    """Answer a paywall its requester left unpaid, as the chat's entitlement says (`unpaid_join`)."""
    row = JoinQuery.get_or_none(JoinQuery.id == event.payload["join_query"])
    if row is None:
        raise inbox.Ignore("the join request no longer exists")
    bot = chats.client(context.settings)
    answer = _chat_call(event, row.chat, "query_declined", join_queries.answer_unpaid, bot, context.catalogue, row)
    if answer is None:
        raise inbox.Ignore(f"the join request was already {JoinQuery.get_by_id(row.id).state}")


HANDLERS: inbox.Table = {
    "transition": inbox.handler(transition, queue=ACCESS),
    "emoji_status": inbox.handler(emoji_status_change, queue=ACCESS, transactional=False),
    "join_unpaid": inbox.handler(join_unpaid, queue=ACCESS, transactional=False),
    "chat_invite": inbox.handler(chat_invite, queue=ACCESS, transactional=False),
    "chat_remove": inbox.handler(chat_remove, queue=ACCESS, transactional=False),
    "reminder": inbox.handler(reminder, queue=ACCESS, transactional=False),
}
"""What transitions set off: invites into and removals from chats, and reminders (all on `access`)."""

def chat_join_query(event: Event, context: Context) -> None:
    """Finish a join query the webhook could not decide in time: it waits in the chat's queue, decided as a plain join request."""
    request = types.Update.de_json(event.payload).chat_join_request
    if request is None:
        raise inbox.PermanentError("the update carries no chat_join_request")
    if JoinQuery.get_or_none(JoinQuery.query_id == request.query_id) is not None:
        return  # decided at the door; `customer show` tells how
    chat_join_request(event, context)


TELEGRAM_HANDLERS: inbox.Table = {
    # Someone waiting at a chat's door: decided with the rest of chat access.
    "chat_join_request": inbox.handler(chat_join_request, queue=ACCESS, transactional=False),
    # A join query the webhook could not decide in time: Telegram is waiting, so beside replies, never behind bulk work.
    "chat_join_query": inbox.handler(chat_join_query, queue=SESSIONS, transactional=False),
}
"""The Telegram updates this package answers, added to Telegram's table by the composition root."""
