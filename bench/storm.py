"""Benchmark: a 429 storm on chat removals while payments arrive (`make bench` with BENCH_ONLY=storm, or `python -m bench.storm`).

5,000 grants of an entitlement with a chat end at once, so 5,000 chat removals are pending while
the Bot API answers every `banChatMember` with 429 `retry_after` 1 for `STORM_SECONDS`; meanwhile
payments for a plan with no chats arrive open loop at half the measured capacity. Measured: each
payment's acceptance→grant latency (p50, p99), and when the last removal is done after the 429s
stop. The same scenario runs on this tree and, with BENCH_BASELINE=<commit>, on that commit
(extracted with `git archive`): the single queue, whose chat consumers slept through `retry_after`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import client, config, payloads, report, tally
from bench.e2e import acceptance_to_grant
from bench.loadgen import percentile
from bench.services import Stack
from simulate.telegram_api import FakeTelegramAPI

REMOVALS = int(os.environ.get("BENCH_STORM_REMOVALS", "5000"))
STORM_SECONDS = 30
RATE = float(os.environ.get("BENCH_STORM_RATE", "47"))  # payments/s: half of the live capacity in docs/BENCHMARKS.md
PAY_SECONDS = 20
CHAT = -1009000000001
FIRST_HOLDER = 60_000_000
FIRST_PAYER = 61_000_000
CLUB = f"""
[entitlements.club]
title = "Club"
chats = [{CHAT}]
"""


def _expiring_holders(stack: Stack, count: int, ends_in: float) -> None:
    """`count` holders of `club` whose one grant ends in `ends_in` seconds (the workers' expiry then removes them from its chat)."""
    stack.sql(
        'INSERT INTO "user" (telegram_id, first_name, is_premium, created_at, updated_at) '
        "SELECT %s + n, 'Holder', false, now(), now() FROM generate_series(0, %s - 1) AS n", (FIRST_HOLDER, count))
    ends = f"now() at time zone 'utc' + interval '{ends_in} seconds'"
    stack.sql(
        'INSERT INTO "grant" (user_id, entitlement, source, reference, starts_at, ends_at, created_at) '
        f"SELECT id, 'club', 'manual', 'storm-' || telegram_id, now() at time zone 'utc', {ends}, now() at time zone 'utc' "
        'FROM "user" WHERE telegram_id >= %s', (FIRST_HOLDER,))
    stack.sql(
        "INSERT INTO entitlement_state (user_id, entitlement, holding, ends_at, version, updated_at) "
        f"SELECT id, 'club', true, {ends}, 1, now() at time zone 'utc' FROM \"user\" WHERE telegram_id >= %s", (FIRST_HOLDER,))


def _removals_done(stack: Stack) -> int:
    return stack.sql("SELECT COUNT(*) FROM event WHERE type = 'chat_remove' AND status <> 'pending'")[0][0]


def scenario(stack: Stack, telegram: FakeTelegramAPI, *, removals: int = REMOVALS, storm: float = STORM_SECONDS,
             rate: float = RATE, seconds: float = PAY_SECONDS, first_payer: int = FIRST_PAYER) -> dict:
    """Run the storm once against `stack` (already started, workers stopped); the figures."""
    stack.stop_workers()
    stack.reset()
    telegram.reset()
    _expiring_holders(stack, removals, ends_in=5)
    paid = payloads.payments(int(rate * seconds), first_payer)
    items = payloads.deliveries(paid, 1)
    telegram.fail("banChatMember", 429, "Too Many Requests: retry after 1", retry_after=1)
    stack.start_workers("workers.main")
    time.sleep(8)  # the grants end and their removals queue up
    started = time.monotonic()
    result = client.load(stack.url, client.write_requests(items), rate=rate, duration=600, retry_5xx=60)
    waited = time.monotonic() - started
    time.sleep(max(0.0, storm - waited))
    telegram.reset()  # the storm ends
    storm_over = time.monotonic()
    deadline = storm_over + 900
    while _removals_done(stack) < removals and time.monotonic() < deadline:
        time.sleep(1)
    removals_s = time.monotonic() - storm_over
    latencies = sorted(acceptance_to_grant(stack, items))
    tally.wait_for_grants(stack.sql, [p.user for p in paid], timeout=60)
    counted = tally.count(stack.sql, items, result["final"])
    return {
        "tally": counted.as_dict(), "statuses": result["statuses"], "retries": result["retries"],
        "not_json_errors": result["not_json_errors"],
        "payments": len(paid), "granted": len(latencies), "rate": rate, "accepted": result["statuses"],
        "p50": percentile(latencies, 50) if latencies else None, "p99": percentile(latencies, 99) if latencies else None,
        "removals": removals, "removals_done": _removals_done(stack), "removals_after_storm_s": removals_s,
        "pending_removals_at_payments": removals,
    }


def chaos_scenario(stack: Stack, first_payer: int) -> dict:
    """The storm as a fault scenario of `make chaos` (1,000 removals, 20 s of 429s) on its stack, pointed at a stand-in of our own."""
    telegram = FakeTelegramAPI().start()
    plans = stack.workdir / "storm-plans.toml"
    plans.write_text((config.ROOT / "plans.toml").read_text() + CLUB)
    saved = dict(stack.extra_env), dict(stack.urls)
    stack.extra_env["PLANS_FILE"] = str(plans)
    stack.urls["telegram"] = telegram.url
    started = time.monotonic()
    try:
        stack.start_web()
        figures = scenario(stack, telegram, removals=1000, storm=20, rate=RATE, seconds=20, first_payer=first_payer)
    finally:
        stack.stop_workers()
        stack.extra_env, stack.urls = saved
        stack.start_web()
        telegram.stop()
    return {"scenario": "429 storm on chat methods (1,000 removals pending, 20 s of 429 retry_after 1) during payments",
            "seconds": time.monotonic() - started, **figures}


def _baseline_tree(commit: str) -> Path:
    """The tree of `commit`, extracted to a temporary directory (git archive), to run its web and workers from."""
    target = Path(tempfile.mkdtemp(prefix="entitle-baseline-"))
    archive = subprocess.run(["git", "archive", commit], cwd=config.ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def run(baseline: str | None = None) -> list[dict]:
    """The storm on this tree, and on `baseline` when given; one row each."""
    rows = []
    trees = [("queues by urgency, deferred 429s, one budget (this tree)", config.ROOT)]
    if baseline:
        trees.append((f"one queue, sleeping through retry_after ({baseline[:7]})", _baseline_tree(baseline)))
    for label, root in trees:
        telegram = FakeTelegramAPI().start()
        plans = Path(tempfile.mkdtemp(prefix="entitle-storm-")) / "plans.toml"
        plans.write_text((config.ROOT / "plans.toml").read_text() + CLUB)
        stack = Stack(os.environ.get("BENCH_STORM_DATABASE", "entitle_bench_storm"), PLANS_FILE=str(plans), PYTHONPATH=str(root), SWEEP_INTERVAL="1")
        stack.code_root = root
        try:
            stack.start(workers=False)
            stack.urls["telegram"] = telegram.url
            stack.start_web()  # again, now pointed at this process's Bot API stand-in
            figures = scenario(stack, telegram)
        finally:
            stack.stop()
            telegram.stop()
        figures["tree"] = label
        rows.append(figures)
        print(figures, flush=True)
    return rows


def render(rows: list[dict]) -> str:
    """The table for docs/BENCHMARKS.md."""
    return report.table(
        ["code", "pending removals", "429 storm", "payments", "acceptance→grant p50 / p99 (s)", "removals done after the storm (s)"],
        [[r["tree"], f"{r['removals_done']} of {r['removals']}", f"{STORM_SECONDS} s, retry_after 1",
          f"{r['payments']} at {r['rate']:.0f}/s, {r['granted']} granted",
          f"{r['p50']:.2f} / {r['p99']:.2f}" if r["p99"] is not None else "—", f"{r['removals_after_storm_s']:.0f}"] for r in rows],
    )


def main() -> int:
    """Run, print, and with BENCH_WRITE_DOCS=1 write the table into docs/BENCHMARKS.md."""
    info = report.machine()
    rows = run(os.environ.get("BENCH_BASELINE"))
    text = report.machine_line(info) + "\n\n" + render(rows)
    print(text)
    if os.environ.get("BENCH_WRITE_DOCS") == "1":
        report.write_section(config.ROOT / "docs" / "BENCHMARKS.md", "storm", text)
    return 0 if all(r["p99"] is not None and r["p99"] < 1 for r in rows[:1]) else 1


if __name__ == "__main__":
    sys.exit(main())
