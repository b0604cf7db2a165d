"""`entitle sandbox`: local stand-ins of the Telegram Bot API and the Stripe API, in the foreground."""
from __future__ import annotations

import json
import signal
import sys
import threading

import typer

from cli.output import console, errors, fail

DEFAULT_PORT = 8001
# What the stand-ins recorded of each request is dropped this often; payments and objects stay.
FORGET_CALLS_EVERY = 60.0


def sandbox(
    port: int = typer.Option(DEFAULT_PORT, "--port", envvar="SANDBOX_PORT", min=0, max=65535,
                             help="The port both APIs share (0: a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on."),
    as_json: bool = typer.Option(False, "--json", help="Print the variables as one JSON line, nothing else on stdout."),
    quiet: bool = typer.Option(False, "--quiet", help="Do not log each request on stderr."),
) -> None:
    """Serve stand-ins of the Telegram Bot API and the Stripe API until Ctrl-C, and print the variables that point the service at them."""
    from simulate.sandbox import Sandbox

    log = None if quiet else (lambda line: errors.print(f"sandbox: {line}", highlight=False, markup=False, soft_wrap=True))
    try:
        box = Sandbox(host, port, log=log).start()
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    _price_card_plans(box)
    stop = threading.Event()
    # Ctrl-C and a terminating signal both stop it cleanly (SIGINT too, since a shell starts a
    # background job with SIGINT ignored).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        _announce(box.environment(), box.url, as_json)
        while not stop.wait(FORGET_CALLS_EVERY):
            box.forget_calls()
    except KeyboardInterrupt:
        pass
    finally:
        box.stop()
    errors.print("sandbox stopped; what it held is gone", highlight=False)


def _price_card_plans(box) -> None:
    """Give the card plans of PLANS_FILE a price at the Stripe stand-in, so the Mini App shows one."""
    from app.config import ConfigError, load_settings
    from app.plans import Catalogue, PlanError

    try:
        box.add_plan_prices(Catalogue.from_file(load_settings().plans_file))
    except (PlanError, ConfigError) as exc:
        errors.print(f"[yellow]warning:[/] no card prices at the Stripe stand-in: {exc}", highlight=False, soft_wrap=True)


def _announce(variables: dict[str, str], url: str, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(variables) + "\n")
        sys.stdout.flush()
        return
    console.print(f"Telegram Bot API and Stripe API stand-ins on {url} (Ctrl-C stops; everything is kept in memory).", highlight=False, soft_wrap=True)
    console.print("Point the service and the CLI at them, in each shell (values for local use only):", highlight=False, soft_wrap=True)
    console.print()
    for name, value in variables.items():
        console.print(f"export {name}={value}", highlight=False, markup=False, soft_wrap=True)
    console.print()
    sys.stdout.flush()
