"""`entitle run` as a newcomer starts it: a real process, SQLite, embedded worker."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import REDIS_URL, ROOT
from simulate.redis_server import free_port
from tests.support import processes
from tests.support.waiting import wait_for


def clean_env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("BROKER_URL", "REDIS_URL", "DATABASE_URL", "ENTITLE_ENV")}
    env.update({"DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}", "PLANS_FILE": str(ROOT / "plans.toml")}, **extra)
    return env


def entitle(*args) -> list[str]:
    return [sys.executable, "-c", "from cli import main; main()", *args]


def test_run_serves_healthz_on_sqlite_with_the_embedded_worker(tmp_path):
    port = free_port()
    proc = processes.start(entitle("run", "--port", str(port)), cwd=tmp_path, env=clean_env(tmp_path),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def healthy():
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stdout.read()
                return None

        response = wait_for(healthy, timeout=30, message="entitle run to answer")
        assert response.status_code == 200
        assert response.json() == {"database": "ok", "broker": "ok", "workers": "ok"}
    finally:
        out = processes.end(proc)
    assert f"http://127.0.0.1:{port}" in out
    assert "embedded" in out and "run.db" in out
    assert (tmp_path / "run.db").exists()


def test_production_without_a_jwt_secret_refuses_to_start(tmp_path):
    env = clean_env(tmp_path, ENTITLE_ENV="production", TELEGRAM_BOT_TOKEN="123:AAsupersecrettokenvalue")
    env.pop("JWT_SECRET_KEY", None)
    started = time.monotonic()
    proc = subprocess.run(entitle("run", "--port", str(free_port())), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "JWT_SECRET_KEY" in proc.stderr and "TELEGRAM_WEBHOOK_SECRET" in proc.stderr
    assert "AAsupersecrettokenvalue" not in proc.stdout + proc.stderr
    assert time.monotonic() - started < 60


def test_a_production_worker_without_secrets_refuses_to_start(tmp_path):
    env = clean_env(tmp_path, ENTITLE_ENV="production", REDIS_URL=REDIS_URL)
    env.pop("JWT_SECRET_KEY", None)
    proc = subprocess.run([sys.executable, "-m", "dramatiq", "workers.main", "-p", "1", "-t", "1"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "JWT_SECRET_KEY" in proc.stderr
    via_cli = subprocess.run(entitle("worker"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert via_cli.returncode == 1 and "JWT_SECRET_KEY" in via_cli.stderr


METRICS_TOKEN = "metrics-token-for-the-cli-tests-0123456789"


@pytest.fixture
def env(env):
    return {**env, "METRICS_TOKEN": METRICS_TOKEN}


def test_metrics_sends_the_token_and_shows_the_table(cli, live_server):
    cli("entitlements", "grant", "888", "premium")
    url = f"{live_server}/metrics"
    assert requests.get(url, timeout=5).status_code == 401

    shown = cli("metrics", "--url", url)

    assert shown.exit_code == 0, shown.stderr
    assert "entitlements_granted_total" in shown.stdout and METRICS_TOKEN not in shown.stdout
    refused = cli("metrics", "--url", url, METRICS_TOKEN="another-token-0123456789")
    assert refused.exit_code == 1 and "401" in refused.stderr and "METRICS_TOKEN" in refused.stderr


SECRET_VARIABLES = ("JWT_SECRET_KEY", "TELEGRAM_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET", "METRICS_TOKEN")


def documented_example_secrets() -> list[str]:
    """Every value the README, plans.toml and any .env example assign to a secret variable."""
    texts = [p.read_text() for p in (ROOT / "README.md", ROOT / "plans.toml", *ROOT.glob(".env*"), *ROOT.glob("*.env*"))]
    pattern = re.compile(rf"\b(?:{'|'.join(SECRET_VARIABLES)})=([^\s`'\"]+)")
    return sorted({value for text in texts for found in pattern.findall(text) for value in found.split(",")})


SHORT_SECRET = "fifteen-chars-x"


def test_there_are_examples_and_a_short_secret_to_refuse():
    assert {"sandbox-telegram-webhook-secret", "whsec_sandbox_stripe_webhook_secret_local_only", "whsec_new"} <= set(documented_example_secrets())
    assert len(SHORT_SECRET) == 15


@pytest.mark.parametrize("value", [*documented_example_secrets(), SHORT_SECRET])
def test_production_refuses_example_or_short_secrets_naming_each_variable(tmp_path, value):
    env = clean_env(tmp_path, ENTITLE_ENV="production", TELEGRAM_BOT_TOKEN="123:AAsupersecrettokenvalue",
                    STRIPE_SECRET_KEY="sk_test_51Hsupersecretstripekeyvalue", **{name: value for name in SECRET_VARIABLES})

    proc = subprocess.run(entitle("run", "--port", str(free_port())), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    assert proc.returncode == 1
    for name in SECRET_VARIABLES:
        assert name in proc.stderr
    assert value not in proc.stdout + proc.stderr


def test_run_serves_an_edited_plans_file_without_a_restart(tmp_path):
    plans_file = tmp_path / "plans.toml"
    plans_file.write_text((ROOT / "plans.toml").read_text())
    port = free_port()
    proc = processes.start(entitle("run", "--port", str(port)), cwd=tmp_path, env=clean_env(tmp_path, PLANS_FILE=str(plans_file), PYTHONPATH=str(ROOT)),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def plan_keys():
        try:
            response = requests.get(f"http://127.0.0.1:{port}/api/plans", timeout=1)
        except requests.ConnectionError:
            assert proc.poll() is None, proc.stdout.read()
            return None
        return {plan["key"] for plan in response.json()["plans"]}

    try:
        # Given `entitle run` serving the catalogue as it was at start
        before = wait_for(plan_keys, timeout=30, message="entitle run to answer")
        assert "gold" not in before

        # When an operator adds a plan to the file while it serves
        plans_file.write_text(plans_file.read_text() + '\n[plans.gold]\ntitle = "Gold"\nentitlement = "gold"\nstars = 500\n')
        stat = os.stat(plans_file)
        os.utime(plans_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000_000))

        # Then the next request sees it, with no restart
        after = wait_for(lambda: (keys := plan_keys()) and "gold" in keys and keys, timeout=10, message="the new plan served")
        assert after == before | {"gold"}
    finally:
        processes.end(proc)
