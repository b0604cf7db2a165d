"""`/healthz` for load balancers and `/metrics` for Prometheus."""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, jsonify, request

from app import db, heartbeats
from webapp.context import runtime, settings
from webapp.errors import ApiError
from workers import metrics_relay
from workers.broker import ping as ping_broker

bp = Blueprint("health", __name__)


def _workers_alive() -> None:
    with db.connection():
        if not heartbeats.seen().ok:
            raise LookupError(f"no worker seen in the last {int(heartbeats.ALIVE_WITHIN.total_seconds())} s")


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
    checks = {}
    for name, probe in (("database", db.ping), ("broker", lambda: ping_broker(runtime().broker)), ("workers", _workers_alive)):
        try:
            probe()
            checks[name] = "ok"
        except LookupError as exc:
            checks[name] = f"down: {exc}"
        except Exception as exc:
            checks[name] = f"down: {type(exc).__name__}"
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
    body, content_type = metrics_relay.exposition(settings(), current_app.extensions.get("entitle_host_metrics"))
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
