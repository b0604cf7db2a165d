"""The operator's CLI: entitlements, status and migrations, with --json and exit codes."""
from __future__ import annotations

import json
import socket

from app.models import LedgerEntry


def test_grant_list_and_revoke_by_hand(cli):
    granted = cli("entitlements", "grant", "555", "premium", "--days", "7", "--json")
    assert granted.exit_code == 0, granted.output
    row = json.loads(granted.stdout)
    assert row["user"] == 555 and row["entitlement"] == "premium" and row["active"] and row["source"] == "manual"

    listed = json.loads(cli("entitlements", "list", "--user", "555", "--json").stdout)
    assert len(listed) == 1
    assert {"user", "entitlement", "active", "expires_at", "source", "revoked_at"} <= set(listed[0])

    revoked = cli("entitlements", "revoke", "555", "premium")
    assert revoked.exit_code == 0 and "revoked 1 grant" in revoked.stdout
    [after] = json.loads(cli("entitlements", "list", "--user", "555", "--json").stdout)
    assert not after["active"] and after["revoked_at"]
    assert [e.action for e in LedgerEntry.select().order_by(LedgerEntry.id)] == ["grant", "revoke"]


def test_revoking_what_a_user_does_not_hold_exits_1(cli):
    assert cli("entitlements", "revoke", "777", "premium").exit_code == 1
    cli("entitlements", "grant", "777", "supporter")
    result = cli("entitlements", "revoke", "777", "premium")
    assert result.exit_code == 1 and "holds no 'premium'" in result.stderr


def test_a_bad_user_id_is_a_usage_error(cli):
    assert cli("entitlements", "grant", "not-a-number", "premium").exit_code == 2


def test_status_masks_secrets_and_reports_health(cli, worker):
    secret_env = {
        "TELEGRAM_BOT_TOKEN": "123456:AAHsecretsecretsecretsecret",
        "STRIPE_SECRET_KEY": "sk_test_verysecretvalue123",
        "STRIPE_WEBHOOK_SECRET": "whsec_oldsecretvalue,whsec_newsecretvalue",
    }
    result = cli("status", "--json", **secret_env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["database"]["state"] == "ok" and report["broker"]["state"] == "ok"
    assert set(report["broker"]["queues"]) == {"payments", "access", "sessions"}
    assert report["events"] == {"pending": 0, "processed": 0, "failed": 0, "ignored": 0}
    assert report["workers"]["state"] == "ok" and report["workers"]["alive"] == 1
    human = cli("status", **secret_env)
    assert "workers:  1 alive in the last 30 s, last seen" in human.stdout
    for secret in secret_env.values():
        for part in secret.split(","):
            assert part not in result.stdout and part not in human.stdout
    assert "JWT_SECRET_KEY" in human.stdout
    # Piped, the configuration is one setting per line; the retry schedule reads as seconds, not a Python tuple.
    [schedule] = [line for line in human.stdout.splitlines() if line.startswith("WEBHOOK_RETRY_SCHEDULE")]
    assert schedule.split("\t")[1].startswith("5, 60, 300, 1800") and "(" + "5.0" not in schedule


def test_status_exits_1_when_a_broker_is_configured_and_no_worker_is_alive(cli, broker):
    import dramatiq

    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    assert cli("status").exit_code == 0
    worker.stop()
    result = cli("status", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["workers"] == {"state": "none alive", "alive": 0, "within_seconds": 30, "last_seen": None}
    assert "0 alive" in cli("status").stdout


def test_status_in_embedded_mode_does_not_report_its_own_in_memory_broker(cli, env):
    result = cli("status", "--json", BROKER_URL="", REDIS_URL="")
    report = json.loads(result.stdout)
    assert report["broker"] == {"state": "embedded", "kind": "the worker runs inside `entitle run`"}
    assert report["workers"]["state"] == "none (embedded)"
    assert result.exit_code == 0


def test_db_status_lists_applied_migrations(cli):
    rows = json.loads(cli("db", "status", "--json").stdout)
    assert rows[0] == {"version": 1, "name": "initial schema", "applied": True}
    assert rows[1] == {"version": 2, "name": "event lease", "applied": True}
    assert rows[2] == {"version": 3, "name": "ledger index by payment", "applied": True}
    assert "up to date" in cli("db", "migrate").stdout


def test_metrics_reads_a_running_service(cli, live_server):
    from simulate.redis_server import free_port

    cli("entitlements", "grant", "888", "premium")
    url = f"{live_server}/metrics"
    rows = json.loads(cli("metrics", "--url", url, "--json").stdout)
    granted = [r for r in rows if r["name"] == "entitlements_granted_total" and r["labels"] == {"host": socket.gethostname(), "source": "manual"}]
    assert granted and granted[0]["value"] >= 1
    assert [r["value"] for r in rows if r["name"] == "health_check_up" and r["labels"] == {"check": "database"}] == [1]
    table = cli("metrics", "--url", url)
    assert table.exit_code == 0 and "entitlements_granted_total" in table.stdout
    down = cli("metrics", "--url", f"http://127.0.0.1:{free_port()}/metrics")
    assert down.exit_code == 1 and "cannot reach" in down.stderr and "--url given" in " ".join(down.stderr.split())


def test_worker_needs_a_broker(cli):
    result = cli("worker", BROKER_URL="", REDIS_URL="")
    assert result.exit_code == 1 and "BROKER_URL" in result.stderr


def test_revoking_nothing_exits_1_with_json_too(cli):
    cli("entitlements", "grant", "901", "supporter")
    result = cli("entitlements", "revoke", "901", "premium", "--json")
    assert result.exit_code == 1 and result.stdout.strip() == "[]"


def test_metrics_from_a_page_that_is_not_prometheus_text_exits_1(cli):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<!doctype html><p>a login page, not metrics</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = cli("metrics", "--url", f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
    assert result.exit_code == 1 and "did not answer with Prometheus text" in result.stderr
