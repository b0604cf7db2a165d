"""Metrics aggregate across processes on one host (gunicorn workers and Dramatiq workers)."""
from __future__ import annotations

import os
import socket
import signal
import subprocess
import sys
import time

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT
from simulate.redis_server import free_port
from tests.support import processes
from tests.support.waiting import wait_for

BUMP = "from app import metrics; metrics.entitlements_granted.labels(source='telegram').inc({n}); metrics.events_processed.labels(provider='stripe', result='processed').inc()"
READ = "import sys; from app import host_metrics, metrics; sys.stdout.write(host_metrics.exposition('host-a')[0].decode())"


def run(code: str, env: dict) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout


def test_counters_from_separate_processes_of_one_host_add_up_under_its_host_label(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    run(BUMP.format(n=2), env)
    run(BUMP.format(n=3), env)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(run(READ, env))
        for s in family.samples
    }
    assert samples[("entitlements_granted_total", (("host", "host-a"), ("source", "telegram")))] == 5
    assert samples[("events_processed_total", (("host", "host-a"), ("provider", "stripe"), ("result", "processed")))] == 2


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_dramatiq_worker_opens_no_port_and_its_metrics_reach_the_metrics_route(tmp_path, env, client, broker, monkeypatch):
    directory = tmp_path / "metrics"
    port = free_port()  # where Dramatiq's own exporter would listen (its default is 0.0.0.0:9191)
    worker_env = {**os.environ, **env, "PROMETHEUS_MULTIPROC_DIR": str(directory),
                  "dramatiq_prom_host": "127.0.0.1", "dramatiq_prom_port": str(port)}
    worker = processes.start([sys.executable, "-m", "dramatiq", "workers.main", "-p", "1", "-t", "1"], cwd=ROOT, env=worker_env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stop_signal=signal.SIGTERM)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    try:
        broker.get_actor("process_event").send(987654321)  # no such row: dropped, but counted by Dramatiq
        text = wait_for(lambda: (t := client.get("/metrics").get_data(as_text=True)) and "dramatiq_messages_total{" in t and t,
                        timeout=30, message="dramatiq metrics in /metrics")
        for _ in range(20):  # Dramatiq starts its exporter right after the worker boots
            assert not listening(port)
            time.sleep(0.1)
    finally:
        processes.end(worker)
    assert 'actor_name="process_event"' in text
