"""Tables: users, the event inbox and its history, grants, and the audit ledger."""
from __future__ import annotations

import json

import peewee

from app.clock import utcnow
from app.db import database


class JSONField(peewee.TextField):
    """JSON stored as text, so SQLite and PostgreSQL store it alike."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)

    def python_value(self, value):
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    """Every table lives in the bound database, named in snake_case."""

    class Meta:
        database = database
        legacy_table_names = False


class User(BaseModel):
    """A Telegram user, and their Stripe customer once they pay by card."""

    telegram_id = peewee.BigIntegerField(unique=True)
    first_name = peewee.CharField(max_length=256, default="")
    last_name = peewee.CharField(max_length=256, null=True)
    username = peewee.CharField(max_length=64, null=True)
    language_code = peewee.CharField(max_length=16, null=True)
    is_premium = peewee.BooleanField(default=False)
    stripe_customer_id = peewee.CharField(max_length=64, null=True, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    @property
    def display_name(self) -> str:
        """First and last name, or the username, or the id."""
        name = " ".join(p for p in (self.first_name, self.last_name) if p)
        return name or (f"@{self.username}" if self.username else str(self.telegram_id))


class EventStatus:
    """Where an inbox event stands."""

    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"
    IGNORED = "ignored"
    ALL = (PENDING, PROCESSED, FAILED, IGNORED)
    DONE = (PROCESSED, IGNORED)


class Event(BaseModel):
    """One accepted webhook delivery: the source of truth for what must be done."""

    provider = peewee.CharField(max_length=32)
    external_id = peewee.CharField(max_length=255)
    type = peewee.CharField(max_length=128)
    payload = JSONField()
    status = peewee.CharField(max_length=16, default=EventStatus.PENDING, index=True)
    attempts = peewee.IntegerField(default=0)
    error = peewee.TextField(null=True)
    received_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    processed_at = peewee.DateTimeField(null=True)
    # Held by the worker running a non-transactional handler, so a duplicate message leaves it alone.
    lease_until = peewee.DateTimeField(null=True)
    # The Telegram user the event is about (the payer, the requester), so an operator finds a user's events.
    subject = peewee.BigIntegerField(null=True, index=True)
    # Bumped each time the row is handed to the broker; a message carrying another number is stale.
    dispatch = peewee.IntegerField(default=0)
    dispatched_at = peewee.DateTimeField(null=True)  # when the current message was handed off
    started_at = peewee.DateTimeField(null=True)  # set while an attempt runs

    class Meta:
        indexes = ((("provider", "external_id"), True), (("status", "updated_at"), False))


class EventLog(BaseModel):
    """What happened to an event, in order: received, duplicate, enqueued, attempts, outcome."""

    event = peewee.ForeignKeyField(Event, backref="history", on_delete="CASCADE")
    at = peewee.DateTimeField(default=utcnow)
    action = peewee.CharField(max_length=32)
    detail = peewee.TextField(null=True)


class Grant(BaseModel):
    """One reason a user holds an entitlement: a payment or an operator action, with its own end."""

    user = peewee.ForeignKeyField(User, backref="grants", on_delete="CASCADE")
    entitlement = peewee.CharField(max_length=64)
    source = peewee.CharField(max_length=32)
    reference = peewee.CharField(max_length=255)
    plan = peewee.CharField(max_length=64, null=True)
    subscription_id = peewee.CharField(max_length=255, null=True, index=True)
    starts_at = peewee.DateTimeField(default=utcnow)
    ends_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)
    revoke_reason = peewee.CharField(max_length=64, null=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("source", "reference"), True), (("user", "entitlement"), False))


class LedgerEntry(BaseModel):
    """The audit trail: every grant, extension, revocation and refund, never updated."""

    at = peewee.DateTimeField(default=utcnow, index=True)
    user = peewee.ForeignKeyField(User, backref="ledger", on_delete="CASCADE", null=True)
    action = peewee.CharField(max_length=32)
    entitlement = peewee.CharField(max_length=64, null=True)
    source = peewee.CharField(max_length=32)
    reference = peewee.CharField(max_length=255, null=True)
    detail = JSONField(null=True)

    class Meta:
        indexes = ((("source", "reference"), False),)


class SchemaMigration(BaseModel):
    """A migration applied to this database."""

    version = peewee.IntegerField(primary_key=True)
    name = peewee.CharField(max_length=128)
    applied_at = peewee.DateTimeField(default=utcnow)


class CheckoutSession(BaseModel):
    """A Stripe Checkout Session this service created, so the return page looks up only its own."""

    session_id = peewee.CharField(max_length=255, unique=True)
    user = peewee.ForeignKeyField(User, backref="checkout_sessions", on_delete="CASCADE")
    plan = peewee.CharField(max_length=64)
    created_at = peewee.DateTimeField(default=utcnow)


class WorkerHeartbeat(BaseModel):
    """A worker process that is alive: it writes `seen_at` every few seconds and removes its row when it stops."""

    worker = peewee.CharField(max_length=128, primary_key=True)
    hostname = peewee.CharField(max_length=255)
    pid = peewee.IntegerField()
    started_at = peewee.DateTimeField(default=utcnow)
    seen_at = peewee.DateTimeField(default=utcnow, index=True)


class ApiKey(BaseModel):
    """A key of the operator's backend for `/api/v1`; only its hash is kept."""

    name = peewee.CharField(max_length=128)
    public_id = peewee.CharField(max_length=32, unique=True)
    key_hash = peewee.CharField(max_length=64)
    created_at = peewee.DateTimeField(default=utcnow)
    revoked_at = peewee.DateTimeField(null=True)
    read_only = peewee.BooleanField(default=False)  # may check, never grant or revoke



