"""Run a reconciliation for one provider with the configured client: on demand (the CLI) or routinely (the workers)."""
from __future__ import annotations

from app.config import Settings
from app.reconcile import runs
from app.reconcile import stripe as stripe_ledger
from app.reconcile import telegram as telegram_ledger
from app.reconcile.runs import Report

PROVIDERS = runs.PROVIDERS


class NotConfigured(Exception):
    """The provider's credentials are not set, so its ledger cannot be read."""


def configured(provider: str, settings: Settings) -> bool:
    """True when the provider's ledger can be read with these settings."""
    return bool(settings.telegram_bot_token if provider == "telegram" else settings.stripe_secret_key)


def _client(provider: str, settings: Settings):
    if not configured(provider, settings):
        raise NotConfigured("TELEGRAM_BOT_TOKEN is not set" if provider == "telegram" else "STRIPE_SECRET_KEY is not set")
    if provider == "telegram":
        from app.telegram.client import client_for as telegram_client

        return telegram_client(settings)
    from app.stripe.client import client_for as stripe_client

    return stripe_client(settings)


def reconcile(provider: str, settings: Settings, *, days: int = 30, dry_run: bool = False, routine: bool = False,
              progress=None) -> Report:
    """Read the provider's ledger (since the cursor, when `routine`) and record what the inbox lacks (nothing with `dry_run`)."""
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}")
    client = _client(provider, settings)
    cursor = runs.cursor(provider) if routine else None
    if provider == "telegram":
        read_to = runs.ledger_read_to(provider) if routine and cursor is not None else None
        return telegram_ledger.reconcile(client, days=days, dry_run=dry_run, cursor=cursor, progress=progress, read_to=read_to)
    return stripe_ledger.reconcile(client, days=days, dry_run=dry_run, cursor=cursor, progress=progress)
