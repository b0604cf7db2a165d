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