class EntitlementState(BaseModel):
    """Whether a user holds an entitlement and until when, as transitions last left it (ends_at None while held: lifetime)."""

    user = peewee.ForeignKeyField(User, on_delete="CASCADE")
    entitlement = peewee.CharField(max_length=64)
    holding = peewee.BooleanField(default=False)
    ends_at = peewee.DateTimeField(null=True)
    version = peewee.IntegerField(default=0)  # bumped by every change, so a conditional UPDATE decides races
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("user", "entitlement"), True), (("holding", "ends_at"), False))


class EntitlementTransition(BaseModel):
    """A holder started, had extended, or stopped holding an entitlement; written once with the change that caused it."""

    user = peewee.ForeignKeyField(User, on_delete="CASCADE")
    entitlement = peewee.CharField(max_length=64)
    kind = peewee.CharField(max_length=16)  # started | extended | ended
    reason = peewee.CharField(max_length=32, null=True)  # for ended: expired | refunded | disputed | revoked | canceled
    ends_at = peewee.DateTimeField(null=True)
    previous_end = peewee.DateTimeField(null=True)
    sequence = peewee.IntegerField()  # per user, increasing: the order consumers apply them in
    at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("user", "sequence"), True),)


class Reminder(BaseModel):
    """A message due `days` before a holder's end; skipped when the end moves."""

    user = peewee.ForeignKeyField(User, on_delete="CASCADE")
    entitlement = peewee.CharField(max_length=64)
    ends_at = peewee.DateTimeField()
    days = peewee.IntegerField()
    due_at = peewee.DateTimeField()
    status = peewee.CharField(max_length=16, default="pending")  # pending | queued | skipped

    class Meta:
        indexes = ((("user", "entitlement", "ends_at", "days"), True), (("status", "due_at"), False))


ALL_MODELS = [
    User, Event, EventLog, Grant, LedgerEntry, CheckoutSession, WorkerHeartbeat,
    EntitlementState, EntitlementTransition, Reminder, ApiKey,
]


class ApiKeyUsage(BaseModel):
    """How many `/api/v1` requests a key made in one minute (the rate limit, shared by every web process)."""

    api_key = peewee.IntegerField()
    minute = peewee.BigIntegerField()  # Unix time // 60
    count = peewee.IntegerField(default=0)

    class Meta:
        indexes = ((("api_key", "minute"), True),)


ALL_MODELS.append(ApiKeyUsage)

