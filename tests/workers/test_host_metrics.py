"""Every process of every host reaches `/metrics` through any web process, labelled with its host.

Each "host" here has its own metrics directory and host name (`DYNO`) and runs a web process
(`entitle run` beside Redis workers) and an `entitle worker`; the hosts share only Redis and
the database, as Heroku dynos do.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from simulate.redis_server import free_port
from simulate.telegram_updates import successful_payment_update
from tests.conftest import ROOT
from tests.support import processes
from tests.support.waiting import wait_for

SECRET = "host-metrics-webhook-secret-0123"
TTL = 2  # METRICS_HOST_TTL: seconds a stopped host's samples outlive it


def entitle(*args: str) -> list[str]:
    return [os.path.join(os.path.dirname(sys.executable), "entitle"), *args]


class Host:
    """One host: its own metrics directory and name, a web process on a free port and a worker."""

    def __init__(self, name: str, base_env: dict, tmp_path, *, worker: bool = True):
        self.name = name
        self.port = free_port()
        self.env = {**os.environ, **base_env, "DYNO": name, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / name), "PORT": str(self.port)}
        self.env.pop("REDIS_URL", None)  # the broker's Redis carries the metrics
        self.processes: dict[str, subprocess.Popen] = {}
        self.with_worker = worker

    def start(self) -> "Host":
        if self.with_worker:
            self.processes["worker"] = processes.start(entitle("worker", "-p", "1", "-t", "2"), cwd=ROOT, env=self.env,
                                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes["web"] = processes.start(entitle("run", "--port", str(self.port)), cwd=ROOT, env=self.env,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.answering, timeout=60, message=f"{self.name}'s web process")
        return self

    def answering(self) -> bool:
        assert self.processes["web"].poll() is None, f"{self.name}'s web process exited"
        try:
            return requests.get(self.url("/healthz"), timeout=2).status_code in (200, 503)
        except requests.RequestException:
            return False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def samples(self) -> list:
        text = requests.get(self.url("/metrics"), timeout=5).text
        return [s for family in text_string_to_metric_families(text) for s in family.samples]

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the one sample of `/metrics` with this name and these labels, None when absent."""
        found = [s.value for s in self.samples() if s.name == name and s.labels == labels]
        assert len(found) <= 1, f"{name}{labels} served {len(found)} times"
        return found[0] if found else None

    def stop(self, which: str | None = None) -> None:
        for role in [which] if which else list(self.processes):
            process = self.processes.pop(role, None)
            if process is not None:
                processes.end(process)


@pytest.fixture
def hosts():
    started: list[Host] = []
    yield started
    for host in started:
        host.stop()


@pytest.fixture
def base_env(env, database, telegram_api):
    """The deploy's settings: one database, one Redis (a namespace of this test's own), the Bot API stand-in."""
    return {
        **env, "BROKER_NAMESPACE": f"entitle-hosts-{uuid.uuid4().hex[:8]}", "METRICS_HOST_TTL": str(TTL),
        "TELEGRAM_WEBHOOK_SECRET": SECRET, "TELEGRAM_BOT_TOKEN": "123456:host-metrics-token-abcdefghij",
        "TELEGRAM_API_URL": telegram_api.url,
        # On a busy machine a payment may take seconds: the sweeper must not run it again meanwhile.
        "SWEEP_AFTER": "30", "SWEEP_LOST_AFTER": "60",
    }


def pay(host: Host, user: int, charge: str) -> None:
    from app.telegram.payments import encode_payload

    update = successful_payment_update(user, encode_payload("premium_week", user), 75, charge)
    answer = requests.post(host.url("/webhooks/telegram"), json=update, timeout=10, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert answer.status_code == 200, answer.text


def test_a_payment_on_host_b_shows_in_host_a_metrics_labelled_b_and_a_stopped_host_drops_out(base_env, tmp_path, hosts):
    a = Host("host-a", base_env, tmp_path)
    b = Host("host-b", base_env, tmp_path)
    hosts.extend([a, b])
    a.start()
    b.start()
    # Given both hosts publishing, and only host B's worker left to take work
    wait_for(lambda: a.value("miniapp_sessions_total", host="host-b") is not None, timeout=30, message="host B's samples at host A")
    a.stop("worker")

    # When a payment reaches host A's web process and host B's worker grants it
    pay(a, 880001, "hosts-charge-1")
    processed = {"provider": "telegram", "result": "processed"}
    wait_for(lambda: a.value("entitlements_granted_total", host="host-b", source="telegram") == 1
             and (a.value("events_processed_total", host="host-b", **processed) or 0) >= 1, timeout=30,
             message="host B's grant and processed event in host A's /metrics")

    # Then host A's /metrics shows it labelled B, once, and host B's /metrics agrees (the payment, and what it set off)
    assert a.value("events_processed_total", host="host-a", **processed) in (None, 0)
    assert a.value("webhook_requests_total", host="host-a", provider="telegram", status="200") == 1
    wait_for(lambda: a.value("events_processed_total", host="host-b", **processed)
             == b.value("events_processed_total", host="host-b", **processed), timeout=10, message="both hosts' views to agree")
    assert b.value("entitlements_granted_total", host="host-b", source="telegram") == 1
    # Host A's webhook reaches host B's view with host A's next publish (every quarter of the TTL).
    wait_for(lambda: b.value("webhook_requests_total", host="host-a", provider="telegram", status="200") == 1,
             timeout=TTL, message="host A's webhook in host B's /metrics")
    assert any(s.name.startswith("dramatiq_") and s.labels.get("host") == "host-b" for s in a.samples())

    # When host B stops for good, its series leave host A's /metrics within METRICS_HOST_TTL
    b.stop()
    stopped = time.monotonic()
    wait_for(lambda: not any(s.labels.get("host") == "host-b" for s in a.samples()), timeout=TTL + 5, interval=0.2,
             message="host B's samples to expire")
    assert time.monotonic() - stopped <= TTL + 2  # the bound, plus the time one scrape takes on a busy machine
    assert a.value("webhook_requests_total", host="host-a", provider="telegram", status="200") == 1


def test_entitle_run_beside_a_redis_worker_serves_the_worker_samples(base_env, tmp_path, hosts):
    """`PROMETHEUS_MULTIPROC_DIR=$d BROKER_URL=redis://… entitle worker & entitle run`, then a payment."""
    host = Host("one-host", base_env, tmp_path)
    hosts.append(host)
    host.start()
    pay(host, 880002, "one-host-charge-1")
    wait_for(lambda: host.value("entitlements_granted_total", host="one-host", source="telegram") == 1
             and (host.value("events_processed_total", host="one-host", provider="telegram", result="processed") or 0) >= 1,
             timeout=30, message="the worker's grant and processed event in /metrics")
    text = requests.get(host.url("/metrics"), timeout=5).text
    assert [line for line in text.splitlines() if line.startswith("dramatiq_messages_total{") and 'host="one-host"' in line]
