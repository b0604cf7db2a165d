"""An asyncio HTTP load generator, run in its own process: `python -m bench.loadgen SPEC OUT`.

SPEC is a JSON file: `url`, `requests` (a JSON-lines file; each line `{"method", "path",
"headers", "body"}` and optionally `"copies": n` to send n copies at the same moment), and the
bounds: `concurrency`, `duration` (seconds), `max_requests`, `rate` (requests/s, open loop; none:
closed loop), `cycle` (start the file again when it runs out), `retry_5xx` (seconds to keep
retrying a 5xx or a refused connection with backoff, as Telegram and Stripe do). It always stops
by itself. OUT receives counts, throughput, latency percentiles and each line's final status.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


class Run:
    """One bounded run of the generator."""

    def __init__(self, spec: dict, items: list[dict]):
        self.spec = spec
        self.items = items
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.final: list[int | None] = [None] * len(items)
        self.attempts: list[int] = [0] * len(items)
        self.accepted_at: list[float | None] = [None] * len(items)
        self.not_json = 0
        self.retries = 0
        self.sent = 0

    def _count(self, status: str) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1

    async def _once(self, session: aiohttp.ClientSession, item: dict) -> int:
        started = time.perf_counter()
        try:
            async with session.request(item.get("method", "POST"), self.spec["url"] + item["path"],
                                       data=item.get("body", "").encode(), headers=item.get("headers") or {}) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            self._count("error")
            return 599
        self.latencies.append(time.perf_counter() - started)
        self._count(str(status))
        if status >= 400 and not body.lstrip().startswith(b"{"):
            self.not_json += 1
        return status

    async def _send(self, session: aiohttp.ClientSession, index: int) -> None:
        item = self.items[index]
        retry_for = self.spec.get("retry_5xx") or 0
        deadline = time.monotonic() + retry_for
        delay = 0.1
        while True:
            copies = int(item.get("copies", 1))
            self.sent += copies
            self.attempts[index] += 1
            results = await asyncio.gather(*(self._once(session, item) for _ in range(copies)))
            ok = [s for s in results if s < 300]
            status = min(ok) if ok else max(results)
            if status < 500 or not retry_for or time.monotonic() > deadline:
                break
            self.retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        self.final[index] = status
        if status < 300:
            self.accepted_at[index] = time.time()

    async def run(self) -> dict:
        spec = self.spec
        concurrency = int(spec.get("concurrency", 32))
        duration = float(spec.get("duration", 10))
        max_requests = int(spec.get("max_requests") or (len(self.items) if not spec.get("cycle") else 10**9))
        rate = spec.get("rate")
        timeout = aiohttp.ClientTimeout(total=float(spec.get("timeout", 30)))
        connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
        counter = iter(range(max_requests))
        started = time.perf_counter()
        stop_at = started + duration

        def next_index() -> int | None:
            if time.perf_counter() > stop_at:
                return None
            n = next(counter, None)
            if n is None:
                return None
            if n >= len(self.items) and not spec.get("cycle"):
                return None
            return n % len(self.items)

        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            if rate:
                tasks = []
                n = 0
                while True:
                    index = next_index()
                    if index is None:
                        break
                    due = started + n / float(rate)
                    n += 1
                    wait = due - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    tasks.append(asyncio.create_task(self._send(session, index)))
                await asyncio.gather(*tasks)
            else:
                async def loop():
                    while (index := next_index()) is not None:
                        await self._send(session, index)

                await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        done = len(self.latencies)
        ok = sum(n for s, n in self.statuses.items() if s.isdigit() and int(s) < 300)
        return {
            "sent": self.sent,
            "completed": done,
            "ok": ok,
            "elapsed": elapsed,
            "rps": done / elapsed if elapsed else 0.0,
            "ok_rps": ok / elapsed if elapsed else 0.0,
            "statuses": self.statuses,
            "p50_ms": percentile(self.latencies, 50) * 1000,
            "p99_ms": percentile(self.latencies, 99) * 1000,
            "max_ms": max(self.latencies, default=0.0) * 1000,
            "not_json_errors": self.not_json,
            "retries": self.retries,
            "final": self.final,
            "attempts": self.attempts,
            "accepted_at": self.accepted_at,
        }


def load_items(path: str) -> list[dict]:
    """The request lines of a JSON-lines file."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv: list[str]) -> None:
    """Run the spec in argv[0] and write the result to argv[1]."""
    with open(argv[0]) as f:
        spec = json.load(f)
    result = asyncio.run(Run(spec, load_items(spec["requests"])).run())
    with open(argv[1], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1:])