class WebhookEndpoint(BaseModel):
    """Where outgoing webhooks go; the secret signs them and is shown only when the endpoint is added."""

    url = peewee.TextField()
    secret = peewee.CharField(max_length=128)
    events = JSONField(null=True)  # the types it receives; None: every type
    created_at = peewee.DateTimeField(default=utcnow)
    removed_at = peewee.DateTimeField(null=True)


class WebhookMessage(BaseModel):
    """One outgoing message, written in the transaction of the change it reports; its body is signed as stored."""

    public_id = peewee.CharField(max_length=64, unique=True)  # `webhook-id`, the same on every attempt
    type = peewee.CharField(max_length=64)
    user = peewee.ForeignKeyField(User, backref="webhook_messages", on_delete="CASCADE", null=True)
    sequence = peewee.BigIntegerField(null=True)
    body = peewee.TextField()
    created_at = peewee.DateTimeField(default=utcnow)


class WebhookDelivery(BaseModel):
    """A message on its way to one endpoint: sent in order per (endpoint, user), retried on a schedule."""

    message = peewee.ForeignKeyField(WebhookMessage, backref="deliveries", on_delete="CASCADE")
    endpoint = peewee.ForeignKeyField(WebhookEndpoint, backref="deliveries", on_delete="CASCADE")
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", null=True)  # the message's, for the ordering rule
    sequence = peewee.BigIntegerField(null=True)
    status = peewee.CharField(max_length=16, default="pending")
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = peewee.DateTimeField(default=utcnow)
    claimed_until = peewee.DateTimeField(null=True)  # held by the worker sending the current attempt
    last_status = peewee.IntegerField(null=True)
    last_error = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    delivered_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("status", "next_attempt_at"), False), (("endpoint", "user", "status", "sequence"), False))


class WebhookSequence(BaseModel):
    """The last `sequence` given to a user's messages."""

    user = peewee.ForeignKeyField(User, primary_key=True, on_delete="CASCADE")
    last = peewee.BigIntegerField(default=0)


WEBHOOK_MODELS = [WebhookEndpoint, WebhookMessage, WebhookDelivery, WebhookSequence]
ALL_MODELS += WEBHOOK_MODELS
class ReconcileState(BaseModel):
    """Per provider: who may reconcile now (a lease), how far its ledger was read (a cursor) and the last run's outcome."""

    provider = peewee.CharField(max_length=32, primary_key=True)
    lease_until = peewee.DateTimeField(null=True)
    lease_holder = peewee.CharField(max_length=128, null=True)
    # The newest ledger entry seen so far: a Star transaction's or a Stripe event's time and id.
    cursor_at = peewee.DateTimeField(null=True)
    cursor_id = peewee.CharField(max_length=255, null=True)
    last_started_at = peewee.DateTimeField(null=True)
    last_finished_at = peewee.DateTimeField(null=True)
    last_summary = JSONField(null=True)
    last_error = peewee.TextField(null=True)


ALL_MODELS.append(ReconcileState)


class JoinQuery(BaseModel):
    """A chat join request Telegram handed to the bot to decide (`query_id`), and what became of it."""

    query_id = peewee.CharField(max_length=128, unique=True)
    chat = peewee.BigIntegerField()
    chat_title = peewee.CharField(max_length=256, null=True)
    telegram_id = peewee.BigIntegerField(index=True)
    user_chat_id = peewee.BigIntegerField(null=True)
    # approved | declined | queued (answered at the door) | paywall (the Mini App is open, waiting for a payment)
    # | paid (approved once the payment was granted) | invited (the query had expired: an invite link was sent)
    # | unpaid (the paywall timed out; `answer` says what was sent) | failed (the answer could not be sent)
    state = peewee.CharField(max_length=16)
    answer = peewee.CharField(max_length=16, null=True)  # approve | decline | queue, as sent to Telegram
    note = peewee.CharField(max_length=300, null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField(null=True)  # a paywall left unpaid is answered `unpaid_join` from then
    decided_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("state", "expires_at"), False),)


class EmojiStatusAccess(BaseModel):
    """A user's answer to the Mini App's request to let the bot set their emoji status."""

    telegram_id = peewee.BigIntegerField(unique=True)
    allowed = peewee.BooleanField(default=False)
    updated_at = peewee.DateTimeField(default=utcnow)


