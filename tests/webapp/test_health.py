"""Health, metrics and the JSON error contract."""
from __future__ import annotations

import dataclasses

import pytest
from prometheus_client import REGISTRY

from app.config import load_settings
from simulate import stripe_events
from tests.support.stripe import WEBHOOK_SECRET, post_event
from webapp import create_app


def test_healthz_reports_database_broker_and_workers(client, worker):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"database": "ok", "broker": "ok", "workers": "ok"}


def test_healthz_is_503_naming_the_workers_when_none_is_alive(client, broker, database):
    import dramatiq

    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["database"] == "ok" and body["broker"] == "ok" and body["workers"].startswith("down: no worker seen")
    assert "workers" in body["error"]["message"]

    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    try:
        assert client.get("/healthz").status_code == 200
    finally:
        worker.stop()
    # A worker that stops cleanly takes its heartbeat with it.
    assert client.get("/healthz").get_json()["workers"].startswith("down")


def test_healthz_names_the_broker_when_it_is_down(env, database):
    from simulate.redis_server import free_port

    settings = load_settings(environ={**env, "BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}, env_file="/none")
    response = create_app(settings).test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["database"] == "ok" and body["broker"].startswith("down")
    assert "broker" in body["error"]["message"]


@pytest.mark.parametrize(
    "method, path, status, code",
    [("get", "/no/such/page", 404, "not_found"), ("delete", "/api/plans", 405, "method_not_allowed")],
)
def test_errors_are_json(client, method, path, status, code):
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert response.get_json()["error"]["message"]


def test_a_body_over_the_limit_gets_413_json(client, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = client.post("/api/plans", data=b"x" * (limit + 1), content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


def test_metrics_are_prometheus_text(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    for name in ("events_processed_total", "entitlements_granted_total", "webhook_requests_total", "miniapp_sessions_total"):
        assert f"# TYPE {name.removesuffix('_total')} counter" in text or f"# TYPE {name} counter" in text


def test_metrics_show_health_queues_the_inbox_backlog_and_live_workers_once_for_the_deploy(client, worker, runtime):
    from datetime import timedelta

    from app import inbox
    from app.clock import utcnow
    from app.models import Event
    from tests.support.metrics import metric

    assert metric(client, "workers_alive") == 1
    assert metric(client, "health_check_up", check="database") == 1
    assert metric(client, "health_check_up", check="broker") == 1
    assert metric(client, "inbox_pending_events", provider="stripe") == 0
    worker.pause()
    try:
        recorded = inbox.record("stripe", "evt_waiting_for_the_metrics", "customer.created", {"id": "evt_waiting_for_the_metrics"})
        Event.update(received_at=utcnow() - timedelta(seconds=90)).where(Event.id == recorded.event.id).execute()
        runtime.enqueue(recorded.event.id)
        assert metric(client, "inbox_pending_events", provider="stripe") == 1
        assert 90 <= metric(client, "inbox_oldest_pending_age_seconds", provider="stripe") < 120
        assert sum(metric(client, "queue_messages", queue=queue) for queue in runtime.queues()) == 1
    finally:
        worker.resume()
    text = client.get("/metrics").get_data(as_text=True)
    assert [line for line in text.splitlines() if line.startswith("workers_alive")] == ["workers_alive 1.0"]  # no host label


METRICS_TOKEN = "metrics-token-for-the-tests-0123456789"


def metrics_client(settings, **changes):
    return create_app(dataclasses.replace(settings, **changes)).test_client()


def test_metrics_need_the_token_when_one_is_set(settings, database, broker):
    client = metrics_client(settings, metrics_token=METRICS_TOKEN)

    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": METRICS_TOKEN}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "metrics_token_invalid"
        assert METRICS_TOKEN not in response.get_data(as_text=True)
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = client.get("/metrics", headers={"Authorization": f"{scheme} {METRICS_TOKEN}"})
        assert response.status_code == 200 and "entitlements_granted" in response.get_data(as_text=True)


def test_production_closes_metrics_until_a_token_is_set(settings, database, broker):
    closed = metrics_client(settings, entitle_env="production").get("/metrics")
    assert closed.status_code == 403
    assert closed.get_json()["error"]["code"] == "metrics_disabled"

    opened = metrics_client(settings, entitle_env="production", metrics_token=METRICS_TOKEN)
    assert opened.get("/metrics").status_code == 401
    assert opened.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 200


def stripe_webhooks_with_type(type_: str) -> float:
    return sum(
        s.value
        for family in REGISTRY.collect() if family.name == "stripe_webhooks"
        for s in family.samples if s.name == "stripe_webhooks_total" and s.labels["type"] == type_
    )


def test_a_made_up_stripe_event_type_counts_as_other_and_never_becomes_a_label(settings, database, broker):
    # Not TESTING: whatever the service answers such an event, the request is counted.
    app = create_app(dataclasses.replace(settings, stripe_webhook_secrets=(WEBHOOK_SECRET,)))
    made_up = "made.up." + "x" * 100  # within the column, so it passes the door and is recorded
    before = stripe_webhooks_with_type("other")

    post_event(app.test_client(), stripe_events.event(made_up, {"id": "obj_made_up", "object": "made_up"}))

    assert stripe_webhooks_with_type("other") == before + 1
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert "x" * 64 not in text and len(text) < 100_000
