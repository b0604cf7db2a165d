"""`entitle metrics`: a running service's metrics as a table."""
from __future__ import annotations

from typing import Optional
from urllib.parse import urlsplit, urlunsplit

import requests
import typer
from prometheus_client.parser import text_string_to_metric_families

from cli import context
from cli.output import console, fail, print_json, table

PROJECT_PREFIXES = (
    "telegram_", "miniapp_", "stripe_", "webhook_", "events_", "event_", "entitlements_", "dramatiq_",
    "health_", "queue_", "inbox_", "workers_",
)


class MetricsRefused(Exception):
    """The endpoint answered 401 or 403: METRICS_TOKEN is missing or wrong."""


def read_metrics(url: str, token: str | None = None) -> list[dict]:
    """The project's samples from a Prometheus text endpoint, sending `token` as a Bearer token when given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(url, headers=headers, timeout=10)
    if response.status_code in (401, 403):
        raise MetricsRefused(str(response.status_code))
    response.raise_for_status()
    samples = []
    for family in text_string_to_metric_families(response.text):
        if not family.name.startswith(PROJECT_PREFIXES):
            continue
        for sample in family.samples:
            if sample.name.endswith(("_created", "_bucket")):
                continue
            samples.append({"name": sample.name, "labels": dict(sample.labels), "value": sample.value})
    return samples


def metrics_url(address: str) -> str:
    """The /metrics URL of a service given by its base address or by that URL itself."""
    parts = urlsplit(address.strip())
    if parts.path.rstrip("/").endswith("/metrics"):
        return address.strip()
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/metrics"))


def metrics(
    url: Optional[str] = typer.Option(None, "--url", help="The service's address or its /metrics URL (default: PUBLIC_URL)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show the service's own metrics."""
    config = context.settings()
    url_given = bool(url)
    url = metrics_url(context.service_url(url))
    try:
        samples = read_metrics(url, config.metrics_token)
    except MetricsRefused as exc:
        hint = "METRICS_TOKEN is wrong" if config.metrics_token else "set METRICS_TOKEN to the service's token"
        fail(f"{url} answered {exc}: {hint}")
    except requests.ConnectionError as exc:
        context.unreachable(url, exc, url_given)
    except requests.RequestException as exc:
        fail(f"could not read {url}: {type(exc).__name__}")
    except ValueError:
        fail(f"{url} did not answer with Prometheus text")
    if as_json:
        print_json(samples)
        return
    rows = [
        (s["name"], ", ".join(f"{k}={v}" for k, v in sorted(s["labels"].items())), f"{s['value']:g}")
        for s in sorted(samples, key=lambda s: (s["name"], sorted(s["labels"].items())))
    ]
    if not rows:
        console.print(f"no entitle metrics at {url} yet")
        return
    console.print(table(f"Metrics ({url})", ["metric", "labels", "value"], rows))