ALL_MODELS += [JoinQuery, EmojiStatusAccess]


class Trial(BaseModel):
    """A free trial a payer started: once per user and entitlement, whatever the plan."""

    user = peewee.ForeignKeyField(User, on_delete="CASCADE")
    entitlement = peewee.CharField(max_length=64)
    plan = peewee.CharField(max_length=64)
    via = peewee.CharField(max_length=16)  # bot | miniapp | api | stripe (a card subscription's trial)
    reference = peewee.CharField(max_length=128, null=True)  # the Checkout Session for a card trial
    started_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("user", "entitlement"), True),)


class PromoCode(BaseModel):
    """A code an operator hands out: so many days of an entitlement, with caps."""

    code = peewee.CharField(max_length=64, unique=True)  # upper case: codes match without regard to case
    entitlement = peewee.CharField(max_length=64)
    days = peewee.IntegerField()
    max_uses = peewee.IntegerField(null=True)
    per_user = peewee.IntegerField(default=1)
    expires_at = peewee.DateTimeField(null=True)
    new_users_only = peewee.BooleanField(default=False)
    uses = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField(default=utcnow)
    disabled_at = peewee.DateTimeField(null=True)


class PromoRedemption(BaseModel):
    """One use of a promo code by a payer, with the grant it made."""

    code = peewee.ForeignKeyField(PromoCode, on_delete="CASCADE")
    user = peewee.ForeignKeyField(User, on_delete="CASCADE")
    grant_reference = peewee.CharField(max_length=128, unique=True)
    at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("code", "user"), False),)


class Gift(BaseModel):
    """A plan bought for someone else: a link the first other user who opens it redeems."""

    code = peewee.CharField(max_length=64, unique=True)
    plan = peewee.CharField(max_length=64)
    buyer = peewee.ForeignKeyField(User, on_delete="CASCADE")
    source = peewee.CharField(max_length=16)  # telegram | stripe
    reference = peewee.CharField(max_length=255)  # the payment: a Stars charge id or a Checkout Session id
    state = peewee.CharField(max_length=16, default="open")  # open | redeemed | voided
    recipient = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL", backref="gifts_received")
    created_at = peewee.DateTimeField(default=utcnow)
    redeemed_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("source", "reference"), True),)


ALL_MODELS += [Trial, PromoCode, PromoRedemption, Gift]


class Subscription(BaseModel):
    """A payer's provider subscription (a Star subscription by its first invoice payload, a Stripe one by its id) and its state."""

    user = peewee.ForeignKeyField(User, backref="subscriptions", on_delete="CASCADE")
    provider = peewee.CharField(max_length=32)
    key = peewee.CharField(max_length=255, unique=True)  # the `subscription_id` its grants carry
    plan = peewee.CharField(max_length=64)
    entitlement = peewee.CharField(max_length=64)
    state = peewee.CharField(max_length=16, default="active")  # active | canceled | past_due | ended
    period_end = peewee.DateTimeField(null=True)  # the end of the last paid period
    grace_until = peewee.DateTimeField(null=True)  # while past_due: when the grace grant ends
    charge_id = peewee.CharField(max_length=255, null=True)  # Stars: the latest charge, which editUserStarSubscription names
    canceled_by = peewee.CharField(max_length=32, null=True)  # who canceled it: `payer` (in Telegram or Stripe) or `service`
    end_reason = peewee.CharField(max_length=32, null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    ended_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("state", "period_end"), False),)


class SubscriptionChange(BaseModel):
    """One change of a subscription's state, written with the change: from, to, who and why."""

    subscription = peewee.ForeignKeyField(Subscription, backref="changes", on_delete="CASCADE")
    at = peewee.DateTimeField(default=utcnow)
    previous = peewee.CharField(max_length=16, null=True)
    state = peewee.CharField(max_length=16)
    actor = peewee.CharField(max_length=32)  # telegram | stripe | payer | operator | system
    reason = peewee.CharField(max_length=64, null=True)


SUBSCRIPTION_MODELS = [Subscription, SubscriptionChange]
ALL_MODELS += SUBSCRIPTION_MODELS
