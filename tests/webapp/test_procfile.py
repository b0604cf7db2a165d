"""The Procfile's `release:` and `web:` lines work as a platform would run them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import requests

from tests.conftest import ROOT
from tests.support.redis_server import free_port
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
    web = subprocess.Popen(["bash", "-c", commands["web"]], cwd=ROOT, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def healthz():
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except requests.RequestException:
                assert web.poll() is None, "gunicorn exited"
                return None

        assert wait_for(healthz, timeout=30, message="gunicorn to answer").json() == {"database": "ok", "broker": "ok"}
        # An operator's grant in another process shows in the web process's /metrics.
        subprocess.run(["bash", "-c", "entitle entitlements grant 4242 premium"], cwd=ROOT, env=run_env, check=True, capture_output=True)
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
        assert metrics.status_code == 200
        assert 'entitlements_granted_total{source="manual"} 1.0' in metrics.text
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(20)
