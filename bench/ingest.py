"""Benchmarks 1 and 4: webhook ingest and session exchange, each beside a bare 200 route of the same app.

Web only (workers stopped, so the CPU goes to gunicorn, PostgreSQL and Redis; queued messages wait
in Redis). Each run measures, back to back, the bare route and then every endpoint for
`BENCH_SECONDS` at concurrency `BENCH_CONCURRENCY`; the ratio is taken within the run.
"""
from __future__ import annotations

import requests

from bench import client, config, payloads
from bench.cpu import CpuMeter, postgres_backends
from bench.report import median, table

SCENARIOS = {
    "telegram webhook": ("/webhooks/telegram", 0.5),
    "stripe webhook": ("/webhooks/stripe", 0.5),
    "session exchange": ("/api/session", 0.4),
}


def available(url: str, path: str) -> bool:
    """True when the app routes `path` (a bare POST is refused, but not with 404)."""
    return requests.post(url + path, data=b"", timeout=10).status_code != 404


def _requests(name: str, count: int, first_user: int) -> list[dict]:
    if name == "telegram webhook":
        return [p.request for p in payloads.payments(count, first_user, ("telegram",))]
    if name == "stripe webhook":
        return [p.request for p in payloads.payments(count, first_user, ("stripe",))]
    return [payloads.session_request(first_user + i % 1000) for i in range(count)]


def _measure(stack, items: list[dict], cycle: bool = False) -> dict:
    f = client.write_requests(items)
    with CpuMeter({"web": stack.web_workers, "postgres": postgres_backends(stack.sql, stack.database)}) as cpu:
        result = client.load(stack.url, f, concurrency=config.CONCURRENCY, duration=config.RUN_SECONDS, cycle=cycle)
    measured = {k: result[k] for k in ("ok_rps", "rps", "p50_ms", "p99_ms", "statuses", "not_json_errors")}
    return measured | {"cpu_ms": cpu.per_unit_ms(result["completed"])}


def run(stack) -> dict:
    """Measure every available endpoint and the bare route `config.RUNS` times; medians and ratios."""
    bare = [{"method": "POST", "path": "/bench/ok", "body": "{}"}]
    present = {name: available(stack.url, path) for name, (path, _) in SCENARIOS.items()}
    per_run: list[dict] = []
    count = int(config.RUN_SECONDS * 1500)
    _measure(stack, bare, cycle=True)  # warm-up
    for i in range(config.RUNS):
        stack.reset()
        row = {"bare": _measure(stack, bare, cycle=True)}
        for n, name in enumerate(SCENARIOS):
            if present[name]:
                row[name] = _measure(stack, _requests(name, count, 2_000_000 + (i * 10 + n) * count))
                row[name]["ratio"] = row[name]["ok_rps"] / row["bare"]["ok_rps"]
                row[name]["cpu_ratio"] = row["bare"]["cpu_ms"]["web"] / row[name]["cpu_ms"]["web"]
        per_run.append(row)
    summary = {"runs": per_run, "present": present, "concurrency": config.CONCURRENCY, "seconds": config.RUN_SECONDS}
    summary["median"] = {
        name: {k: median([r[name][k] for r in per_run]) for k in ("ok_rps", "p50_ms", "p99_ms")}
        | {f"cpu_{kind}_ms": median([r[name]["cpu_ms"][kind] for r in per_run]) for kind in ("web", "postgres")}
        | ({k: median([r[name][k] for r in per_run]) for k in ("ratio", "cpu_ratio")} if name != "bare" else {})
        for name in ["bare", *[n for n in SCENARIOS if present[n]]]
    }
    return summary


def render(summary: dict) -> str:
    """The ingest and session table."""
    m = summary["median"]
    b = m["bare"]
    rows = [["bare `200 OK` (ceiling)", b["ok_rps"], b["p50_ms"], b["p99_ms"], f"{b['cpu_web_ms']:.2f}",
             f"{b['cpu_postgres_ms']:.2f}", "1.00", "1.00", "—", "—"]]
    for name, (path, target) in SCENARIOS.items():
        if name not in m:
            rows.append([f"{name} `{path}`", "not measured", "", "", "", "", "", "", f"≥ {target}", "endpoint not present"])
            continue
        r = m[name]
        met = r["ratio"] >= target and r["cpu_ratio"] >= target
        rows.append([f"{name} `{path}`", r["ok_rps"], r["p50_ms"], r["p99_ms"], f"{r['cpu_web_ms']:.2f}",
                     f"{r['cpu_postgres_ms']:.2f}", f"{r['ratio']:.2f}", f"{r['cpu_ratio']:.2f}", f"≥ {target} (both)",
                     "met" if met else "missed"])
    return table(["endpoint", "accepted req/s", "p50 ms", "p99 ms", "gunicorn CPU ms/req", "PostgreSQL CPU ms/req",
                  "throughput ratio to ceiling", "CPU ratio (bare ÷ this)", "target", "verdict"], rows)
