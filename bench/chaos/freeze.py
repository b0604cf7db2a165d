"""Redis frozen (SIGSTOP) for 15 s while payments and pre-checkout queries arrive: every pre-checkout answer within Telegram's 10 s."""
from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from bench import client, config, payloads, tally
from bench.chaos.faults import Once

PAYMENTS = config.size(600, 3000)
RATE = 30  # payments per second, open loop
QUERIES_PER_S = 5
FROZEN_S = 15.0
DEADLINE_S = 10.0  # Telegram's wait for a pre-checkout answer
SETTLE = 180


def _query(user: int) -> dict:
    updates = payloads.telegram_updates()
    update = updates.pre_checkout_query_update(user, payloads.invoice_payload(payloads.TELEGRAM_PLAN, user), payloads.STARS_PRICE)
    return payloads.telegram_request(update)


def _ask(url: str, request: dict) -> tuple[float, bool]:
    """(seconds to the answer, whether it approved the query); an answer later than Telegram waits counts as late."""
    started = time.monotonic()
    try:
        answer = requests.post(url + request["path"], data=request["body"].encode(), headers=request["headers"], timeout=30)
        approved = answer.status_code == 200 and answer.json().get("ok") is True
    except requests.RequestException:
        approved = False
    return time.monotonic() - started, approved


def frozen_redis(stack, redis_server, first_user: int) -> dict:
    """Payments at RATE/s and pre-checkout queries at QUERIES_PER_S/s; Redis frozen 3 s in, for FROZEN_S seconds."""
    stack.reset()
    stack.start_workers("workers.main")
    paid = payloads.payments(PAYMENTS, first_user, providers=("telegram",))
    items = [p.request for p in paid]
    seconds = PAYMENTS / RATE

    def freeze():
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        try:
            time.sleep(FROZEN_S)
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        return True

    answers: list[tuple[float, bool]] = []
    stop = threading.Event()

    def ask_all():
        with ThreadPoolExecutor(32) as pool:
            futures, user = [], first_user + 500_000
            while not stop.is_set():
                futures.append(pool.submit(_ask, stack.url, _query(user)))
                user += 1
                stop.wait(1 / QUERIES_PER_S)
            answers.extend(f.result() for f in futures)

    started = time.monotonic()
    asker = threading.Thread(target=ask_all, daemon=True)
    asker.start()
    with Once(freeze, after=3.0) as fault:
        result = client.load(stack.url, client.write_requests(items), rate=RATE, duration=seconds + 60, retry_5xx=120)
    stop.set()
    asker.join()
    if fault.error:
        raise fault.error
    waited = tally.wait_for_grants(stack.sql, [p.user for p in paid], timeout=SETTLE)
    counted = tally.count(stack.sql, items, result["final"])
    slowest = max(t for t, _ in answers)
    late = sum(1 for t, _ in answers if t > DEADLINE_S)
    refused = sum(1 for _, ok in answers if not ok)
    return {
        "scenario": f"Redis frozen (SIGSTOP) for {FROZEN_S:.0f} s during payments and pre-checkout queries",
        "tally": counted.as_dict(), "seconds": time.monotonic() - started, "settled_after_load_s": waited,
        "statuses": result["statuses"], "retries": result["retries"], "not_json_errors": result["not_json_errors"],
        "pre_checkout": len(answers), "pre_checkout_slowest_s": slowest, "pre_checkout_late": late,
        "pre_checkout_refused": refused,
    }
