"""The shipped Grafana dashboard is what its builder makes, fits Grafana's dashboard schema, and reads served metrics."""
from __future__ import annotations

import copy
import importlib.util
import json
import re

from tests.conftest import ROOT

GRAFANA_DIR = ROOT / "deploy" / "grafana"


def builder():
    spec = importlib.util.spec_from_file_location("grafana_dashboard_build", GRAFANA_DIR / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shipped() -> dict:
    return json.loads((GRAFANA_DIR / "entitle.json").read_text())


def expressions(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_shipped_dashboard_is_what_the_builder_makes():
    assert (GRAFANA_DIR / "entitle.json").read_text() == builder().render(), "run: python deploy/grafana/build.py"


def test_the_dashboard_fits_grafanas_schema_unchanged():
    """Read through grafana-foundation-sdk's models of Grafana's schema: nothing unknown is dropped, no default is missing."""
    dashboard = shipped()
    assert builder().in_schema(copy.deepcopy(dashboard)) == dashboard
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"] == "entitle"
    assert {p["type"] for p in dashboard["panels"]} == {"row", "stat", "timeseries"}


def test_the_schema_check_catches_a_field_grafana_does_not_know():
    broken = shipped()
    broken["panels"][1]["titel"] = "a typo"
    assert builder().in_schema(copy.deepcopy(broken)) != broken


def test_every_panel_reads_metrics_that_are_served_and_the_dashboards_list_is_covered(client):
    served = {line.split()[2] for line in client.get("/metrics").get_data(as_text=True).splitlines() if line.startswith("# TYPE ")}
    metric = r"\b([a-z_]+?(?:_total|_seconds|_up|_alive|_messages|_events))(?:_bucket)?\b"
    read = {name for expr in expressions(shipped()) for name in re.findall(metric, expr)}
    assert read and not read - served, f"not served: {read - served}"
    titles = " / ".join(p["title"] for p in shipped()["panels"]).lower()
    for wanted in ("payments by provider", "revenue by provider", "webhook answers", "queue depth", "queue age", "event outcomes",
                   "failed events", "outgoing deliveries", "chat access", "reconcile findings", "worker heartbeats",
                   "mini app sessions", "latency"):
        assert wanted in titles
