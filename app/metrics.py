"""Prometheus metrics. Set PROMETHEUS_MULTIPROC_DIR before import to aggregate across processes."""
from __future__ import annotations

import os

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # prometheus-client writes one file per process there and fails if the directory is missing.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

telegram_payments = Counter("telegram_payments", "Telegram Stars payments by result.", ["result"])
telegram_payment_value = Counter("telegram_payment_value", "Value of Telegram payments received.", ["currency"])
miniapp_sessions = Counter("miniapp_sessions", "Mini App sessions issued.")
miniapp_session_failures = Counter("miniapp_session_failures", "Mini App sign-ins refused, by reason.", ["reason"])
miniapp_exchange_latency = Histogram(
    "miniapp_exchange_latency_seconds",
    "Time to exchange initData for a session token.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
stripe_webhooks = Counter("stripe_webhooks", "Stripe webhook deliveries by event type and result.", ["type", "result"])
webhook_requests = Counter("webhook_requests", "Webhook HTTP requests by provider and status.", ["provider", "status"])
events_processed = Counter("events_processed", "Inbox events run by a worker, by result.", ["provider", "result"])
event_processing_seconds = Histogram(
    "event_processing_seconds", "Time a worker spends on one inbox event.", ["provider"]
)
entitlements_granted = Counter("entitlements_granted", "Grants created, by source.", ["source"])
entitlements_revoked = Counter("entitlements_revoked", "Grants revoked, by source and reason.", ["source", "reason"])


def exposition() -> tuple[bytes, str]:
    """The metrics text for `/metrics`, aggregated across processes in multiprocess mode."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
