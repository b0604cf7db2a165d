"""Scaling on this machine (docs/SCALING.md): web processes 1→2→4, worker processes 1→2→4, queue age under a burst.

- Web: gunicorn with 1, 2 and 4 workers, the Dramatiq workers stopped, Telegram payment webhooks
  for `BENCH_SECONDS` at concurrency `BENCH_CONCURRENCY`: accepted requests/s, p99, CPU per request.
- Workers: `SCALING_PAYMENTS` payments recorded with the workers stopped, then drained by
  `--processes 1|2|4 --threads 4`: payments granted per second, CPU per payment (Dramatiq + PostgreSQL).
- Burst: `SCALING_BURST` payments sent as fast as two web processes take them while 1, 2 or 4
  worker processes run; the age of the oldest pending event (what `inbox_oldest_pending_age_seconds`
  serves and the EntitleQueueOld alert reads) sampled every 0.25 s: its peak, and the seconds from
  the first payment until the queue is empty.
"""
from __future__ import annotations

import os
import threading
import time

from bench import client, config, payloads
from bench.cpu import CpuMeter, postgres_backends
from bench.e2e import _drain_rate, _granted_count, _worker_meter
from bench.report import table

COUNTS = (1, 2, 4)
PAYMENTS = int(os.environ.get("SCALING_PAYMENTS") or config.size(2000, 10000))
BURST = int(os.environ.get("SCALING_BURST") or config.size(3000, 20000))
FIRST_USER = 5_000_000


def _web(stack, processes: int, first: int) -> dict:
    """Telegram webhooks accepted per second by `processes` gunicorn workers (Dramatiq stopped)."""
    stack.stop_workers()
    stack.start_web(workers=processes)
    stack.reset()
    items = [p.request for p in payloads.payments(int(config.RUN_SECONDS * 1500), first, ("telegram",))]
    with CpuMeter({"web": stack.web_workers, "postgres": postgres_backends(stack.sql, stack.database)}) as cpu:
        result = client.load(stack.url, client.write_requests(items), concurrency=config.CONCURRENCY, duration=config.RUN_SECONDS)
    return {"processes": processes, "ok_rps": result["ok_rps"], "p99_ms": result["p99_ms"],
            "cpu_ms": cpu.per_unit_ms(result["completed"])}


def _drain(stack, processes: int, first: int) -> dict:
    """Recorded payments granted per second by `processes` Dramatiq processes of 4 threads."""
    stack.stop_workers()
    stack.reset()
    paid = payloads.payments(PAYMENTS, first, ("telegram",))
    client.load(stack.url, client.write_requests([p.request for p in paid]), concurrency=config.CONCURRENCY, duration=600,
                retry_5xx=60)
    users = [p.user for p in paid]
    stack.start_workers("workers.main", processes=processes, wait=False)
    cpu = _worker_meter(stack)
    rate, _ = _drain_rate(lambda: _granted_count(stack, users), len(users), timeout=900, cpu=cpu)
    stack.stop_workers()
    return {"processes": processes, "per_s": rate, "cpu_ms": cpu.per_unit_ms(cpu.units)}


def _oldest_pending_age(stack) -> float:
    rows = stack.sql("SELECT EXTRACT(EPOCH FROM (timezone('utc', now()) - MIN(received_at))) FROM event WHERE status = 'pending'")
    return float(rows[0][0]) if rows and rows[0][0] is not None else 0.0


def _burst(stack, processes: int, first: int) -> dict:
    """A burst of payments with `processes` worker processes running: the queue's peak age and the time to empty it."""
    stack.stop_workers()
    stack.reset()
    stack.start_workers("workers.main", processes=processes)
    paid = payloads.payments(BURST, first, ("telegram",))
    ages: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            ages.append(_oldest_pending_age(stack))
            stop.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.monotonic()
    sampler.start()
    sent = client.load(stack.url, client.write_requests([p.request for p in paid]), concurrency=config.CONCURRENCY,
                       duration=600, retry_5xx=60)
    sending = time.monotonic() - started
    users = [p.user for p in paid]
    deadline = time.monotonic() + 900
    while _granted_count(stack, users) < len(users):
        if time.monotonic() > deadline:
            raise RuntimeError("the burst was not drained within 900 s")
        time.sleep(0.1)
    emptied = time.monotonic() - started
    stop.set()
    sampler.join(5)
    stack.stop_workers()
    return {"processes": processes, "payments": BURST, "ingest_rps": sent["ok_rps"], "seconds_sending": sending,
            "seconds_to_empty": emptied, "peak_age_s": max(ages, default=0.0)}


def run(stack) -> dict:
    """Each measure at 1, 2 and 4 processes, once each (the machine has two cores)."""
    first = FIRST_USER
    web, drain, burst = [], [], []
    for n in COUNTS:
        web.append(_web(stack, n, first))
        first += 20_000
    stack.start_web(workers=2)
    for n in COUNTS:
        drain.append(_drain(stack, n, first))
        first += PAYMENTS
    for n in COUNTS:
        burst.append(_burst(stack, n, first))
        first += BURST
    return {"web": web, "drain": drain, "burst": burst, "payments": PAYMENTS, "burst_size": BURST,
            "concurrency": config.CONCURRENCY, "seconds": config.RUN_SECONDS, "cores": os.cpu_count()}


def render(summary: dict) -> str:
    """The three scaling tables."""
    base_web = summary["web"][0]["ok_rps"] or float("nan")
    web = table(
        ["gunicorn workers", "webhooks accepted/s", "× one", "p99 ms", "gunicorn CPU ms/req", "PostgreSQL CPU ms/req"],
        [[r["processes"], r["ok_rps"], f"{r['ok_rps'] / base_web:.2f}", r["p99_ms"], f"{r['cpu_ms']['web']:.2f}",
          f"{r['cpu_ms']['postgres']:.2f}"] for r in summary["web"]],
    )
    base_drain = summary["drain"][0]["per_s"] or float("nan")
    drain = table(
        ["worker processes (× 4 threads)", "payments granted/s", "× one", "worker CPU ms/payment", "PostgreSQL CPU ms/payment"],
        [[r["processes"], r["per_s"], f"{r['per_s'] / base_drain:.2f}", f"{r['cpu_ms']['worker']:.2f}",
          f"{r['cpu_ms']['postgres']:.2f}"] for r in summary["drain"]],
    )
    burst = table(
        ["worker processes", "burst", "accepted/s while sending", "s sending", "peak queue age s", "s until empty"],
        [[r["processes"], r["payments"], r["ingest_rps"], f"{r['seconds_sending']:.1f}", f"{r['peak_age_s']:.1f}",
          f"{r['seconds_to_empty']:.1f}"] for r in summary["burst"]],
    )
    return (f"Web (Dramatiq stopped; {summary['seconds']:g} s at concurrency {summary['concurrency']}):\n\n{web}\n\n"
            f"Workers ({summary['payments']} recorded payments drained; two gunicorn workers idle):\n\n{drain}\n\n"
            f"Burst ({summary['burst_size']} payments at concurrency {summary['concurrency']} into two gunicorn workers):\n\n{burst}")
