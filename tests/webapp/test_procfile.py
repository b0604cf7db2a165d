"""The Procfile's `release:` and `web:` lines work as a platform would run them."""
from __future__ import annotations

import json
import os
import re
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


def readme_honcho_recipe() -> str:
    """The README's honcho block, as a newcomer copies it."""
    readme = (ROOT / "README.md").read_text()
    at = readme.index("The whole Procfile on one machine")
    return re.search(r"```sh\n(.*?)```", readme[at:], flags=re.S)[1]


def test_honcho_runs_the_readme_recipe_on_port_and_links_and_payments_agree(env, database, telegram_api, tmp_path):
    """The README's honcho recipe serves on PORT, the worker's links use the same address, and `simulate` finds it."""
    port = free_port()
    secret = "local-webhook-secret-0123456789"
    shell_env = {k: v for k, v in os.environ.items() if not k.startswith(("PUBLIC_URL", "PORT"))}
    shell_env.update({
        **env, "PORT": str(port), "WEB_CONCURRENCY": "1", "WORKER_PROCESSES": "1", "WORKER_THREADS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), "TELEGRAM_WEBHOOK_SECRET": secret,
        "TELEGRAM_BOT_TOKEN": "123456:local-test-token-abcdefghij", "TELEGRAM_API_URL": telegram_api.url,
    })
    shell_env["PATH"] = f"{os.path.dirname(sys.executable)}:{shell_env['PATH']}"
    stack = processes.start(["bash", "-e", "-c", readme_honcho_recipe()], cwd=ROOT, env=shell_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stop_signal=signal.SIGTERM)
    try:
        def healthy():
            answered = _get(f"http://127.0.0.1:{port}/healthz", stack)
            return answered and answered[0].status_code == 200 and answered[0]

        assert wait_for(healthy, timeout=60, message="web and worker to be up").json() == {"database": "ok", "broker": "ok", "workers": "ok"}

        # A second shell, with the same PORT and no PUBLIC_URL, pays through the CLI.
        paid = subprocess.run(["entitle", "simulate", "telegram", "payment", "--user-id", "777001", "--plan", "premium_week", "--json"],
                              cwd=ROOT, env=shell_env, capture_output=True, text=True, timeout=60)
        assert paid.returncode == 0, paid.stdout + paid.stderr

        def granted():
            listing = subprocess.run(["entitle", "entitlements", "list", "--user", "777001", "--json"], cwd=ROOT,
                                     env=shell_env, capture_output=True, text=True)
            return [row for row in json.loads(listing.stdout or "[]") if row["active"]]

        rows = wait_for(granted, timeout=30, message="the worker to grant")
        assert [(r["entitlement"], r["source"]) for r in rows] == [("premium", "telegram")]

        # The worker answers /start with the Mini App's address: where web listens, not the worker's own PORT.
        answer = requests.post(f"http://127.0.0.1:{port}/webhooks/telegram", json=START, timeout=5,
                               headers={"X-Telegram-Bot-Api-Secret-Token": secret})
        assert answer.status_code == 200, answer.text
        [welcome] = wait_for(lambda: [c for c in telegram_api.calls_to("sendMessage") if "/app" in str(c.params.get("text"))],
                             timeout=30, message="the answer to /start")
        assert f"http://127.0.0.1:{port}/app" in welcome.params["text"]
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        assert f'entitlements_granted_total{{host="{socket.gethostname()}",source="telegram"}} 1.0' in metrics  # counted by the worker
    finally:
        processes.end(stack)


START = {"update_id": 91, "message": {"message_id": 5, "date": 1700000000, "chat": {"id": 777001, "type": "private"},
                                      "from": {"id": 777001, "is_bot": False, "first_name": "Ann"}, "text": "/start"}}
