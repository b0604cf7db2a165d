"""The operator's CLI: entitlements, status and migrations, with --json and exit codes."""
from __future__ import annotations

import json

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


def test_status_masks_secrets_and_reports_health(cli):
    secret_env = {
        "TELEGRAM_BOT_TOKEN": "123456:AAHsecretsecretsecretsecret",
        "STRIPE_SECRET_KEY": "sk_test_verysecretvalue123",
        "STRIPE_WEBHOOK_SECRET": "whsec_oldsecretvalue,whsec_newsecretvalue",
    }
    result = cli("status", "--json", **secret_env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["database"]["state"] == "ok" and report["broker"]["state"] == "ok"
    assert set(report["broker"]["queues"]) == {"events", "sessions"}
    assert report["events"] == {"pending": 0, "processed": 0, "failed": 0, "ignored": 0}
    human = cli("status", **secret_env)
    for secret in secret_env.values():
        for part in secret.split(","):
            assert part not in result.stdout and part not in human.stdout
    assert "JWT_SECRET_KEY" in human.stdout


def test_db_status_lists_applied_migrations(cli):
    rows = json.loads(cli("db", "status", "--json").stdout)
    assert rows[0] == {"version": 1, "name": "initial schema", "applied": True}
    assert "up to date" in cli("db", "migrate").stdout
