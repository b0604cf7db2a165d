"""The `entitle` command line for operators."""
from __future__ import annotations

from cli.metrics_dir import METRICS_DIR  # noqa: F401  (first: before anything imports prometheus-client)

import typer  # noqa: E402

from cli import access, apikeys, customer, db, entitlements, events, initdata, plans, sandbox, service, stripe, telegram  # noqa: E402
from cli import promo, subscriptions, webhooks  # noqa: E402
from cli.metrics import metrics  # noqa: E402
from cli.reconcile import app as reconcile_app  # noqa: E402

app = typer.Typer(
    name="entitle",
    help="Turn Telegram Stars and Stripe payments into entitlements.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
refund_app = typer.Typer(help="Refund a payment and revoke what it granted.", no_args_is_help=True)
simulate_app = typer.Typer(help="Send realistic signed webhooks to a running service.", no_args_is_help=True)

app.command("run")(service.run)
app.command("worker")(service.worker)
app.command("status")(service.status)
app.command("metrics")(metrics)
app.command("sandbox")(sandbox.sandbox)
app.add_typer(db.app, name="db")
app.add_typer(plans.app, name="plans")
app.add_typer(events.app, name="events")
app.add_typer(entitlements.app, name="entitlements")
app.add_typer(customer.app, name="customer")
app.add_typer(apikeys.app, name="apikeys")
app.add_typer(promo.app, name="promo")
app.add_typer(access.app, name="access")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(reconcile_app, name="reconcile")
app.add_typer(subscriptions.app, name="subscriptions")

# Provider command modules add their commands to the top level, `refund` and `simulate`.
for _module in (telegram, stripe, initdata):
    _module.register(app, refund_app, simulate_app)

app.add_typer(refund_app, name="refund")
app.add_typer(simulate_app, name="simulate")


def main() -> None:
    """Console entry point."""
    app()
