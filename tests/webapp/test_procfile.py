"""The Procfile's `release:` and `web:` lines work as a platform would run them."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import requests

from tests.conftest import ROOT
from simulate.redis_server import free_port
from tests.support import processes
from tests.support.waiting import wait_for


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_release_then_web_serve_healthz_and_metrics_under_gunicorn(env, tmp_path):
    port = free_port()
    run_env = {**os.environ, **env, "PORT": str(port), "WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    run_env["PATH"] = f"{os.path.dirname(sys.executable)}:{run_env['PATH']}"  # the venv's entitle, gunicorn, dramatiq
    commands = procfile()
    assert set(commands) == {"release", "web", "worker"}
    release = subprocess.run(["bash", "-c", commands["release"]], cwd=ROOT, env=run_env, capture_output=True, text=True)
    assert release.returncode == 0, release.stderr
    web = processes.start(["bash", "-c", commands["web"]], cwd=ROOT, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          stop_signal=signal.SIGTERM)
    try:
        def healthz():
            try:
                return [requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)]  # a 503 Response is falsy
            except requests.RequestException:
                assert web.poll() is None, "gunicorn exited"
                return None

        # Web alone: nothing processes what it records, and /healthz says so.
        [health] = wait_for(healthz, timeout=30, message="gunicorn to answer")
        assert health.status_code == 503
        assert {k: v for k, v in health.json().items() if k != "error"} == {
            "database": "ok", "broker": "ok", "workers": "down: no worker seen in the last 30 s"}
        # An operator's command is not a process /metrics aggregates: it leaves no file behind.
        before = sorted(os.listdir(run_env["PROMETHEUS_MULTIPROC_DIR"]))
        subprocess.run(["bash", "-c", "entitle entitlements grant 4242 premium"], cwd=ROOT, env=run_env, check=True, capture_output=True)
        assert sorted(os.listdir(run_env["PROMETHEUS_MULTIPROC_DIR"])) == before
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
        assert metrics.status_code == 200
        assert 'miniapp_sessions_total{host="' in metrics.text
    finally:
        processes.end(web)


def test_web_start_clears_metrics_files_of_processes_that_are_gone(env, tmp_path):
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999999.db").write_bytes(b"left over from an earlier run")
    run_env = {**os.environ, **env, "PORT": str(port), "WEB_CONCURRENCY": "1", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    run_env["PATH"] = f"{os.path.dirname(sys.executable)}:{run_env['PATH']}"
    subprocess.run(["bash", "-c", procfile()["release"]], cwd=ROOT, env=run_env, check=True, capture_output=True)
    web = processes.start(["bash", "-c", procfile()["web"]], cwd=ROOT, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          stop_signal=signal.SIGTERM)
    try:
        wait_for(lambda: _get(f"http://127.0.0.1:{port}/healthz", web), timeout=30, message="gunicorn to answer")
        assert not (metrics_dir / "counter_999999999.db").exists()
    finally:
        processes.end(web)


def _get(url: str, proc: subprocess.Popen):
    try:
        return [requests.get(url, timeout=2)]  # a list, since a 503 Response is falsy
    except requests.RequestException:
        assert proc.poll() is None, "the process exited"
        return None


def test_honcho_runs_the_documented_local_recipe_and_a_payment_is_granted(env, database, telegram_api, tmp_path):
    """`honcho start release && honcho start web worker`, as the README says, with a real webhook and worker."""
    from app.telegram.payments import encode_payload
    from simulate.telegram_updates import successful_payment_update

    port = free_port()
    secret = "local-webhook-secret-0123456789"
    run_env = {
        **os.environ, **env, "PORT": str(port), "WEB_CONCURRENCY": "1", "WORKER_PROCESSES": "1", "WORKER_THREADS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), "TELEGRAM_WEBHOOK_SECRET": secret,
        "TELEGRAM_BOT_TOKEN": "123456:local-test-token-abcdefghij", "TELEGRAM_API_URL": telegram_api.url,
    }
    run_env["PATH"] = f"{os.path.dirname(sys.executable)}:{run_env['PATH']}"
    release = subprocess.run(["honcho", "start", "release"], cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=120)
    assert release.returncode == 0, release.stdout + release.stderr
    stack = processes.start(["honcho", "start", "web", "worker"], cwd=ROOT, env=run_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stop_signal=signal.SIGTERM)
    try:
        def healthy():
            answered = _get(f"http://127.0.0.1:{port}/healthz", stack)
            return answered and answered[0].status_code == 200 and answered[0]

        assert wait_for(healthy, timeout=30, message="web and worker to be up").json() == {"database": "ok", "broker": "ok", "workers": "ok"}
        update = successful_payment_update(777001, encode_payload("premium_week", 777001), 75, "honcho-charge-1")
        answer = requests.post(f"http://127.0.0.1:{port}/webhooks/telegram", json=update, timeout=5,
                               headers={"X-Telegram-Bot-Api-Secret-Token": secret})
        assert answer.status_code == 200, answer.text

        def granted():
            listing = subprocess.run(["entitle", "entitlements", "list", "--user", "777001", "--json"], cwd=ROOT,
                                     env=run_env, capture_output=True, text=True)
            return [row for row in json.loads(listing.stdout or "[]") if row["active"]]

        rows = wait_for(granted, timeout=30, message="the worker to grant")
        assert [(r["entitlement"], r["source"]) for r in rows] == [("premium", "telegram")]
        wait_for(lambda: telegram_api.calls_to("sendMessage"), timeout=15, message="the confirmation")
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        assert f'entitlements_granted_total{{host="{socket.gethostname()}",source="telegram"}} 1.0' in metrics  # counted by the worker
    finally:
        processes.end(stack)
