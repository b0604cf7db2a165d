"""Join requests a chat hands to the bot to decide (Bot API 10.1: `chat_join_request.query_id`).

Telegram waits at most 10 seconds for `answerChatJoinRequestQuery` or `sendChatJoinRequestWebApp`,
so the webhook decides in its own request: a holder of an entitlement that lists the chat is
approved, a chat no entitlement lists is left to its admins (`queue`), and anyone else gets the
paywall, the Mini App opened for that chat. The paywall is answered later: `approve` once the
payment is granted (by the chat invite that grant sets off), or the entitlement's `unpaid_join`
when it times out. Each query has one `JoinQuery` row, so a decision is made once however many
times Telegram delivers the update.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable
from datetime import datetime, timedelta

import peewee
import requests
import telebot
from telebot import types
from telebot.apihelper import ApiException, ApiTelegramException

from app import inbox, metrics
from app.access import membership
from app.access.transitions import PROVIDER
from app.clock import utcnow
from app.config import Settings
from app.db import is_postgres, transaction
from app.models import JoinQuery, User
from app.plans import Catalogue, EntitlementSpec
from app.telegram.client import describe_error

log = logging.getLogger(__name__)

APPROVE, DECLINE, QUEUE, PAYWALL = "approve", "decline", "queue", "paywall"
# What the door decided, as a row's state.
_STATE_OF = {APPROVE: "approved", DECLINE: "declined", QUEUE: "queued", PAYWALL: "paywall"}
# Telegram's 10 seconds include the network both ways: the door's reads give up well before.
DECISION_DB_TIMEOUT_MS = 3000


@dataclass(frozen=True)
class Door:
    """What the door did with one delivery of a join query."""

    row: JoinQuery
    new: bool  # False: an earlier delivery decided it

    @property
    def decision(self) -> str:
        """The row's state: approved, declined, queued, paywall, failed, …"""
        return self.row.state


def chat_specs(catalogue: Catalogue, chat: int) -> list[EntitlementSpec]:
    """The entitlements whose holders belong in `chat`, in catalogue order."""
    return [spec for spec in catalogue.entitlements.values() if chat in spec.chats]


def held_for_chat(catalogue: Catalogue, telegram_id: int, chat: int) -> str | None:
    """An entitlement listing `chat` that the user holds now, or None."""
    user = User.get_or_none(User.telegram_id == telegram_id)
    return membership.keeping_entitlement(catalogue, user.id, chat) if user is not None else None


def decide(catalogue: Catalogue, telegram_id: int, chat: int) -> str:
    """`approve` for a holder, `queue` for a chat no entitlement lists, else `paywall`."""
    if not chat_specs(catalogue, chat):
        return QUEUE
    return APPROVE if held_for_chat(catalogue, telegram_id, chat) is not None else PAYWALL


def unpaid_answer(catalogue: Catalogue, chat: int) -> str:
    """What an unpaid paywall gets: `queue` when an entitlement of the chat says so, else `decline`."""
    return QUEUE if any(spec.unpaid_join == QUEUE for spec in chat_specs(catalogue, chat)) else DECLINE


def _limit_statement_time() -> None:
    if is_postgres():
        from app.db import database

        database.execute_sql(f"SET LOCAL statement_timeout = {DECISION_DB_TIMEOUT_MS}")


def open_query(
    settings: Settings, catalogue: Catalogue, bot: telebot.TeleBot | None, request: types.ChatJoinRequest,
    paywall_url: Callable[[JoinQuery], str],
) -> Door:
    """Decide a join query once and answer Telegram now (the paywall opens `paywall_url(row)`); a later delivery gets the first decision."""
    # A second delivery of the query meets the unique query id below and gets the first decision.
    chat, requester = request.chat.id, request.from_user.id
    now = utcnow()
    try:
        with transaction():
            _limit_statement_time()
            decision = decide(catalogue, requester, chat)
            row = JoinQuery.create(
                query_id=request.query_id, chat=chat, chat_title=(request.chat.title or "")[:256] or None, telegram_id=requester,
                user_chat_id=request.user_chat_id, state=_STATE_OF[decision], answer=None if decision == PAYWALL else decision,
                created_at=now, decided_at=None if decision == PAYWALL else now,
                expires_at=now + timedelta(seconds=settings.join_paywall_seconds) if decision == PAYWALL else None,
            )
    except peewee.IntegrityError:
        return Door(JoinQuery.get(JoinQuery.query_id == request.query_id), False)
    if bot is None:
        _fail(row, "TELEGRAM_BOT_TOKEN is not set; the query was not answered")
        return Door(row, True)
    try:
        if decision == PAYWALL:
            bot.send_chat_join_request_web_app(row.query_id, paywall_url(row))
            metrics.chat_access.labels(action="paywall_shown", result="ok").inc()
        else:
            bot.answer_chat_join_request_query(row.query_id, decision)
            metrics.chat_access.labels(action=f"query_{_STATE_OF[decision]}", result="ok").inc()
    except (ApiException, requests.RequestException) as exc:
        action = "paywall_shown" if decision == PAYWALL else f"query_{_STATE_OF[decision]}"
        metrics.chat_access.labels(action=action, result="failed").inc()
        _fail(row, describe_error(exc))
    return Door(row, True)


