"""`/healthz` for load balancers and `/metrics` for Prometheus."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app import db, heartbeats, metrics
from workers import current_broker
from workers.broker import ping as ping_broker

bp = Blueprint("health", __name__)


def _workers_alive() -> None:
    with db.connection():
        if not heartbeats.seen().ok:
            raise LookupError(f"no worker seen in the last {int(heartbeats.ALIVE_WITHIN.total_seconds())} s")


@bp.get("/healthz")
def healthz():
    """200 when the database and broker answer and a worker is alive, 503 naming what is down."""
    checks = {}
    for name, probe in (("database", db.ping), ("broker", lambda: ping_broker(current_broker())), ("workers", _workers_alive)):
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
    """Prometheus text exposition."""
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)
