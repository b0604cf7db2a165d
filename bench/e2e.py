"""Benchmark 2: payments end to end (webhook → inbox → Dramatiq → grant) beside a no-op actor.

Per run: (a) the no-op ceiling: N messages queued while the workers are stopped, then drained by
`dramatiq workers --processes 2 --threads 4`; (b) the drain of the same number of recorded payments
by the same workers, measured the same way (the ratio); (c) live: P payments, Stars and Stripe
alternating, each delivered 3 times, shuffled, at concurrency 32 while the workers run: time until
every grant exists, events/s, and acceptance→grant latency. Then once: payments sent at half the
measured capacity (open loop) for the latency target.
"""
from __future__ import annotations

import os
import subprocess
import time

import redis

from bench import client, config, payloads, tally
from bench.cpu import CpuMeter, postgres_backends
from bench.procs import PeakRss
from bench.report import median, table

PAYMENTS = int(os.environ.get("BENCH_PAYMENTS") or config.size(2000, 20000))
NOOP_MESSAGES = int(os.environ.get("BENCH_NOOP_MESSAGES") or config.size(20000, 20000))
HALF_SECONDS = config.size(20, 40)


def _drain_rate(count_done, total: int, timeout: float, cpu: CpuMeter | None = None) -> tuple[float, float]:
    """(messages/s between the first and the last done, seconds to finish) by polling `count_done()`.

    `cpu` (the workers booted already, so their start-up is not counted) runs from now to the last
    done; its `units` is set to the messages done meanwhile.
    """
    started = time.monotonic()
    first_t = first_n = None
    if cpu is not None:
        cpu.__enter__()
        cpu_from = count_done()
    while time.monotonic() - started < timeout:
        n = count_done()
        now = time.monotonic()
        if first_t is None and n > 0:
            first_t, first_n = now, n
        if n >= total:
            if cpu is not None:
                cpu.__exit__(None, None, None)
                cpu.units = total - cpu_from
            span = now - first_t if first_t else 0.0
            return ((total - first_n) / span if span > 0 else float("nan")), now - started
        time.sleep(0.05)
    raise RuntimeError(f"only {count_done()} of {total} done after {timeout} s")


def _worker_meter(stack) -> CpuMeter:
    """CPU of Dramatiq's processes (parent and children) and of the bench database's PostgreSQL backends."""
    def workers() -> list[int]:
        return ([stack.worker.pid] if stack.worker is not None else []) + stack.worker_processes()

    return CpuMeter({"worker": workers, "postgres": postgres_backends(stack.sql, stack.database)})


def noop_ceiling(stack) -> tuple[float, dict]:
    """No-op messages per second through the project's broker and workers, and the CPU ms per message."""
    stack.stop_workers()
    stack.flush_broker()
    subprocess.run([config.PYTHON, "-m", "bench.noop", str(NOOP_MESSAGES)], cwd=config.ROOT, env=stack.env, check=True)
    r = redis.Redis.from_url(stack.broker_url)
    key = f"{stack.namespace}:bench:noop"
    stack.start_workers("workers.main", "bench.noop")
    cpu = _worker_meter(stack)
    rate, _ = _drain_rate(lambda: int(r.get(key) or 0), NOOP_MESSAGES, timeout=600, cpu=cpu)
    stack.stop_workers()
    r.delete(key)
    return rate, cpu.per_unit_ms(cpu.units)


def _granted_count(stack, users: list[int]) -> int:
    return stack.sql('SELECT COUNT(DISTINCT u.telegram_id) FROM "user" u JOIN "grant" g ON g.user_id = u.id '
                     "WHERE u.telegram_id BETWEEN %s AND %s", (min(users), max(users)))[0][0]


