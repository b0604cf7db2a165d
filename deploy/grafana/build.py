"""Builds deploy/grafana/entitle.json with Grafana's own SDK (grafana-foundation-sdk, the test extras).

    python deploy/grafana/build.py     # rewrites entitle.json beside this file

The dashboard reads the Prometheus data source chosen in its `datasource` variable; every
panel sums over the `host` label, so it shows the whole deploy whichever web process was scraped.
"""
from __future__ import annotations

import json
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.builders.common import VizLegendOptions, VizTooltipOptions
from grafana_foundation_sdk.models.common import BigValueGraphMode, LegendDisplayMode, LegendPlacement, SortOrder, TooltipDisplayMode
from grafana_foundation_sdk.models.dashboard import Dashboard as DashboardModel
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUTPUT = Path(__file__).with_name("entitle.json")
SOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")


_ids = iter(range(1, 1000))


def query(expr: str, legend: str = "") -> Dataquery:
    """A Prometheus query on the dashboard's data source (its `refId` is set by the panel)."""
    built = Dataquery().expr(expr).datasource(SOURCE)
    return built.legend_format(legend) if legend else built


def series(title: str, unit: str, *queries: Dataquery, description: str = "") -> Timeseries:
    """A time-series panel of these queries."""
    panel = (
        Timeseries().id(next(_ids)).title(title).unit(unit).datasource(SOURCE).height(8).span(12)
        .legend(VizLegendOptions().display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM).show_legend(True))
        .tooltip(VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
    )
    if description:
        panel = panel.description(description)
    for ref_id, q in zip("ABCDEFGH", queries):
        panel = panel.with_target(q.ref_id(ref_id))
    return panel


def stat(title: str, unit: str, expr: str, description: str) -> Stat:
    """A single-number panel."""
    return (
        Stat().id(next(_ids)).title(title).unit(unit).datasource(SOURCE).height(4).span(6).description(description)
        .graph_mode(BigValueGraphMode.AREA).with_target(query(expr).ref_id("A"))
    )


def row(title: str) -> Row:
    """A row that heads the panels after it."""
    return Row(title).id(next(_ids))


