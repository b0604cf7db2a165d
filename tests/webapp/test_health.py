"""Health, metrics and the JSON error contract."""
from __future__ import annotations

import pytest

from app.config import load_settings
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
    import workers
    from tests.support.redis_server import free_port

    settings = load_settings(environ={**env, "BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}, env_file="/none")
    workers.setup(settings)
    try:
        response = create_app(settings).test_client().get("/healthz")
    finally:
        workers.setup(load_settings(environ=env, env_file="/none"))
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
