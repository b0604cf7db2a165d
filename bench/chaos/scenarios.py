"""The end-to-end load under faults: payments arrive while something breaks, then everything is counted."""
from __future__ import annotations

import random
import time

from bench import client, config, payloads, tally
from bench.chaos.faults import Once, Repeating, restart_postgres

PAYMENTS = config.size(1000, 5000)
RATE = 120  # payments per second, open loop, so each fault lands mid-run
SETTLE = 180  # seconds allowed for every grant to appear after the load ends


def _deliver(stack, items: list[dict], **bounds) -> dict:
    return client.load(stack.url, client.write_requests(items), retry_5xx=120, **bounds)


def _finish(stack, name: str, paid, items, result, started: float, **extra) -> dict:
    waited = tally.wait_for_grants(stack.sql, [p.user for p in paid], timeout=SETTLE)
    counted = tally.count(stack.sql, items, result["final"])
    return {
        "scenario": name, "tally": counted.as_dict(), "seconds": time.monotonic() - started,
        "settled_after_load_s": waited, "statuses": result["statuses"], "retries": result["retries"],
        "not_json_errors": result["not_json_errors"], **extra,
    }


def duplicates(stack, first_user: int) -> dict:
    """Every delivery sent 5 times at the same moment."""
    stack.reset()
    stack.start_workers("workers.main")
    paid = payloads.payments(PAYMENTS, first_user)
    items = [dict(p.request, copies=5) for p in paid]
    random.Random(3).shuffle(items)
    started = time.monotonic()
    result = _deliver(stack, items, concurrency=8, duration=600)
    return _finish(stack, "every delivery 5 times, concurrently", paid, items, result, started)


def worker_kills(stack, first_user: int) -> dict:
    """SIGKILL every Dramatiq process every 3 s, mid-message, and start them again."""
    stack.reset()
    stack.start_workers("workers.main")
    paid = payloads.payments(PAYMENTS, first_user)
    items = payloads.deliveries(paid, 3)

    def kill_and_restart():
        stack.kill_workers()
        stack.start_workers("workers.main", wait=False)

    started = time.monotonic()
    with Repeating(kill_and_restart, interval=3.0, first_after=2.0) as killer:
        result = _deliver(stack, items, rate=RATE * 3, duration=600)
        # Keep killing while the backlog drains, then let it finish.
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            time.sleep(0.5)
    if killer.error:
        raise killer.error
    stack.start_workers("workers.main")
    return _finish(stack, "workers SIGKILLed every 3 s, then restarted", paid, items, result, started, kills=killer.count)


def redis_outage(stack, redis_server, first_user: int) -> dict:
    """Stop the broker's Redis for 10 s mid-run (its queues are lost with it), then start it again."""
    stack.reset()
    stack.start_workers("workers.main")
    paid = payloads.payments(PAYMENTS, first_user)
    items = payloads.deliveries(paid, 3)

    def outage():
        redis_server.stop()
        time.sleep(10)
        redis_server.start()
        return True

    started = time.monotonic()
    with Once(outage, after=3.0) as fault:
        result = _deliver(stack, items, rate=RATE * 3, duration=600)
    if fault.error:
        raise fault.error
    return _finish(stack, "Redis stopped for 10 s mid-run (queued messages lost), then started", paid, items, result,
                   started)


def postgres_restart(stack, first_user: int) -> dict:
    """Restart PostgreSQL mid-run; deliveries that get a 5xx are retried, as Telegram and Stripe do."""
    stack.reset()
    stack.start_workers("workers.main")
    paid = payloads.payments(PAYMENTS, first_user)
    items = payloads.deliveries(paid, 3)
    started = time.monotonic()
    with Once(restart_postgres, after=3.0) as fault:
        result = _deliver(stack, items, rate=RATE * 3, duration=600)
    if fault.error:
        raise fault.error
    fives = sum(n for s, n in result["statuses"].items() if s.isdigit() and int(s) >= 500) + result["statuses"].get("error", 0)
    return _finish(stack, "PostgreSQL restarted mid-run (5xx retried)", paid, items, result, started,
                   postgres_down_s=fault.result, answers_5xx=fives)
