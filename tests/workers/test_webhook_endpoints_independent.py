"""Outgoing webhooks beside hostile receivers: each attempt ends within WEBHOOK_TIMEOUT, and endpoints never wait on each other.

The hostile receivers (simulate/hostile_receivers.py) misbehave at the wire: one trickles its answer
a byte at a time, one takes the request and never answers, one refuses connections. The healthy
one is the suite's verifying receiver.
"""
from __future__ import annotations

import json
import threading

import pytest

from app import entitlements, users
from app.clock import utcnow
from app.models import WebhookDelivery, WebhookMessage
from app.webhooks import delivery
from simulate.hostile_receivers import HANG, REFUSE, TRICKLE, HostileReceiver
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import FAST_WEBHOOKS, add_endpoint

HOSTILE_MODES = (TRICKLE, HANG, REFUSE)


@pytest.fixture
def webhook_timeout() -> str:
    """WEBHOOK_TIMEOUT; a test parametrizes it to 30 to keep hostile receivers' attempts open while it looks."""
    return "1"


@pytest.fixture
def env(env, webhook_timeout):
    """Fast retries, the timeout above, and deliveries late after 1 s."""
    return {**env, **FAST_WEBHOOKS, "WEBHOOK_TIMEOUT": webhook_timeout, "WEBHOOK_LATE_AFTER": "1"}


@pytest.fixture
def hostile():
    """One receiver of each hostile kind; a trickling one sends a byte every 0.3 s, well within any read timeout."""
    receivers = {mode: HostileReceiver(mode, every=0.3).start() for mode in HOSTILE_MODES}
    yield receivers
    for receiver in receivers.values():
        receiver.stop()


def _add(cli, url: str) -> int:
    result = cli("webhooks", "add", url, "--event", "payment.succeeded", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["id"]


def _pay(first: int, count: int) -> None:
    for n in range(first, first + count):
        entitlements.grant(users.ensure_user(n), "premium", source="stripe", reference=f"pi_ind{n}", days=7)


@pytest.mark.parametrize("mode", [TRICKLE, HANG])
def test_an_attempt_ends_within_the_timeout_whatever_the_receiver_does(cli, settings, hostile, mode):
    _add(cli, hostile[mode].url)
    _pay(9100, 1)

    pump = threading.Thread(target=delivery.pump_once, args=(settings,), daemon=True)
    pump.start()
    pump.join(timeout=15)  # far past the 1 s deadline: a timeout per read alone never ends a trickle

    assert not pump.is_alive(), f"the attempt to the {mode} receiver did not end"
    row = WebhookDelivery.get()
    assert (row.status, row.attempts, row.last_status) == ("pending", 1, None)
    assert row.last_error == "no answer within 1s"
    wait_for(lambda: hostile[mode].holding == 0, message="the connection closed by the sender")


@pytest.mark.parametrize("webhook_timeout", ["30"])
def test_a_healthy_endpoint_gets_every_message_while_hostile_ones_hold_their_attempts(cli, worker, receiver, hostile, env):
    healthy = add_endpoint(cli, receiver, "payment.succeeded")
    for mode in HOSTILE_MODES:
        _add(cli, hostile[mode].url)

    _pay(9200, 20)

    wait_for(lambda: len(receiver.accepted) == 20, timeout=20, message="all 20 messages at the healthy endpoint")
    assert sorted(m["data"]["user"] for m in receiver.accepted) == list(range(9200, 9220))
    assert hostile[TRICKLE].holding >= 1 and hostile[HANG].holding >= 1, "their first attempts are still open"
    delivered = WebhookDelivery.select().where((WebhookDelivery.endpoint == healthy) & (WebhookDelivery.status == "delivered"))
    wait_for(lambda: delivered.count() == 20, message="each recorded delivered")  # the answer comes before the record


def test_a_refused_endpoints_backlog_never_delays_a_healthy_endpoint(cli, receiver, hostile, settings):
    refused = _add(cli, hostile[REFUSE].url)
    healthy = add_endpoint(cli, receiver, "payment.succeeded")
    # 500 deliveries to the refused endpoint, all due and older than anything for the healthy one.
    _pay(9300, 1)
    message = WebhookMessage.get()
    now = utcnow()
    WebhookDelivery.insert_many(
        [{"message": message.id, "endpoint": refused, "user": None, "sequence": None, "next_attempt_at": now,
          "created_at": now, "updated_at": now} for _ in range(500)]
    ).execute()
    _pay(9301, 1)

    delivery.pump_once(settings)

    assert len(receiver.accepted) == 2
    assert WebhookDelivery.select().where((WebhookDelivery.endpoint == healthy) & (WebhookDelivery.status == "delivered")).count() == 2


@pytest.mark.parametrize("webhook_timeout", ["30"])
def test_status_and_metrics_show_failing_and_late_endpoints_and_status_exits_1(cli, worker, receiver, hostile, client):
    healthy = add_endpoint(cli, receiver, "payment.succeeded")
    ids = {mode: _add(cli, hostile[mode].url) for mode in HOSTILE_MODES}
    assert cli("status", "--json").exit_code == 0

    _pay(9400, 6)
    wait_for(lambda: len(receiver.accepted) == 6, message="the healthy endpoint's messages")

    def troubled():
        report = json.loads(cli("status", "--json").stdout)
        states = {row["id"]: row["state"] for row in report["webhooks"]}
        return states if "failing" in states[ids[REFUSE]] and "late" in states[ids[HANG]] else None

    states = wait_for(troubled, timeout=20, message="status to report the refused endpoint failing and the hanging one late")
    assert states[healthy] == "ok"
    assert "late" in states[ids[TRICKLE]]
    result = cli("status")
    assert result.exit_code == 1
    said = " ".join(result.stdout.split())  # as read, whatever the terminal's width
    assert "3 failing or late" in said and hostile[REFUSE].url in said
    assert "last error: ConnectionError: could not reach the endpoint" in said

    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'webhook_endpoint_failing{{endpoint="{ids[REFUSE]}"}} 1.0' in metrics
    assert f'webhook_endpoint_failing{{endpoint="{healthy}"}} 0.0' in metrics
    assert f'webhook_endpoint_oldest_due_seconds{{endpoint="{healthy}"}} 0.0' in metrics
    hanging = next(line for line in metrics.splitlines()
                   if line.startswith(f'webhook_endpoint_oldest_due_seconds{{endpoint="{ids[HANG]}"}}'))
    assert float(hanging.split()[-1]) > 1