class _Receiver:
    """An endpoint for outgoing webhooks that takes every message at once (204), on a free port."""

    def __enter__(self) -> str:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Ok(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server hook
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def drain(stack, paid: list[payloads.Payment], *, webhook_url: str | None = None) -> tuple[float, dict]:
    """Recorded payments granted per second by the workers, measured like the no-op ceiling, and the CPU ms per payment.

    With `webhook_url`, an outgoing-webhook endpoint takes every type, so each payment also writes
    its messages (payment.succeeded, entitlement.started) and the workers send them.
    """
    stack.stop_workers()
    stack.reset()
    if webhook_url:
        subprocess.run([str(config.ROOT / ".venv" / "bin" / "entitle"), "webhooks", "add", webhook_url, "--json"],
                       cwd=stack.workdir, env=stack.env, check=True, capture_output=True)
    items = [p.request for p in paid]
    client.load(stack.url, client.write_requests(items), concurrency=config.CONCURRENCY, duration=600, retry_5xx=60)
    users = [p.user for p in paid]
    stack.start_workers("workers.main")
    cpu = _worker_meter(stack)
    rate, _ = _drain_rate(lambda: _granted_count(stack, users), len(users), timeout=600, cpu=cpu)
    return rate, cpu.per_unit_ms(cpu.units)


def acceptance_to_grant(stack, items: list[dict]) -> list[float]:
    """Seconds from each payment's row being stored (its first acceptance) to its grant."""
    user_of = {item["external_id"]: item["user"] for item in items}
    received = {}
    for external_id, at in stack.sql("SELECT external_id, received_at FROM event WHERE type IN %s", (tally.PAYMENT_TYPES,)):
        if external_id in user_of:
            received[user_of[external_id]] = at
    users = list(user_of.values())
    granted = dict(stack.sql('SELECT u.telegram_id, MIN(g.created_at) FROM "user" u JOIN "grant" g ON g.user_id = u.id '
                             "WHERE u.telegram_id BETWEEN %s AND %s GROUP BY u.telegram_id", (min(users), max(users))))
    return [(granted[u] - received[u]).total_seconds() for u in received if u in granted]


def live(stack, paid: list[payloads.Payment], times: int = 3, rate: float | None = None, duration: float = 900) -> dict:
    """Deliver every payment `times` times, shuffled, while the workers run; wait for every grant."""
    stack.stop_workers()
    stack.reset()
    stack.start_workers("workers.main")
    items = payloads.deliveries(paid, times)
    started = time.monotonic()
    bounds = {"rate": rate} if rate else {"concurrency": config.CONCURRENCY}
    with PeakRss(lambda: stack.web_workers() + stack.worker_processes()) as rss:
        result = client.load(stack.url, client.write_requests(items), duration=duration, retry_5xx=60, **bounds)
        sent_for = time.monotonic() - started
        waited = tally.wait_for_grants(stack.sql, [p.user for p in paid], timeout=600)
    if waited is None:
        raise RuntimeError("not every payment was granted within 600 s")
    total = time.monotonic() - started
    latencies = sorted(acceptance_to_grant(stack, items))
    from bench.loadgen import percentile

    counted = tally.count(stack.sql, items, result["final"])
    return {
        "payments": len(paid), "requests": len(items), "seconds_to_last_grant": total, "seconds_sending": sent_for,
        "events_per_s": len(paid) / total, "ingest_rps": result["ok_rps"],
        "p50_s": percentile(latencies, 50), "p99_s": percentile(latencies, 99), "max_s": max(latencies, default=0.0),
        "statuses": result["statuses"], "tally": counted.as_dict(), "peak_rss_mb": rss.max_mb,
    }


def run(stack, providers: tuple[str, ...]) -> dict:
    """The no-op ceiling, the drain and the live run `config.RUNS` times, then the half-capacity run."""
    runs = []
    first = 3_000_000
    for i in range(config.RUNS):
        ceiling, noop_cpu = noop_ceiling(stack)
        drained_cpu = {}
        for provider in providers:  # each kind alone, for its CPU per payment
            _, drained_cpu[provider] = drain(stack, payloads.payments(PAYMENTS // 2, first, (provider,)))
            first += PAYMENTS // 2
        drained, _ = drain(stack, payloads.payments(PAYMENTS, first, providers))
        first += PAYMENTS
        with _Receiver() as url:
            with_outbox, _ = drain(stack, payloads.payments(PAYMENTS, first, providers), webhook_url=url)
        first += PAYMENTS
        result = live(stack, payloads.payments(PAYMENTS, first, providers))
        first += PAYMENTS
        runs.append({"noop_per_s": ceiling, "noop_cpu_ms": noop_cpu, "drain_cpu_ms": drained_cpu,
                     "drain_per_s": drained, "ratio": drained / ceiling,
                     "drain_with_webhooks_per_s": with_outbox, "live": result})
    capacity = median([r["live"]["events_per_s"] for r in runs])
    half_rate = capacity / 2
    half_paid = payloads.payments(int(half_rate * HALF_SECONDS), first, providers)
    half = live(stack, half_paid, rate=half_rate * 3)
    stack.stop_workers()
    return {"runs": runs, "capacity_events_per_s": capacity, "half": half | {"payments_per_s": half_rate},
            "payments": PAYMENTS, "providers": list(providers)}


def render(summary: dict) -> str:
    """The end-to-end table."""
    runs = summary["runs"]
    noop = median([r["noop_per_s"] for r in runs])
    drained = median([r["drain_per_s"] for r in runs])
    ratio = median([r["ratio"] for r in runs])
    live_eps = median([r["live"]["events_per_s"] for r in runs])
    p50 = median([r["live"]["p50_s"] for r in runs])
    p99 = median([r["live"]["p99_s"] for r in runs])
    to_last = median([r["live"]["seconds_to_last_grant"] for r in runs])
    half = summary["half"]
    rows = [
        ["no-op actor (ceiling)", f"{noop:,.0f} msg/s", "", "", "—", "—"],
        ["payments drained by the workers (each writes its transition)", f"{drained:,.0f} events/s", "", "", f"{ratio:.2f} (≥ 0.3)",
         "met" if ratio >= 0.3 else "missed"],
    ]
    if all("drain_with_webhooks_per_s" in r for r in runs):
        outbox = median([r["drain_with_webhooks_per_s"] for r in runs])
        rows.append(["the same with a webhook endpoint for every type (2 messages a payment, sent)", f"{outbox:,.0f} events/s",
                     "", "", f"{outbox / noop:.2f}; {outbox / drained:.2f} of the drain", "—"])
    rows += [
        [f"live: {summary['payments']:,} payments × 3 deliveries, shuffled", f"{live_eps:,.0f} events/s",
         f"{p50:.2f} / {p99:.2f}", f"{to_last:.1f}", f"{live_eps / noop:.2f}", "—"],
        [f"half capacity: {half['payments_per_s']:,.0f} payments/s × 3 for {HALF_SECONDS} s", f"{half['events_per_s']:,.0f} events/s",
         f"{half['p50_s']:.2f} / {half['p99_s']:.2f}", f"{half['seconds_to_last_grant']:.1f}", "p99 < 1 s",
         "met" if half["p99_s"] < 1 else "missed"],
    ]
    return table(["run", "throughput", "acceptance→grant p50 / p99 s", "s to last grant", "ratio to no-op (target)",
                  "verdict"], rows)


# Ceilings of CPU per payment, in ms, by process kind (issue targets; the web's is per webhook, in the ingest table).
WORKER_CEILING_MS = {"telegram": 2.5, "stripe": 3.0}
WHOLE_CEILING_MS = 8.0


def render_cpu(summary: dict, ingest: dict | None = None) -> str:
    """CPU per unit of work by process kind (from /proc), beside the no-op message and the ceilings."""
    runs = summary["runs"]
    noop = {k: median([r["noop_cpu_ms"][k] for r in runs]) for k in ("worker", "postgres")}
    rows = [["no-op Dramatiq message", f"{noop['worker']:.2f}", f"{noop['postgres']:.2f}", "—", "—", "—", "—"]]
    names = {"telegram": ("Stars payment", "telegram webhook"), "stripe": ("card payment", "stripe webhook")}
    for provider in summary["providers"]:
        worker = median([r["drain_cpu_ms"][provider]["worker"] for r in runs])
        postgres = median([r["drain_cpu_ms"][provider]["postgres"] for r in runs])
        label, scenario = names[provider]
        web = ingest["median"].get(scenario) if ingest else None
        whole = worker + postgres + (web["cpu_web_ms"] + web["cpu_postgres_ms"] if web else 0.0)
        met = worker <= WORKER_CEILING_MS[provider] and (web is None or whole <= WHOLE_CEILING_MS)
        rows.append([label, f"{worker:.2f}", f"{postgres:.2f}", f"{web['cpu_web_ms']:.2f}" if web else "—",
                     f"{whole:.2f}" if web else "—", f"worker ≤ {WORKER_CEILING_MS[provider]}; whole ≤ {WHOLE_CEILING_MS:g}",
                     "met" if met else "missed"])
    return table(["unit of work", "worker CPU ms", "PostgreSQL CPU ms (drain)", "gunicorn CPU ms (its webhook)",
                  "whole payment, every process, ms", "ceiling", "verdict"], rows)
