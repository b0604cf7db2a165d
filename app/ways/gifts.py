"""Gifts: a plan bought for someone else, redeemed by the first other user who opens its link.

A gift's payment grants nothing to its buyer: it opens a `Gift` with a code, passed on as
`https://t.me/<bot>?start=gift_<code>`. The first user other than the buyer who opens it holds the
plan's grant from then (source `gift`). A refund of the payment voids an unredeemed gift and
revokes a redeemed one's grant, as any refund does.
"""
from __future__ import annotations

import logging
import secrets

from app import entitlements, inbox, metrics
from app.clock import iso, utcnow
from app.db import for_update, transaction
from app.models import Gift, LedgerEntry, User
from app.plans import Catalogue, Plan
from app.ways.refusals import Refused, plan_named, unknown_plan

log = logging.getLogger(__name__)

SOURCE = "gift"
BOT = "telegram"  # the provider whose workers message the buyer


def giftable(catalogue: Catalogue, key: str | None) -> Plan:
    """The plan to give; Refused when it cannot be a gift (unknown, or a subscription, which renews for its payer)."""
    plans = [plan for plan in catalogue if not plan.stars_subscription and plan.stripe_mode != "subscription"]
    if not key:
        raise Refused("plan_required", "Which plan would you like to give? " + ", ".join(p.key for p in plans), 400)
    plan = plan_named(catalogue, key)
    if plan is None:
        raise unknown_plan(key)
    if plan not in plans:
        raise Refused("not_giftable", f"{plan.title} renews by itself, so it cannot be a gift. Gifts: "
                      + ", ".join(p.key for p in plans), 400)
    return plan


def grant_reference(gift: Gift) -> str:
    """The reference of the grant a redeemed gift made."""
    return f"gift:{gift.code}"


def record_purchase(buyer: User, plan: Plan, source: str, reference: str, detail: dict) -> tuple[Gift, bool]:
    """Open a gift for a paid payment, once per payment (inside the payment's transaction); (gift, created)."""
    with transaction():
        existing = Gift.get_or_none((Gift.source == source) & (Gift.reference == reference))
        if existing is not None:
            return existing, False
        gift = Gift.create(code=secrets.token_urlsafe(16), plan=plan.key, buyer=buyer, source=source, reference=reference)
        LedgerEntry.create(user=buyer, action="gift", entitlement=plan.entitlement, source=source, reference=reference,
                           detail={"plan": plan.key, "gift": gift.code, **detail})
        # The bot sends the buyer the link, whichever provider took the payment, once the purchase commits.
        recorded = inbox.record(BOT, f"gift-link:{gift.code}", "gift_link", {"gift": gift.code, "chat_id": buyer.telegram_id},
                                subject=buyer.telegram_id)
        if recorded.should_enqueue:
            inbox.hand_off_after_commit([recorded.event.id])
    metrics.gifts.labels(state="bought").inc()
    return gift, True


def link(bot_username: str, gift: Gift) -> str:
    """The link to pass on: `https://t.me/<bot>?start=gift_<code>`."""
    return f"https://t.me/{bot_username}?start=gift_{gift.code}"


def bought_text(bot_username: str, plan_title: str, gift: Gift) -> str:
    """What the buyer is told once the gift is paid."""
    return (f"Thank you! Your gift of {plan_title} is ready. Pass this link on; the first person who opens it gets it:\n"
            f"{link(bot_username, gift)}\nYou will hear from me when it is redeemed.")


def redeem(catalogue: Catalogue, user: User, code: str) -> tuple[Gift, entitlements.GrantResult]:
    """Redeem a gift for `user`; Refused (unknown, own gift, already redeemed, refunded)."""
    if not isinstance(code, str) or not 8 <= len(code) <= 64:
        raise Refused("unknown", "That gift link is not valid.", 404)
    with transaction():
        gift = for_update(Gift.select().where(Gift.code == code)).first()
        if gift is None:
            raise Refused("unknown", "That gift link is not valid.", 404)
        if gift.buyer_id == user.id:
            raise Refused("own_gift", "This is your own gift: pass the link on to the person it is for.", 403)
        if gift.state == "redeemed":
            raise Refused("redeemed", "This gift has already been redeemed.", 409)
        if gift.state == "voided":
            raise Refused("voided", "This gift was refunded and can no longer be redeemed.", 410)
        plan = catalogue.get(gift.plan)
        if plan is None:
            raise Refused("unknown_plan", "This gift's plan is no longer offered; ask the person who gave it.", 410)
        result = entitlements.grant(user, plan.entitlement, source=SOURCE, reference=grant_reference(gift), days=plan.days,
                                    plan=plan.key, actor="gift", detail={"code": gift.code, "from": gift.buyer.telegram_id})
        Gift.update(state="redeemed", recipient=user, redeemed_at=utcnow()).where(Gift.id == gift.id).execute()
        from app.webhooks import outbox

        outbox.emit("gift.redeemed", user, {"gift": gift.code, "plan": plan.key, "from": gift.buyer.telegram_id},
                    entitlement=plan.entitlement)
    metrics.gifts.labels(state="redeemed").inc()
    return Gift.get_by_id(gift.id), result


def payment_reversed(source: str, reference: str) -> None:
    """A refunded gift payment: an open gift is voided; a redeemed one's grant is revoked (reason `refunded`)."""
    gift = Gift.get_or_none((Gift.source == source) & (Gift.reference == reference))
    if gift is None:
        return
    if gift.state == "open":
        if Gift.update(state="voided").where((Gift.id == gift.id) & (Gift.state == "open")).execute():
            metrics.gifts.labels(state="voided").inc()
            return
        gift = Gift.get_by_id(gift.id)
    if gift.state == "redeemed" and entitlements.revoke_reference(SOURCE, grant_reference(gift), reason="refund", actor=source):
        metrics.gifts.labels(state="revoked").inc()


def gift_lines(user: User) -> list[dict]:
    """The gifts a user gave and received, for `customer show` and the backend API."""
    given = [{"direction": "given", "code": g.code, "plan": g.plan, "state": g.state, "at": iso(g.created_at),
              "to": g.recipient.telegram_id if g.recipient_id else None}
             for g in Gift.select().where(Gift.buyer == user.id).order_by(Gift.id)]
    received = [{"direction": "received", "code": g.code, "plan": g.plan, "state": g.state, "at": iso(g.redeemed_at),
                 "from": g.buyer.telegram_id}
                for g in Gift.select().where(Gift.recipient == user.id).order_by(Gift.id)]
    return given + received
