"""A real Prometheus, configured from the shipped prometheus.yml, scrapes a running entitle and finds a payment."""
from __future__ import annotations

import os
import subprocess
import sys

import requests
import yaml

from simulate.redis_server import free_port
from simulate.telegram_updates import successful_payment_update
from tests.conftest import ROOT
from tests.support.prometheus import PROMETHEUS_DIR, tool
from tests.support import processes
from tests.support.telegram import SECRET, telegram_env
from tests.support.waiting import wait_for

TOKEN = "prometheus-scrape-metrics-token-0123456789"


def prometheus_config(tmp_path, target: str) -> str:
    """The shipped prometheus.yml pointed at `target` over HTTP, scraping every second, with the token inline."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    [job] = config["scrape_configs"]
    job.update(scheme="http", authorization={"credentials": TOKEN}, static_configs=[{"targets": [target]}])
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def query(prometheus: str, expr: str) -> list:
    answer = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5)
    answer.raise_for_status()
    return answer.json()["data"]["result"]


def test_prometheus_scrapes_a_payment_counter_and_loads_the_alert_rules(env, database, telegram_api, tmp_path):
    from app.telegram.payments import encode_payload

    web_port, prometheus_port = free_port(), free_port()
    service_env = {**os.environ, **telegram_env(dict(env), telegram_api), "METRICS_TOKEN": TOKEN, "PORT": str(web_port),
                   "DYNO": "web.1"}
    for name in ("BROKER_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"):
        service_env.pop(name, None)  # `entitle run` with its embedded worker: one process, one host
    entitle = os.path.join(os.path.dirname(sys.executable), "entitle")
    with processes.running([entitle, "run", "--port", str(web_port)], cwd=tmp_path, env=service_env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        service = f"http://127.0.0.1:{web_port}"
        wait_for(lambda: _answers(f"{service}/healthz"), timeout=60, message="entitle run to answer")
        update = successful_payment_update(990001, encode_payload("premium_week", 990001), 75, "prometheus-charge-1")
        paid = requests.post(f"{service}/webhooks/telegram", json=update, timeout=10, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert paid.status_code == 200, paid.text

        with processes.running(
            [tool("prometheus"), f"--config.file={prometheus_config(tmp_path, f'127.0.0.1:{web_port}')}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prometheus_port}"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stop_signal=15,
        ):
            prometheus = f"http://127.0.0.1:{prometheus_port}"
            found = wait_for(lambda: _quietly(query, prometheus, 'telegram_payments_total{job="entitle",result="paid"}'),
                             timeout=60, interval=0.5, message="Prometheus to scrape the payment counter")
            assert [(r["metric"]["host"], r["value"][1]) for r in found] == [("web.1", "1")]
            revenue = query(prometheus, 'telegram_payment_value_total{currency="XTR"}')
            assert [r["value"][1] for r in revenue] == ["75"]
            assert [r["value"][1] for r in query(prometheus, 'up{job="entitle"}')] == ["1"]  # the token was accepted
            groups = requests.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
            loaded = {rule["name"] for group in groups for rule in group["rules"]}
            shipped = {rule["alert"] for group in yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
                       for rule in group["rules"]}
            assert loaded == shipped


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code in (200, 503)
    except requests.RequestException:
        return False


def _quietly(read, *args):
    try:
        return read(*args)
    except requests.RequestException:
        return None