def _fail(row: JoinQuery, note: str) -> None:
    log.warning("join query of user %s for chat %s not answered: %s", row.telegram_id, row.chat, note)
    with transaction():
        JoinQuery.update(state="failed", note=note[:300], decided_at=utcnow()).where(JoinQuery.id == row.id).execute()
    row.state, row.note = "failed", note[:300]


def _claim(row: JoinQuery, state: str, answer: str) -> bool:
    """Move a waiting paywall to `state` here and nowhere else (the conditional update decides races)."""
    with transaction():
        return bool(
            JoinQuery.update(state=state, answer=answer, decided_at=utcnow())
            .where((JoinQuery.id == row.id) & (JoinQuery.state == PAYWALL))
            .execute()
        )


def approve_paid(bot: telebot.TeleBot, telegram_id: int, chat: int) -> bool:
    """Approve the waiting paywall of a user who just paid for `chat`; False when there is none or it can no longer be answered.

    A query Telegram no longer accepts (`QUERY_ID_INVALID`, it expired) leaves the payer to the invite link.
    Failures a retry could fix put the paywall back and are raised.
    """
    row = (
        JoinQuery.select().where((JoinQuery.telegram_id == telegram_id) & (JoinQuery.chat == chat) & (JoinQuery.state == PAYWALL))
        .order_by(JoinQuery.id.desc()).first()
    )
    if row is None or not _claim(row, "paid", APPROVE):
        return False
    try:
        bot.answer_chat_join_request_query(row.query_id, APPROVE)
    except ApiTelegramException as exc:
        if exc.error_code == 400:
            note = f"{describe_error(exc)}; an invite link was sent instead"
            with transaction():
                JoinQuery.update(state="invited", note=note[:300]).where(JoinQuery.id == row.id).execute()
            metrics.chat_access.labels(action="paywall_paid", result="skipped").inc()
            return False
        _put_back(row)
        raise
    except (ApiException, requests.RequestException):
        _put_back(row)
        raise
    metrics.chat_access.labels(action="paywall_paid", result="ok").inc()
    return True


def _put_back(row: JoinQuery) -> None:
    with transaction():
        JoinQuery.update(state=PAYWALL, answer=None, decided_at=None).where(JoinQuery.id == row.id).execute()


def queue_unpaid(now: datetime, hand_off) -> int:
    """Turn each paywall past its time into one `join_unpaid` inbox event; returns how many."""
    due = list(JoinQuery.select().where((JoinQuery.state == PAYWALL) & (JoinQuery.expires_at <= now)).limit(500))
    queued = []
    for row in due:
        recorded = inbox.record(
            PROVIDER, f"join-unpaid:{row.id}", "join_unpaid", {"join_query": row.id, "user": row.telegram_id, "chat": row.chat},
            subject=row.telegram_id,
        )
        if recorded.should_enqueue:
            queued.append(recorded.event.id)
    for event_id in queued if hand_off is not None else ():
        hand_off(event_id)
    return len(queued)


def answer_unpaid(bot: telebot.TeleBot, catalogue: Catalogue, row: JoinQuery) -> str | None:
    """Answer a paywall left unpaid as its entitlement's `unpaid_join` says; None when it was decided meanwhile."""
    answer = unpaid_answer(catalogue, row.chat)
    if not _claim(row, "unpaid", answer):
        return None
    action = "query_declined" if answer == DECLINE else "query_queued"
    try:
        bot.answer_chat_join_request_query(row.query_id, answer)
    except ApiTelegramException as exc:
        if exc.error_code == 400:
            with transaction():
                JoinQuery.update(note=f"{describe_error(exc)}; Telegram had already closed the request"[:300]).where(
                    JoinQuery.id == row.id).execute()
            metrics.chat_access.labels(action=action, result="skipped").inc()
            return answer
        _put_back(row)
        raise
    except (ApiException, requests.RequestException):
        _put_back(row)
        raise
    metrics.chat_access.labels(action=action, result="ok").inc()
    return answer


def pending(limit: int = 200) -> list[JoinQuery]:
    """Join queries the service is holding: paywalls waiting for a payment, oldest first."""
    return list(JoinQuery.select().where(JoinQuery.state == PAYWALL).order_by(JoinQuery.created_at).limit(limit))