def dashboard() -> Dashboard:
    """The entitle dashboard."""
    return (
        Dashboard("entitle")
        .uid("entitle-overview")
        .description("Payments, webhooks, queues, workers, chat access and the Mini App of an entitle deploy.")
        .tags(["entitle", "payments"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_row(row("At a glance"))
        .with_panel(stat("Workers alive", "none", "max(workers_alive)", "Worker processes with a heartbeat in the last 30 s."))
        .with_panel(stat("Oldest pending event", "s", "max(inbox_oldest_pending_age_seconds)",
                         "How long the oldest event not yet processed has waited."))
        .with_panel(stat("Failed events (24 h)", "none", 'sum(increase(events_processed_total{result="failed"}[24h]))',
                         "Events that failed for good: `entitle events list --status failed`."))
        .with_panel(stat("Health checks passing", "none", "min(health_check_up)", "1 when every check of /healthz passes."))
        .with_row(row("Payments and revenue"))
        .with_panel(series(
            "Payments by provider", "short",
            query('sum(increase(telegram_payments_total{result=~"paid|renewed"}[$__rate_interval]))', "telegram"),
            query('sum(increase(entitlements_granted_total{source="stripe"}[$__rate_interval]))', "stripe"),
        ))
        .with_panel(series(
            "Revenue by provider", "short",
            query("sum by (currency) (increase(telegram_payment_value_total[$__rate_interval]))", "telegram {{currency}} (Stars)"),
            query("sum by (currency) (increase(stripe_payment_value_total[$__rate_interval]))", "stripe {{currency}} (minor units)"),
            description="Stars for Telegram; the currency's minor unit (cents) for Stripe.",
        ))
        .with_panel(series(
            "Webhook answers", "reqps",
            query("sum by (provider, status) (rate(webhook_requests_total[$__rate_interval]))", "{{provider}} {{status}}"),
            description="401 (Telegram) and 400 (Stripe) are refused deliveries: a wrong secret or a forgery.",
        ))
        .with_panel(series(
            "Stripe webhooks by type", "reqps",
            query("sum by (type, result) (rate(stripe_webhooks_total[$__rate_interval]))", "{{type}} {{result}}"),
        ))
        .with_row(row("Queues and events"))
        .with_panel(series(
            "Queue depth", "short",
            query("max by (queue) (queue_messages)", "{{queue}}"),
            query("max by (provider) (inbox_pending_events)", "pending {{provider}} events"),
        ))
        .with_panel(series(
            "Queue age", "s", query("max by (provider) (inbox_oldest_pending_age_seconds)", "{{provider}}"),
            description="Age of the oldest event not yet processed; the alert fires past 5 minutes.",
        ))
        .with_panel(series(
            "Event outcomes", "ops",
            query("sum by (provider, result) (rate(events_processed_total[$__rate_interval]))", "{{provider}} {{result}}"),
        ))
        .with_panel(series(
            "Failed events", "short",
            query('sum by (provider) (increase(events_processed_total{result="failed"}[$__rate_interval]))', "{{provider}}"),
        ))
        .with_panel(series(
            "Event processing time (p95)", "s",
            query("histogram_quantile(0.95, sum by (le, provider) (rate(event_processing_seconds_bucket[$__rate_interval])))",
                  "{{provider}}"),
        ))
        .with_panel(series(
            "Worker heartbeats", "short", query("max(workers_alive)", "workers alive"),
            query("min by (check) (health_check_up)", "{{check}} up"),
        ))
        .with_row(row("Access and delivery"))
        .with_panel(series(
            "Outgoing deliveries", "ops",
            query("sum by (result) (rate(webhook_deliveries_total[$__rate_interval]))", "{{result}}"),
        ))
        .with_panel(series(
            "Chat access", "ops",
            query("sum by (action, result) (rate(chat_access_total[$__rate_interval]))", "{{action}} {{result}}"),
        ))
        .with_panel(series(
            "Reconcile findings", "short",
            query("sum by (provider, kind) (increase(reconcile_found_total[$__rate_interval]))", "{{provider}} {{kind}}"),
            description="Ledger entries the webhook never delivered; reconciliation recorded them.",
        ))
        .with_panel(series(
            "Grants and revocations", "ops",
            query("sum by (source) (rate(entitlements_granted_total[$__rate_interval]))", "granted {{source}}"),
            query("sum by (reason) (rate(entitlements_revoked_total[$__rate_interval]))", "revoked {{reason}}"),
        ))
        .with_row(row("Mini App"))
        .with_panel(series(
            "Mini App sessions", "ops",
            query("sum(rate(miniapp_sessions_total[$__rate_interval]))", "issued"),
            query("sum by (reason) (rate(miniapp_session_failures_total[$__rate_interval]))", "refused: {{reason}}"),
        ))
        .with_panel(series(
            "Mini App sign-in latency", "s",
            query("histogram_quantile(0.5, sum by (le) (rate(miniapp_exchange_latency_seconds_bucket[$__rate_interval])))", "p50"),
            query("histogram_quantile(0.99, sum by (le) (rate(miniapp_exchange_latency_seconds_bucket[$__rate_interval])))", "p99"),
        ))
    )


def in_schema(document: dict) -> dict:
    """`document` read into the SDK's models of Grafana's dashboard schema and written out again.

    Fields the schema does not know are dropped and defaults it gives are filled in, so a dashboard is
    valid when this gives it back unchanged.
    """
    register_default_plugins()  # panels' options and queries read as their plugins' own types
    return json.loads(json.dumps(DashboardModel.from_json(document), cls=JSONEncoder))


def render() -> str:
    """The dashboard as the JSON Grafana imports, with the schema's defaults written out."""
    built = json.loads(json.dumps(dashboard().build(), cls=JSONEncoder))
    return json.dumps(in_schema(built), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")
