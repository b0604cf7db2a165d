"""`/healthz` for load balancers and `/metrics` for Prometheus."""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, jsonify, request

from prometheus_client.core import GaugeMetricFamily

from app import db, heartbeats, inbox
from app.clock import utcnow
from app.webhooks import health as webhook_health
from webapp.context import runtime, settings
from webapp.errors import ApiError
from workers import metrics_relay
from workers.broker import ping as ping_broker
from workers.broker import queue_depths

bp = Blueprint("health", __name__)


def _workers_alive() -> None:
    with db.connection():
        if not heartbeats.seen().ok:
            raise LookupError(f"no worker seen in the last {int(heartbeats.ALIVE_WITHIN.total_seconds())} s")


def _checks() -> dict[str, str]:
    """Each check of `/healthz`: `ok` or `down …`."""
    checks = {}
    for name, probe in (("database", db.ping), ("broker", lambda: ping_broker(runtime().broker)), ("workers", _workers_alive)):
        try:
            probe()
            checks[name] = "ok"
        except LookupError as exc:
            checks[name] = f"down: {exc}"
        except Exception as exc:
            checks[name] = f"down: {type(exc).__name__}"
    return checks


@bp.get("/healthz")
def healthz():
    """200 when the database and broker answer and a worker is alive, 503 naming what is down.
    ---
    get:
      summary: Whether the database, the broker and the workers are up
      tags: [operations]
      responses:
        "200":
          description: all up
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Health"}
        "503":
          description: "something is down: each check says `ok` or `down …`, and `error.code` is `unhealthy`"
          content:
            application/json:
              schema:
                allOf:
                  - $ref: "#/components/schemas/Error"
                  - $ref: "#/components/schemas/Health"
    """
    checks = _checks()
    down = [name for name, state in checks.items() if state != "ok"]
    body = dict(checks)
    if down:
        body["error"] = {"code": "unhealthy", "message": f"{', '.join(down)} down"}
    response = jsonify(body)
    response.status_code = 503 if down else 200
    return response


@bp.get("/metrics")
def prometheus_metrics():
    """Prometheus text exposition, behind `METRICS_TOKEN` when it is set (and closed in production without it).
    ---
    get:
      summary: Prometheus metrics
      tags: [operations]
      security: [{}, {metricsToken: []}]
      responses:
        "200":
          description: the Prometheus text exposition format
          content:
            text/plain:
              schema: {type: string}
        "401":
          description: "`METRICS_TOKEN` is set and the bearer token is missing or wrong (`metrics_token_invalid`)"
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
        "403":
          description: production without `METRICS_TOKEN` (`metrics_disabled`)
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
    """
    _check_metrics_token()
    store = current_app.extensions.get("entitle_host_metrics")
    body, content_type = metrics_relay.exposition(settings(), store, shared=_deploy_families())
    return Response(body, content_type=content_type)


def _check_metrics_token() -> None:
    config = settings()
    expected = config.metrics_token
    if not expected:
        if config.production:
            raise ApiError(403, "metrics_disabled", "set METRICS_TOKEN to read /metrics in production")
        return
    scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise ApiError(401, "metrics_token_invalid", "send Authorization: Bearer <METRICS_TOKEN>")


def _deploy_families() -> list:
    """What the whole deploy shares, read at each scrape: health checks, queue depths, the inbox's backlog, live workers,
    outgoing-webhook endpoints' health.

    These are not any one host's counts, so they carry no `host` label.
    """
    up = GaugeMetricFamily("health_check_up", "1 when this check of /healthz passes, else 0.", labels=["check"])
    for name, state in _checks().items():
        up.add_metric([name], 1.0 if state == "ok" else 0.0)
    families = [up]
    try:
        depths = queue_depths(runtime().broker, runtime().queues())
    except Exception:  # the broker is down: health_check_up says so
        depths = {}
    queued = GaugeMetricFamily("queue_messages", "Messages waiting in each broker queue, delayed ones included.", labels=["queue"])
    for queue, depth in depths.items():
        queued.add_metric([queue], depth)
    families.append(queued)
    try:
        with db.connection():
            backlog = inbox.pending_by_provider()
            alive = heartbeats.seen().alive
            endpoints = webhook_health.families(settings().webhook_late_after)
    except Exception:  # the database is down: health_check_up says so
        return families
    pending = GaugeMetricFamily("inbox_pending_events", "Inbox events not yet processed, by provider.", labels=["provider"])
    oldest = GaugeMetricFamily(
        "inbox_oldest_pending_age_seconds", "Age of the oldest inbox event not yet processed, by provider.", labels=["provider"]
    )
    now = utcnow()
    for provider in sorted(set(backlog) | set(runtime().handlers.tables)):
        count, received = backlog.get(provider, (0, None))
        pending.add_metric([provider], count)
        oldest.add_metric([provider], max(0.0, (now - received).total_seconds()) if received else 0.0)
    workers = GaugeMetricFamily("workers_alive", "Worker processes whose heartbeat is recent.")
    workers.add_metric([], alive)
    return families + [pending, oldest, workers] + endpoints
