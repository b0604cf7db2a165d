"""Sample a running process with py-spy and summarise where its time goes."""
from __future__ import annotations

import collections
import subprocess
import tempfile
from pathlib import Path

from bench import config


def record(pid: int, seconds: float, rate: int = 200, gil: bool = False) -> list[tuple[list[str], int]]:
    """Collapsed stacks of `pid` over `seconds` (py-spy's raw format), outermost frame first; with `gil`, only the thread holding the GIL."""
    out = Path(tempfile.mkdtemp(prefix="entitle-prof-")) / "stacks.txt"
    spy = str(Path(config.PYTHON).parent / "py-spy")
    subprocess.run([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate),
                    "--format", "raw", "--output", str(out), "--nonblocking"] + (["--gil"] if gil else []),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stacks = []
    for line in out.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames:
            stacks.append((frames.split(";"), int(count)))
    return stacks


def summarise(stacks: list[tuple[list[str], int]], top: int = 15, include: tuple[str, ...] = ()) -> list[tuple[str, float]]:
    """The frames (optionally only those whose text contains one of `include`) with the largest inclusive share."""
    total = sum(n for _, n in stacks) or 1
    inclusive: collections.Counter = collections.Counter()
    for frames, n in stacks:
        for frame in set(frames):
            if not include or any(word in frame for word in include):
                inclusive[frame] += n
    return [(frame, 100.0 * n / total) for frame, n in inclusive.most_common(top)]


# -- where the time goes: `python -m bench.profile` --------------------------------------------------

# The innermost frame's file decides its category (self time); the first match wins.
CATEGORIES = (
    ("Peewee (building SQL, models)", ("peewee.py", "playhouse/")),
    ("psycopg2 (the driver, waiting on PostgreSQL)", ("psycopg2/",)),
    ("Dramatiq (consumer, middleware, broker)", ("dramatiq/",)),
    ("Redis client", ("redis/",)),
    ("HTTP client (requests, urllib3, sockets)", ("requests/", "urllib3/", "http/client.py", "socket.py", "ssl.py")),
    ("pyTelegramBotAPI (Update parsing, calls)", ("telebot/",)),
    ("stripe-python", ("stripe/",)),
    ("JSON", ("json/",)),
    ("Flask, Werkzeug, gunicorn", ("flask/", "werkzeug/", "gunicorn/", "jinja2/", "itsdangerous/")),
    ("prometheus-client", ("prometheus_client/",)),
    ("logging", ("logging/",)),
    ("threading, queue, selectors (idle waits)", ("threading.py", "queue.py", "selectors.py")),
    ("entitle's own code", ("/app/", "/workers/", "/webapp/", "/cli/", "(app/", "(workers/", "(webapp/", "(cli/")),
)


def _category(frame: str) -> str:
    for name, needles in CATEGORIES:
        if any(n in frame for n in needles):
            return name
    return "other (CPython, stdlib)"


def self_shares(stacks: list[tuple[list[str], int]]) -> list[tuple[str, float]]:
    """Share of samples by the category of each sample's innermost frame (its own time), largest first."""
    total = sum(n for _, n in stacks) or 1
    by: collections.Counter = collections.Counter()
    for frames, n in stacks:
        by[_category(frames[-1]) if frames else "other (CPython, stdlib)"] += n
    return [(name, 100.0 * n / total) for name, n in by.most_common()]


def _busy(stacks: list[tuple[list[str], int]]) -> list[tuple[list[str], int]]:
    """Samples doing work: drop those parked in a wait (GIL samples can still catch a thread entering one)."""
    idle = ("wait (threading.py", "select (selectors.py", "get (queue.py", "_wait_for_tstate_lock", "sleep")
    return [(f, n) for f, n in stacks if not (f and any(w in f[-1] for w in idle))]


OWN = CATEGORIES[-1][1]


def _profile_pids(pids: list[int], seconds: float) -> list[tuple[list[str], int]]:
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(len(pids) or 1) as pool:
        parts = list(pool.map(lambda pid: record(pid, seconds, gil=True), pids))
    return [s for part in parts for s in part]


def main() -> int:
    """Profile (GIL samples) the workers draining a backlog of payments, and gunicorn taking webhooks; print the shares."""
    import os
    import threading
    import time

    from bench import client, payloads
    from bench.services import Stack

    count = int(os.environ.get("BENCH_PROFILE_PAYMENTS", "3000"))
    seconds = float(os.environ.get("BENCH_PROFILE_SECONDS", "12"))
    out = []
    stack = Stack(os.environ.get("BENCH_DATABASE", "entitle_bench_profile"))
    try:
        stack.start(workers=False)
        for provider in ("telegram", "stripe"):
            stack.stop_workers()
            stack.reset()
            paid = payloads.payments(count, 7_000_000 if provider == "telegram" else 8_000_000, (provider,))
            # The webhooks, under py-spy: gunicorn's time per request.
            web = _profile_during(stack.web_workers(), lambda: client.load(
                stack.url, client.write_requests([p.request for p in paid]), concurrency=32, duration=600), seconds)
            out.append((f"gunicorn taking {provider} webhooks", web))
            stack.start_workers("workers.main")
            time.sleep(1.5)  # the workers boot before sampling starts
            out.append((f"workers draining {provider} payments", _profile_pids(stack.worker_processes(), seconds)))
    finally:
        stack.stop()
    for title, stacks in out:
        busy = _busy(stacks)
        total = sum(n for _, n in stacks) or 1
        print(f"\n### {title}: {sum(n for _, n in busy)} busy samples of {total}\n")
        print("| where (innermost frame) | share of busy samples |\n|---|---|")
        for name, share in self_shares(busy):
            print(f"| {name} | {share:.1f} % |")
        print("\nLargest inclusive frames of entitle's own code:\n")
        for frame, share in summarise(busy, top=12, include=OWN):
            print(f"- {share:.1f} % {frame}")
    return 0


def _profile_during(pids: list[int], work, seconds: float) -> list[tuple[list[str], int]]:
    """py-spy on `pids` while `work()` runs in a thread (sampling starts with it)."""
    import threading

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    stacks = _profile_pids(pids, seconds)
    thread.join()
    return stacks


if __name__ == "__main__":
    raise SystemExit(main())
