"""`entitle refund stripe PAYMENT_INTENT_ID` and `entitle simulate stripe checkout`."""
from __future__ import annotations

import json
from typing import Optional

import requests
import typer

from app.plans import Catalogue, PlanError
from app.stripe.client import NotConfigured, client_for, key_livemode
from app.stripe.prices import operator_amount
from simulate import stripe_events as events
from app.stripe.checkout import app_url, success_url
from app.stripe.customers import METADATA_KEY
from app.stripe.refunds import RefundFailed, UnknownPayment, refund_payment
from app.stripe.signature import sign_payload
from cli import context
from cli.output import console, errors, fail, print_json
from cli.refunds import report_refund

simulate_stripe = typer.Typer(help="Signed Stripe webhooks, like `stripe trigger`.", no_args_is_help=True)


def register(app: typer.Typer, refund_app: typer.Typer, simulate: typer.Typer) -> None:
    """Add the Stripe commands to `entitle refund` and `entitle simulate`."""
    refund_app.command("stripe")(refund)
    simulate.add_typer(simulate_stripe, name="stripe")


def refund(
    payment_intent_id: str = typer.Argument(..., help="The PaymentIntent to refund (pi_…)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Refund a card payment in full at Stripe, then revoke what it granted and stop its subscription's renewals."""
    if not payment_intent_id.startswith("pi_"):
        raise typer.BadParameter("a PaymentIntent id starts with pi_", param_hint="PAYMENT_INTENT_ID")
    settings = context.settings()
    context.ready_database()
    try:
        client = client_for(settings)
    except NotConfigured as exc:
        fail(str(exc))
    try:
        with context.grant_changes():
            result = refund_payment(client, payment_intent_id)
    except UnknownPayment as exc:
        fail(str(exc))
    except RefundFailed as exc:
        fail(f"{exc}; nothing was revoked")
    if as_json:
        print_json(
            {
                "payment_intent": result.payment_intent,
                "refund": result.refund_id,
                "already_refunded": result.already_refunded,
                "amount": result.amount,
                "currency": result.currency,
                "user": result.grant.user.telegram_id,
                "revoked": [{"entitlement": g.entitlement, "reference": g.reference} for g in result.revoked],
                "renewal_canceled": result.renewal_canceled,
                "errors": result.errors,
            }
        )
        if not result.ok:
            raise typer.Exit(1)
        return
    amount = None
    if result.refund_id:
        amount = operator_amount(result.amount, result.currency) if result.amount is not None and result.currency else "in full"
        amount = f"{result.refund_id}, {amount}"
    report_refund(result.payment_intent, result.grant.user.telegram_id, refunded_now=amount, already_refunded=result.already_refunded,
                  revoked=result.revoked, renewal_canceled=result.renewal_canceled, problems=result.errors, provider="Stripe",
                  subscription=result.grant.subscription_id)


def checkout_payment(user_id: int, plan, settings) -> dict:
    """What Stripe holds after a one-off Checkout payment: the paid session, its PaymentIntent and its charge."""
    livemode = key_livemode(settings.stripe_secret_key) is True
    metadata = {METADATA_KEY: str(user_id), "plan": plan.key}
    intent = events.payment_intent(metadata=metadata, livemode=livemode)
    charge = events.charge(charge_id=intent["latest_charge"], payment_intent=intent["id"], metadata=metadata, livemode=livemode)
    session = events.checkout_session(
        mode="payment",
        payment_status="paid",
        client_reference_id=str(user_id),
        metadata=metadata,
        payment_intent=intent["id"],
        success_url=success_url(settings),
        cancel_url=app_url(settings),
        livemode=livemode,
    )
    return {"session": session, "prices": [plan.stripe_price], "payment_intent": intent, "charge": charge}


def checkout_events(payment: dict, livemode: bool) -> list[dict]:
    """The events Stripe sends for a one-off Checkout payment: the charge, the PaymentIntent, the completed session."""
    return [
        events.event("charge.succeeded", payment["charge"], livemode=livemode),
        events.event("payment_intent.succeeded", payment["payment_intent"], livemode=livemode),
        events.event("checkout.session.completed", payment["session"], livemode=livemode),
    ]


def _tell_sandbox(settings, payment: dict, made: list[dict]) -> bool:
    """Store the payment and the events Stripe made of it at the sandbox STRIPE_API_BASE points at, so the service finds
    them (the session when it reads it back, the events when it reconciles); False without one."""
    from simulate.sandbox import SandboxError, tell_stripe_checkouts

    if not settings.stripe_api_base:
        return False
    if not settings.stripe_secret_key:
        fail("STRIPE_SECRET_KEY is not set: the sandbox at STRIPE_API_BASE accepts only its own key")
    try:
        tell_stripe_checkouts(settings.stripe_api_base, settings.stripe_secret_key, [{**payment, "events": made}])
    except SandboxError as exc:
        errors.print(f"[yellow]warning:[/] STRIPE_API_BASE: {exc}; the service will not find this checkout session", highlight=False, soft_wrap=True)
        return False
    return True


def _answer(response: requests.Response):
    try:
        return response.json()
    except ValueError:
        return response.text[:200]


def _send(target: str, event: dict, secret: str, url_given: bool) -> dict:
    body = json.dumps(event).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": sign_payload(body, secret),
    }
    try:
        response = requests.post(target, data=body, headers=headers, timeout=10)
        status, answer = response.status_code, _answer(response)
    except requests.ConnectionError as exc:
        context.unreachable(target, exc, url_given)
    except requests.RequestException as exc:
        status, answer = None, f"{type(exc).__name__}: {target} did not answer"
    return {"type": event["type"], "id": event["id"], "status": status, "answer": answer}


def _plan_sold_by_card(settings, plan_key: str):
    try:
        plan = Catalogue.from_file(settings.plans_file).get(plan_key)
    except PlanError as exc:
        fail(str(exc))
    if plan is None:
        fail(f"unknown plan {plan_key!r} (see `entitle plans list`)")
    if not plan.sold_by_card:
        fail(f"plan {plan_key!r} is not sold by card (see `entitle plans list`)")
    if plan.stripe_mode == "subscription":
        fail(
            f"plan {plan_key!r} is a subscription: the service reads subscriptions and invoices back from Stripe, "
            "which knows nothing of simulated ones; use `stripe trigger` with a test-mode account"
        )
    return plan


@simulate_stripe.command("checkout")
def simulate_checkout(
    user_id: int = typer.Option(..., "--user-id", help="The payer's Telegram id."),
    plan_key: str = typer.Option(..., "--plan", help="A one-off plan sold by card."),
    url: Optional[str] = typer.Option(None, "--url", help="The service's base URL (default: PUBLIC_URL)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the PaymentIntent id (for `PI=$(…)`)."),
    no_deliver: bool = typer.Option(False, "--no-deliver", help="Store the payment and its events at the sandbox only and send the "
                                    "service nothing, as if the webhook were lost: `entitle reconcile stripe` finds it."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Send the signed webhooks of a completed Checkout payment to a running service (stored first at a sandbox's STRIPE_API_BASE)."""
    settings = context.settings()
    if not settings.stripe_webhook_secrets and not no_deliver:
        fail("STRIPE_WEBHOOK_SECRET is not set: events are signed with the secret the service checks")
    plan = _plan_sold_by_card(settings, plan_key)
    if no_deliver and not settings.stripe_api_base:
        fail("--no-deliver needs a sandbox at STRIPE_API_BASE (`entitle sandbox`): without one the payment is kept nowhere")
    payment = checkout_payment(user_id, plan, settings)
    made = checkout_events(payment, livemode=payment["session"]["livemode"])
    in_sandbox = _tell_sandbox(settings, payment, made)
    intent_id, session_id = payment["payment_intent"]["id"], payment["session"]["id"]
    if no_deliver:
        if not in_sandbox:
            fail("the sandbox at STRIPE_API_BASE did not keep the payment, so nothing was simulated")
        _report_undelivered(user_id, plan.key, payment, made, quiet=quiet, as_json=as_json)
        return
    target = context.service_url(url) + "/webhooks/stripe"
    sent = []
    for event in made:
        sent.append(_send(target, event, settings.stripe_webhook_secrets[0], bool(url)))
        if sent[-1]["status"] is None:
            break
    ok = all(row["status"] == 200 for row in sent)
    completed = next((row["id"] for row in sent if row["type"] == "checkout.session.completed"), None)
    outcome = context.outcome_of("stripe", completed) if ok and completed else None
    if as_json:
        print_json({
            "user": user_id, "plan": plan.key, "checkout_session": session_id, "payment_intent": intent_id,
            "charge": payment["charge"]["id"], "sandbox": in_sandbox, "events": sent, "outcome": outcome,
        })
    elif quiet:
        if ok:
            console.print(intent_id, highlight=False, soft_wrap=True)
        for row in sent if not ok else ():
            errors.print(f"{row['status'] or 'error'} {row['type']} {row['id']}", highlight=False, markup=False)
    else:
        for row in sent:
            style = "green" if row["status"] == 200 else "red"
            console.print(f"[{style}]{row['status'] or 'error'}[/] {row['type']} {row['id']}", highlight=False)
            if row["status"] != 200:
                answer = row["answer"] if isinstance(row["answer"], str) else json.dumps(row["answer"])
                errors.print(f"  {answer}", highlight=False, markup=False)
        if ok:
            console.print(f"user {user_id} paid for {plan.key} ({outcome or 'not run yet: is a worker running?'}); "
                          f"see `entitle entitlements list --user {user_id}`", highlight=False, soft_wrap=True)
        console.print(f"payment intent: {intent_id} (refund it: entitle refund stripe {intent_id})", highlight=False, soft_wrap=True)
        if not in_sandbox:
            console.print("no sandbox at STRIPE_API_BASE: the service cannot read this session back from Stripe, so it grants nothing "
                          "(see `entitle sandbox`)", highlight=False, soft_wrap=True)
    if not ok:
        raise typer.Exit(1)
    if context.did_not_end_well(outcome):
        fail(f"the checkout of {intent_id} was not granted: {outcome}")


def _report_undelivered(user_id: int, plan_key: str, payment: dict, made: list[dict], *, quiet: bool, as_json: bool) -> None:
    """What `--no-deliver` did: the payment is at the sandbox's Stripe, its events in Stripe's event list, none sent."""
    intent_id, session_id = payment["payment_intent"]["id"], payment["session"]["id"]
    if as_json:
        print_json({
            "user": user_id, "plan": plan_key, "checkout_session": session_id, "payment_intent": intent_id,
            "charge": payment["charge"]["id"], "sandbox": True, "delivered": False,
            "events": [{"type": e["type"], "id": e["id"], "status": None, "answer": None} for e in made], "outcome": None,
        })
        return
    if quiet:
        console.print(intent_id, highlight=False, soft_wrap=True)
        return
    for made_event in made:
        console.print(f"[yellow]not sent[/] {made_event['type']} {made_event['id']}", highlight=False)
    console.print(f"user {user_id} paid for {plan_key} at the sandbox's Stripe (checkout session {session_id}); its events are in "
                  "Stripe's event list, but no webhook was sent (--no-deliver)", highlight=False, soft_wrap=True)
    console.print(f"payment intent: {intent_id}; find it: entitle reconcile stripe", highlight=False, soft_wrap=True)
