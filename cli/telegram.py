"""`entitle refund telegram`, `entitle telegram set-webhook|webhook-info` and `entitle simulate telegram payment|refund`."""
from __future__ import annotations

import re
import time
from typing import Optional

import requests
import typer

from cli import context
from cli.output import console, errors, fail, print_json, table
from cli.refunds import report_refund

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Payments arrive as messages (successful_payment, refunded_payment) and pre-checkout queries.
ALLOWED_UPDATES = ["message", "pre_checkout_query", "callback_query", "subscription"]
_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
NOT_RUN_YET = "not run yet: is a worker running?"

telegram_app = typer.Typer(help="The Telegram bot: its webhook.", no_args_is_help=True)
simulate_app = typer.Typer(help="Send realistic Telegram updates to a running service.", no_args_is_help=True)


def register(app: typer.Typer, refund_app: typer.Typer, simulate: typer.Typer) -> None:
    """Add the Telegram commands to the CLI."""
    refund_app.command("telegram")(refund)
    app.add_typer(telegram_app, name="telegram")
    simulate.add_typer(simulate_app, name="telegram")


def _bot():
    from app.telegram.client import NotConfigured, client_for

    try:
        return client_for(context.settings())
    except NotConfigured:
        fail("TELEGRAM_BOT_TOKEN is not set (the token @BotFather gave the bot)")


def _secret() -> str:
    secret = context.settings().telegram_webhook_secret
    if not secret:
        fail("TELEGRAM_WEBHOOK_SECRET is not set")
    return secret


def _api_error(exc: Exception) -> str:
    from app.telegram.client import describe_error

    return describe_error(exc)


def _telegram_failures() -> tuple[type[Exception], ...]:
    from telebot.apihelper import ApiException

    return (ApiException, requests.RequestException)


# -- entitle refund telegram ---------------------------------------------------------------


