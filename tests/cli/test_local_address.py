"""Every command that talks to the local service finds it at PUBLIC_URL, which follows PORT."""
from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest

from tests.support.telegram import telegram_env, wait_until_done


@pytest.fixture
def env(env, telegram_api):
    """The suite's environment plus the Telegram settings (tests/support/telegram.py)."""
    return telegram_env(env, telegram_api)


@pytest.mark.parametrize("form", ["base", "base/", "metrics"])
def test_metrics_takes_the_service_address_or_its_metrics_url(cli, live_server, form):
    url = {"base": live_server, "base/": live_server + "/", "metrics": live_server + "/metrics"}[form]
    result = cli("metrics", "--url", url, "--json")
    assert result.exit_code == 0, result.output
    assert any(sample["name"] == "miniapp_sessions_total" for sample in json.loads(result.stdout))


def test_simulate_and_metrics_reach_the_service_on_port_without_a_url(cli, live_server, worker, telegram_api):
    local = {"PORT": str(urlsplit(live_server).port), "PUBLIC_URL": ""}

    sent = cli("simulate", "telegram", "payment", "--user-id", "42", "--plan", "premium_week", "--json", **local)
    assert sent.exit_code == 0, sent.output
    wait_until_done(json.loads(sent.stdout)["charge_id"])

    shown = cli("metrics", "--json", **local)
    assert shown.exit_code == 0, shown.output
    assert any(s["name"] == "telegram_payments_total" and s["labels"] == {"host": socket.gethostname(), "result": "paid"} for s in json.loads(shown.stdout))


def nobody_listens() -> str:
    from simulate.redis_server import free_port

    return str(free_port())


@pytest.mark.parametrize("command", [
    ("simulate", "telegram", "payment", "--user-id", "42", "--plan", "premium_week"),
    ("simulate", "stripe", "checkout", "--user-id", "42", "--plan", "premium_week"),
    ("metrics",),
], ids=["simulate telegram", "simulate stripe", "metrics"])
def test_a_command_that_cannot_reach_the_service_names_the_address_and_the_setting_that_chose_it(cli, command):
    port = nobody_listens()
    stripe = {"STRIPE_WEBHOOK_SECRET": "whsec_local_test_secret_0123456789"}

    by_port = cli(*command, PORT=port, PUBLIC_URL="", **stripe)
    by_public_url = cli(*command, PUBLIC_URL=f"http://127.0.0.1:{port}", PORT="9", **stripe)
    by_option = cli(*command, "--url", f"http://127.0.0.1:{port}", PUBLIC_URL="http://127.0.0.1:9", **stripe)

    for result in (by_port, by_public_url, by_option):
        said = " ".join(result.stderr.split())
        assert result.exit_code == 1, result.output
        assert f"cannot reach http://127.0.0.1:{port}/" in said and "ConnectionError" in said
        assert "Traceback" not in result.output
    assert f"comes from PORT={port}" in " ".join(by_port.stderr.split())
    assert "comes from PUBLIC_URL" in " ".join(by_public_url.stderr.split())
    assert "the --url given" in " ".join(by_option.stderr.split())


def test_with_neither_public_url_nor_port_the_message_says_the_default_port_was_tried(monkeypatch, tmp_path):
    from cli.context import where_the_address_comes_from

    monkeypatch.delenv("PUBLIC_URL", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here

    said = where_the_address_comes_from(url_given=False)

    assert "neither PUBLIC_URL nor PORT is set" in said and "8000" in said
