"""An oversized request header is 431 with the JSON error shape, from the app behind a real gunicorn as well."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import requests

from app.models import Event
from app.telegram.payments import encode_payload
from simulate.redis_server import free_port
from simulate.telegram_updates import successful_payment_update
from tests.conftest import ROOT
from tests.support.telegram import HEADERS as TELEGRAM_HEADERS
from tests.support.telegram import SECRET as TELEGRAM_SECRET
from tests.support.telegram import TOKEN as BOT_TOKEN
from tests.support import processes
from tests.support.waiting import wait_for
from tests.webapp.test_procfile import procfile

SIXTEEN_KIB = "a" * 16 * 1024


@pytest.fixture
def env(env, telegram_api):
    """Telegram configured, so a webhook would be recorded if it got through."""
    env.update(TELEGRAM_BOT_TOKEN=BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET=TELEGRAM_SECRET, TELEGRAM_API_URL=telegram_api.url)
    return env


@pytest.fixture
def gunicorn(env, database, tmp_path):
    """The Procfile's `web:` line (gunicorn with gunicorn.conf.py) on a free port; its base URL."""
    port = free_port()
    run_env = {**os.environ, **env, "PORT": str(port), "WEB_CONCURRENCY": "1", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    run_env["PATH"] = f"{os.path.dirname(sys.executable)}:{run_env['PATH']}"
    web = processes.start(["bash", "-c", procfile()["web"]], cwd=ROOT, env=run_env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, stop_signal=signal.SIGTERM)
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return [requests.get(url + "/openapi.json", timeout=2)]
        except requests.RequestException:
            assert web.poll() is None, "gunicorn exited"
            return None

    try:
        wait_for(up, timeout=30, message="gunicorn to answer")
        yield url
    finally:
        processes.end(web)


def test_a_16_kib_header_is_431_json_under_gunicorn_and_nothing_is_recorded(gunicorn):
    update = successful_payment_update(4301, encode_payload("premium_week", 4301), 75, "header-charge-1")
    answer = requests.post(gunicorn + "/webhooks/telegram", json=update, timeout=10,
                           headers={**TELEGRAM_HEADERS, "X-Padding": SIXTEEN_KIB})

    assert answer.status_code == 431
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["error"]["code"] == "header_too_large"
    assert "X-Padding" in answer.json()["error"]["message"]
    assert Event.select().count() == 0


@pytest.mark.parametrize("path", ["/healthz", "/api/plans", "/api/v1/users/1", "/no/such/route"])
def test_every_route_answers_an_oversized_header_in_the_json_shape(gunicorn, path):
    answer = requests.get(gunicorn + path, headers={"Authorization": "Bearer " + SIXTEEN_KIB}, timeout=10)

    assert answer.status_code == 431
    assert answer.json()["error"]["code"] == "header_too_large"


def test_a_header_line_within_8190_bytes_is_served(gunicorn):
    # "X-Padding: " is 11 bytes: the line is exactly at the limit.
    answer = requests.get(gunicorn + "/api/plans", headers={"X-Padding": "a" * (8190 - 11)}, timeout=10)

    assert answer.status_code == 200


def test_beyond_64_kib_gunicorn_itself_refuses_the_header(gunicorn):
    """The README's stated edge: gunicorn parses first, so past its limit its own page answers (still a 431)."""
    answer = requests.get(gunicorn + "/api/plans", headers={"X-Padding": "a" * 70 * 1024}, timeout=10)

    assert answer.status_code == 431
    assert answer.headers["Content-Type"].startswith("text/html")


def test_the_development_server_answers_the_same(client):
    answer = client.get("/api/plans", headers={"X-Padding": SIXTEEN_KIB})

    assert answer.status_code == 431 and answer.get_json()["error"]["code"] == "header_too_large"


def test_the_openapi_description_lists_431_on_every_operation(client):
    document = client.get("/openapi.json").get_json()

    operations = [op for ops in document["paths"].values() for op in ops.values() if isinstance(op, dict)]
    assert operations and all(op["responses"]["431"] == {"$ref": "#/components/responses/HeaderTooLarge"} for op in operations)
    assert "header_too_large" in document["components"]["responses"]["HeaderTooLarge"]["description"]