def refund(
    charge_id: str = typer.Argument(..., help="The payment's telegram_payment_charge_id."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Refund a Telegram Stars payment (refundStarPayment), then revoke what it granted."""
    from app.entitlements import grant_to_dict
    from app.telegram import refunds

    context.ready_database()
    bot = _bot()
    try:
        with context.grant_changes():
            result = refunds.refund_payment(bot, charge_id)
    except refunds.UnknownPayment as exc:
        fail(str(exc))
    data = {
        "charge_id": charge_id,
        "user": result.charge.user_id,
        "refunded": result.refunded,
        "already_refunded": result.already_refunded,
        "revoked": [grant_to_dict(g) for g in result.revoked],
        "renewal_canceled": result.renewal_canceled,
        "errors": result.errors,
    }
    if as_json:
        print_json(data)
        if not result.ok:
            raise typer.Exit(1)
        return
    report_refund(charge_id, result.charge.user_id, refunded_now=_stars(result.charge.amount) if result.refunded else None,
                  already_refunded=result.already_refunded, revoked=result.revoked, renewal_canceled=result.renewal_canceled,
                  problems=result.errors, provider="Telegram")


def _stars(amount: int | None) -> str:
    return f"{amount} XTR" if amount is not None else "in full"


# -- entitle telegram ----------------------------------------------------------------------


def _webhook_info(bot) -> dict:
    info = bot.get_webhook_info()
    return {
        "url": info.url,
        "allowed_updates": info.allowed_updates,
        "pending_update_count": info.pending_update_count,
        "last_error_date": info.last_error_date,
        "last_error_message": info.last_error_message,
    }


def _show_webhook(data: dict, as_json: bool) -> None:
    if as_json:
        print_json(data)
        return
    rows = [(k, "" if v is None else (", ".join(v) if isinstance(v, list) else v)) for k, v in data.items()]
    console.print(table("Telegram webhook", ["field", "value"], rows))


def _allowed_updates() -> list[str]:
    """The update types the webhook asks for: join requests too when an entitlement has chats."""
    from app.plans import Catalogue, PlanError

    try:
        has_chats = Catalogue.from_file(context.settings().plans_file).has_chats
    except PlanError as exc:
        fail(str(exc))
    return ALLOWED_UPDATES + (["chat_join_request"] if has_chats else [])


@telegram_app.command("set-webhook")
def set_webhook(
    url: Optional[str] = typer.Option(None, "--url", help="Where Telegram sends updates (default: PUBLIC_URL/webhooks/telegram)."),
    drop_pending: bool = typer.Option(False, "--drop-pending-updates", help="Discard updates Telegram holds for the bot."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Register this service's webhook with Telegram, with the secret token and the update types it needs."""
    settings = context.settings()
    secret = _secret()
    if not _SECRET_TOKEN.match(secret):
        fail("TELEGRAM_WEBHOOK_SECRET may hold only A-Z, a-z, 0-9, _ and - (1 to 256 characters)")
    target = url or f"{settings.public_url}/webhooks/telegram"
    if not target.startswith("https://"):
        errors.print(f"[yellow]warning:[/] Telegram delivers updates only to https:// addresses, not {target}", highlight=False)
    bot = _bot()
    try:
        bot.set_webhook(target, secret_token=secret, allowed_updates=_allowed_updates(), drop_pending_updates=drop_pending or None)
        data = _webhook_info(bot)
    except _telegram_failures() as exc:
        fail(f"Telegram did not set the webhook: {_api_error(exc)}")
    _show_webhook(data, as_json)


@telegram_app.command("webhook-info")
def webhook_info(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """The webhook as Telegram has it: address, update types, backlog and last delivery error."""
    bot = _bot()
    try:
        data = _webhook_info(bot)
    except _telegram_failures() as exc:
        fail(f"Telegram did not answer: {_api_error(exc)}")
    _show_webhook(data, as_json)


# -- entitle simulate telegram -------------------------------------------------------------


def _post(endpoint: str, update: dict, url_given: bool) -> dict:
    try:
        response = requests.post(endpoint, json=update, headers={SECRET_HEADER: _secret()}, timeout=15)
    except requests.ConnectionError as exc:
        context.unreachable(endpoint, exc, url_given)
    except requests.RequestException as exc:
        fail(f"{endpoint} did not answer ({type(exc).__name__})")
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200:
        message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
        fail(f"{endpoint} answered {response.status_code}: {message or response.reason}")
    return body if isinstance(body, dict) else {}


def _endpoint(url: Optional[str]) -> str:
    return f"{context.service_url(url)}/webhooks/telegram"


def _tell_sandbox(user_id: int, charge_id: str, stars: int, payload: str, subscription_period: int | None) -> bool:
    """Tell the sandbox TELEGRAM_API_URL points at about the payment, so refundStarPayment accepts it; False without one."""
    from app.config import DEFAULT_TELEGRAM_API_URL
    from simulate.sandbox import SandboxError, tell_telegram_charges

    settings = context.settings()
    if settings.telegram_api_url == DEFAULT_TELEGRAM_API_URL or not settings.telegram_bot_token:
        return False
    charge = {"user_id": user_id, "telegram_payment_charge_id": charge_id, "total_amount": stars,
              "invoice_payload": payload, "subscription_period": subscription_period}
    try:
        tell_telegram_charges(settings.telegram_api_url, settings.telegram_bot_token, [charge])
    except SandboxError as exc:
        errors.print(f"[yellow]warning:[/] TELEGRAM_API_URL: {exc}; a refund of this charge will be refused", highlight=False, soft_wrap=True)
        return False
    return True


@simulate_app.command("payment")
def simulate_payment(
    user_id: int = typer.Option(..., "--user-id", min=1, help="The paying Telegram user's id."),
    plan: str = typer.Option(..., "--plan", help="The plan key (see `entitle plans list`)."),
    url: Optional[str] = typer.Option(None, "--url", help="The service's base address (default: PUBLIC_URL)."),
    gift: bool = typer.Option(False, "--gift", help="Buy the plan as a gift for someone else (a gift invoice)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the charge id, or with --gift the gift's code (with --no-deliver, the charge id)."),
    no_deliver: bool = typer.Option(False, "--no-deliver", help="Record the payment in the sandbox's Star ledger only and send the "
                                    "service nothing, as if the webhook were lost: `entitle reconcile telegram` finds it."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Pay for a plan as Telegram would report it: a pre-checkout query, then a successful payment."""
    from app.plans import Catalogue, PlanError, STAR_SUBSCRIPTION_PERIOD
    from app.telegram import payments
    from simulate import telegram_updates as updates

    try:
        chosen = Catalogue.from_file(context.settings().plans_file).get(plan)
    except PlanError as exc:
        fail(str(exc))
    if chosen is None or not chosen.sold_for_stars:
        fail(f"no plan {plan!r} sold for Telegram Stars (see `entitle plans list`)")
    payload = payments.encode_payload(chosen.key, user_id, gift=gift)
    if no_deliver:
        _pay_undelivered(user_id, chosen, payload, quiet=quiet, as_json=as_json)
        return
    endpoint = _endpoint(url)
    answer = _post(endpoint, updates.pre_checkout_query_update(user_id, payload, chosen.stars), bool(url))
    if answer.get("method") != "answerPreCheckoutQuery" or answer.get("ok") is not True:
        fail(f"the service declined the checkout: {answer.get('error_message') or answer}")
    charge_id = updates.new_charge_id()
    period = STAR_SUBSCRIPTION_PERIOD if chosen.stars_subscription else None
    in_sandbox = _tell_sandbox(user_id, charge_id, chosen.stars, payload, period)
    expires = int(time.time()) + STAR_SUBSCRIPTION_PERIOD if chosen.stars_subscription else None
    recorded = _post(
        endpoint,
        updates.successful_payment_update(
            user_id, payload, chosen.stars, charge_id,
            subscription_expiration_date=expires, is_first_recurring=chosen.stars_subscription,
        ),
        bool(url),
    )
    data = {"charge_id": charge_id, "user": user_id, "plan": chosen.key, "stars": chosen.stars,
            "pre_checkout": "approved", "event": recorded.get("event"), "status": recorded.get("status"),
            "sandbox": in_sandbox, "outcome": context.outcome_of("telegram", charge_id)}
    failed = context.did_not_end_well(data["outcome"])
    if gift:
        data["gift"] = _gift_code(charge_id)
    if as_json:
        print_json(data)
    elif quiet:
        console.print(data["gift"] if gift else charge_id, highlight=False, soft_wrap=True)
    else:
        if gift:
            console.print(f"a gift: pass on /start gift_{data['gift']} (the bot sent its buyer the link)", highlight=False)
        console.print(f"pre-checkout approved; paid {chosen.stars} ⭐ for {chosen.key} as user {user_id}", highlight=False)
        outcome = data["outcome"] or NOT_RUN_YET
        console.print(f"charge id: {charge_id} (event {data['event']}, {data['status']}; {outcome})", highlight=False)
        console.print(f"see it: entitle entitlements list --user {user_id}", highlight=False)
    if failed:
        fail(f"the payment {charge_id} was not granted: {data['outcome']}")


def _pay_undelivered(user_id: int, chosen, payload: str, *, quiet: bool, as_json: bool) -> None:
    """`--no-deliver`: the payment only in the sandbox's Star ledger (getStarTransactions); no update is sent to the service."""
    from app.config import DEFAULT_TELEGRAM_API_URL
    from app.plans import STAR_SUBSCRIPTION_PERIOD
    from simulate import telegram_updates as updates

    settings = context.settings()
    if settings.telegram_api_url == DEFAULT_TELEGRAM_API_URL or not settings.telegram_bot_token:
        fail("--no-deliver needs a sandbox at TELEGRAM_API_URL and its TELEGRAM_BOT_TOKEN (`entitle sandbox`): "
             "without one the payment is kept nowhere")
    charge_id = updates.new_charge_id()
    period = STAR_SUBSCRIPTION_PERIOD if chosen.stars_subscription else None
    if not _tell_sandbox(user_id, charge_id, chosen.stars, payload, period):
        fail("the sandbox at TELEGRAM_API_URL did not keep the payment, so nothing was simulated")
    data = {"charge_id": charge_id, "user": user_id, "plan": chosen.key, "stars": chosen.stars, "pre_checkout": None,
            "event": None, "status": "not delivered", "sandbox": True, "delivered": False, "outcome": None}
    if as_json:
        print_json(data)
    elif quiet:
        console.print(charge_id, highlight=False, soft_wrap=True)
    else:
        console.print(f"paid {chosen.stars} ⭐ for {chosen.key} as user {user_id}: in the sandbox's Star ledger (getStarTransactions), "
                      "but no update was sent to the service (--no-deliver)", highlight=False, soft_wrap=True)
        console.print(f"charge id: {charge_id}; find it: entitle reconcile telegram", highlight=False, soft_wrap=True)


def _gift_code(charge_id: str) -> str | None:
    """The code of the gift a payment opened, when this CLI sees the service's database."""
    from app.models import Gift

    context.ready_database()
    gift = Gift.get_or_none((Gift.source == "telegram") & (Gift.reference == charge_id))
    return gift.code if gift is not None else None


@simulate_app.command("command")
def simulate_command(
    text: str = typer.Argument(..., help="What the user writes to the bot, e.g. \"/redeem SPRING24\" or \"/start gift_CODE\"."),
    user_id: int = typer.Option(..., "--user-id", min=1, help="The Telegram user writing it."),
    url: Optional[str] = typer.Option(None, "--url", help="The service's base address (default: PUBLIC_URL)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Write a bot command as a user would (/start, /buy, /trial, /redeem, /gift …) and wait for the bot to answer it."""
    from simulate import telegram_updates as updates

    update = updates.command_update(user_id, text)
    recorded = _post(_endpoint(url), update, bool(url))
    outcome = context.outcome_of("telegram", f"update:{update['update_id']}") if recorded.get("status") == "recorded" else None
    data = {"user": user_id, "text": text, "event": recorded.get("event"), "status": recorded.get("status"), "outcome": outcome}
    if as_json:
        print_json(data)
    else:
        console.print(f"{text} from user {user_id}: {recorded.get('status')}" + (f" ({outcome})" if outcome else ""),
                      highlight=False, soft_wrap=True)
    if recorded.get("status") == "ignored":
        fail(f"{text!r} is not a command of this bot")
    if context.did_not_end_well(outcome):
        fail(f"the bot could not answer {text!r}: {outcome}")


@simulate_app.command("join-request")
def simulate_join_request(
    user_id: int = typer.Option(..., "--user-id", min=1, help="The Telegram user asking to join."),
    chat: int = typer.Option(..., "--chat", help="The chat's id (negative, as in plans.toml)."),
    query: bool = typer.Option(False, "--query", help="As a chat that hands its join requests to the bot (a query_id to answer)."),
    url: Optional[str] = typer.Option(None, "--url", help="The service's base address (default: PUBLIC_URL)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Ask to join a chat as Telegram reports it (a chat_join_request update); with --query, see the bot's decision."""
    import secrets

    from simulate import telegram_updates as updates

    query_id = f"sim-{secrets.token_hex(8)}" if query else None
    recorded = _post(_endpoint(url), updates.join_request_update(user_id, chat, query_id=query_id), bool(url))
    data = {"user": user_id, "chat": chat, "query_id": query_id, "event": recorded.get("event"), "status": recorded.get("status"),
            "decision": recorded.get("decision"), "paywall_url": None}
    if recorded.get("decision") == "paywall":
        data["paywall_url"] = _paywall_url(query_id, user_id)
    if as_json:
        print_json(data)
        return
    if not query:
        console.print(f"join request of user {user_id} to chat {chat} sent (event {data['event']}, {data['status']})", highlight=False)
        return
    console.print(f"join request {query_id} of user {user_id} to chat {chat}: {data['decision']}", highlight=False)
    if data["paywall_url"]:
        console.print(f"the paywall, signed in as user {user_id}, in any browser: {data['paywall_url']}", highlight=False, soft_wrap=True)
    if data["decision"] == "failed":
        raise typer.Exit(1)


def _paywall_url(query_id: str, user_id: int) -> str | None:
    """The Mini App URL the bot sent for this query, signed in as the requester (initData in its hash, as Telegram opens it)."""
    from urllib.parse import quote

    from app.models import JoinQuery
    from app.telegram.initdata import sign_init_data
    from webapp.paywall import launch_url

    context.ready_database()
    row = JoinQuery.get_or_none(JoinQuery.query_id == query_id)
    settings = context.settings()
    if row is None or not settings.telegram_bot_token:
        return None
    init_data = sign_init_data(settings.telegram_bot_token, user={"id": user_id, "first_name": f"User {user_id}"})
    return f"{launch_url(settings, row)}#tgWebAppData={quote(init_data, safe='')}"


@simulate_app.command("refund")
def simulate_refund(
    charge_id: str = typer.Option(..., "--charge-id", help="The telegram_payment_charge_id to report refunded."),
    user_id: Optional[int] = typer.Option(None, "--user-id", min=1, help="The payer (default: looked up in the database)."),
    url: Optional[str] = typer.Option(None, "--url", help="The service's base address (default: PUBLIC_URL)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Report a payment refunded, as Telegram does with a refunded_payment message."""
    from app.models import Event
    from simulate import telegram_updates as updates

    payload, amount = "", 1
    if user_id is None:
        context.ready_database()
        event = Event.get_or_none((Event.provider == "telegram") & (Event.external_id == charge_id))
        if event is None:
            fail(f"no payment {charge_id} in the database; pass --user-id to send the refund anyway")
        message = event.payload.get("message") or {}
        user_id = int(message["from"]["id"])
        payment = message.get("successful_payment") or {}
        payload, amount = payment.get("invoice_payload", ""), payment.get("total_amount", 1)
    recorded = _post(_endpoint(url), updates.refunded_payment_update(user_id, payload or "refund", amount, charge_id), bool(url))
    data = {"charge_id": charge_id, "user": user_id, "event": recorded.get("event"), "status": recorded.get("status"),
            "outcome": context.outcome_of("telegram", f"refund:{charge_id}")}
    if as_json:
        print_json(data)
    else:
        outcome = data["outcome"] or NOT_RUN_YET
        console.print(f"refund of {charge_id} sent for user {user_id} (event {data['event']}, {data['status']}; {outcome})",
                      highlight=False)
    # A refund the service already had (ignored: the grant was revoked before) still ends refunded.
    if context.did_not_end_well(data["outcome"], ignored_is_fine=True):
        fail(f"the refund of {charge_id} did not go through: {data['outcome']}")


@simulate_app.command("subscription")
def simulate_subscription(
    user_id: int = typer.Option(..., "--user-id", min=1, help="The subscriber's Telegram id."),
    state: str = typer.Option(..., "--state", help="canceled (the payer canceled), active (re-enabled) or failed (a renewal failed)."),
    payload: Optional[str] = typer.Option(None, "--payload", help="The subscription's first invoice payload (default: the user's newest Star subscription)."),
    url: Optional[str] = typer.Option(None, "--url", help="The service's base address (default: PUBLIC_URL)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Report a change of a Star subscription as Telegram does, with a `subscription` update."""
    from app.telegram.shapes import SUBSCRIPTION_STATES
    from simulate import telegram_updates as updates

    if state not in SUBSCRIPTION_STATES:
        fail(f"--state must be one of {', '.join(SUBSCRIPTION_STATES)}, not {state!r}", code=2)
    if payload is None:
        payload = _newest_star_subscription(user_id)
    update = updates.subscription_update(user_id, payload, state)
    recorded = _post(_endpoint(url), update, bool(url))
    data = {"user": user_id, "payload": payload, "state": state, "event": recorded.get("event"), "status": recorded.get("status"),
            "outcome": context.outcome_of("telegram", f"subscription:{update['update_id']}")}
    if as_json:
        print_json(data)
    else:
        outcome = data["outcome"] or NOT_RUN_YET
        console.print(f"subscription of user {user_id} reported {state} (event {data['event']}, {data['status']}; {outcome})",
                      highlight=False)
        console.print(f"see it: entitle subscriptions list --user {user_id}", highlight=False)
    if context.did_not_end_well(data["outcome"]):
        fail(f"the service did not apply the {state} subscription update: {data['outcome']}")


def _newest_star_subscription(user_id: int) -> str:
    """The first invoice payload of the user's newest Star subscription, from the database."""
    from app import subscriptions
    from app.users import find_user

    context.ready_database()
    user = find_user(user_id)
    rows = [row for row in subscriptions.of_user(user) if row.provider == "telegram"] if user else []
    if not rows:
        fail(f"user {user_id} has no Star subscription in the database; pass --payload to send the update anyway")
    return rows[0].key.split(":", 1)[1]

