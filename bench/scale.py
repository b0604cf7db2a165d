"""Benchmark 5: lookups, listing and replay on a large inbox, and peak memory under load.

The data goes straight into PostgreSQL with COPY: `SCALE_EVENTS` inbox rows (1,000,000 with
BENCH_FULL=1) of which 10,000 are failed Stars payments that the real handler can run again,
and `SCALE_USERS` users (100,000), each with one or two grants; the backend check (`/api/v1`) is measured among them.
"""
from __future__ import annotations

import io
import json
import random
import subprocess
import time

from bench import client, config, payloads
from bench.loadgen import percentile
from bench.procs import PeakRss
from bench.report import table

SCALE_EVENTS = config.size(200_000, 1_000_000)
SCALE_USERS = 100_000  # the backend check is measured at this size in every run
FAILED = 10_000
FAILED_USER_BASE = 9_000_000
NOW = "2026-01-01 00:00:00"


class _Rows(io.TextIOBase):
    """A read()-able stream of COPY text lines produced on demand."""

    def __init__(self, lines):
        self._lines = iter(lines)
        self._buffer = ""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> str:
        while size < 0 or len(self._buffer) < size:
            chunk = "".join(line for _, line in zip(range(2000), self._lines))
            if not chunk:
                break
            self._buffer += chunk
        if size < 0:
            out, self._buffer = self._buffer, ""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    readline = read


def _copy(stack, table_name: str, columns: tuple[str, ...], lines) -> None:
    import psycopg2

    conn = psycopg2.connect(stack.database_url)
    try:
        with conn.cursor() as cur:
            cur.copy_expert(f'COPY "{table_name}" ({", ".join(columns)}) FROM STDIN', _Rows(lines))
        conn.commit()
    finally:
        conn.close()


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _user_lines(count: int):
    for i in range(count):
        yield f"{1_000 + i}\tUser {i}\tf\t{NOW}\t{NOW}\n"


def _grant_lines(count: int, rng: random.Random):
    for i in range(count):
        for n in range(1 + (i % 2)):
            ends = f"2026-0{1 + rng.randrange(9)}-15 00:00:00"
            yield f"{i + 1}\tpremium\ttelegram\tscale-{i}-{n}\tpremium_week\t{NOW}\t{ends}\t{NOW}\n"


def _event_lines(total: int, failed_at: set[int], failed_payloads: list[tuple[str, str]], users: int):
    template = json.dumps(json.loads(payloads.telegram_payment(1).request["body"]), separators=(",", ":"))
    failed = iter(failed_payloads)
    for i in range(total):
        if i in failed_at:
            charge_id, body = next(failed)
            yield (f"telegram\t{charge_id}\tsuccessful_payment\t{_escape(body)}\tfailed\t8\t"
                   f"RuntimeError: simulated outage\t{NOW}\t{NOW}\t\\N\t0\n")
        else:
            body = template.replace('"id":1,', f'"id":{1_000 + i % users},', 1)
            yield (f"telegram\tscale-{i}\tsuccessful_payment\t{_escape(body)}\tprocessed\t1\t\\N\t{NOW}\t{NOW}\t{NOW}\t0\n")


def load(stack) -> dict:
    """Fill the database; returns how long each table took."""
    rng = random.Random(5)
    stack.reset()
    timings = {}
    started = time.monotonic()
    _copy(stack, "user", ("telegram_id", "first_name", "is_premium", "created_at", "updated_at"), _user_lines(SCALE_USERS))
    _copy(stack, "grant", ("user_id", "entitlement", "source", "reference", "plan", "starts_at", "ends_at", "created_at"),
          _grant_lines(SCALE_USERS, rng))
    timings["users_and_grants_s"] = time.monotonic() - started
    failed_payloads = []
    for i in range(FAILED):
        p = payloads.telegram_payment(FAILED_USER_BASE + i)
        failed_payloads.append((p.request["external_id"], p.request["body"]))
    failed_at = set(rng.sample(range(SCALE_EVENTS), FAILED))
    started = time.monotonic()
    _copy(stack, "event", ("provider", "external_id", "type", "payload", "status", "attempts", "error", "received_at",
                           "updated_at", "processed_at", "dispatch"), _event_lines(SCALE_EVENTS, failed_at, failed_payloads, SCALE_USERS))
    timings["events_s"] = time.monotonic() - started
    stack.sql("ANALYZE")
    return timings




def me_latency(stack, users: list[int]) -> dict:
    """GET /api/me for users with grants, two requests in flight (one per web worker)."""
    import requests

    tokens = []
    for u in users:
        r = requests.post(stack.url + "/api/session", json={"init_data": payloads.init_data(u)}, timeout=10)
        r.raise_for_status()
        tokens.append(r.json()["access_token"])
    items = [{"method": "GET", "path": "/api/me", "headers": {"Authorization": f"Bearer {t}"}} for t in tokens]
    result = client.load(stack.url, client.write_requests(items), concurrency=2, duration=20, cycle=True,
                         max_requests=4000)
    return {k: result[k] for k in ("ok", "rps", "p50_ms", "p99_ms", "statuses")}


def check_latency(stack, users: list[int]) -> dict:
    """`GET /api/v1/users/{id}/entitlements/premium` with an API key: the backend's hot check, two in flight."""
    proc = subprocess.run([str(config.ROOT / ".venv" / "bin" / "entitle"), "apikeys", "create", "bench", "--json"],
                          cwd=stack.workdir, env=stack.env, capture_output=True, text=True, check=True)
    key = json.loads(proc.stdout)["key"]
    items = [{"method": "GET", "path": f"/api/v1/users/{u}/entitlements/premium", "headers": {"Authorization": f"Bearer {key}"}}
             for u in users]
    result = client.load(stack.url, client.write_requests(items), concurrency=2, duration=20, cycle=True,
                         max_requests=4000)
    return {k: result[k] for k in ("ok", "rps", "p50_ms", "p99_ms", "statuses")}


def list_latency(stack) -> dict:
    """`entitle events list --status failed --limit 50`: the query in-process (p99 of 200) and the command's wall time."""
    code = (
        "import time, json; from app import db, inbox; from app.config import load_settings; "
        "db.bind(load_settings().database_url); t=[]\n"
        "for _ in range(200):\n"
        "    s=time.perf_counter(); rows=[inbox.event_to_dict(e) for e in inbox.list_events(status='failed', limit=50)]; "
        "t.append(time.perf_counter()-s)\n"
        "assert len(rows) == 50\n"
        "print(json.dumps(t))"
    )
    proc = subprocess.run([config.PYTHON, "-c", code], cwd=config.ROOT, env=stack.env, capture_output=True,
                          text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    out = proc.stdout
    samples = json.loads(out.strip().splitlines()[-1])
    walls = []
    for _ in range(5):
        started = time.monotonic()
        subprocess.run([str(config.ROOT / ".venv" / "bin" / "entitle"), "events", "list", "--status", "failed", "--limit",
                        "50", "--json"], cwd=stack.workdir, env=stack.env, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.monotonic() - started)
    return {"query_p50_ms": percentile(samples, 50) * 1000, "query_p99_ms": percentile(samples, 99) * 1000,
            "command_wall_s": sorted(walls)[len(walls) // 2]}


def replay(stack) -> dict:
    """`entitle events replay --failed` on 10,000 failed payments: the command's time and the time until all are granted."""
    from bench import tally

    users = list(range(FAILED_USER_BASE, FAILED_USER_BASE + FAILED))
    started = time.monotonic()
    proc = subprocess.run([str(config.ROOT / ".venv" / "bin" / "entitle"), "events", "replay", "--failed", "--no-wait"],
                          cwd=stack.workdir, env=stack.env, capture_output=True, text=True)
    command = time.monotonic() - started
    waited = tally.wait_for_grants(stack.sql, users, timeout=600)
    failed_left = stack.sql("SELECT COUNT(*) FROM event WHERE status = 'failed'")[0][0]
    return {"command_s": command, "exit_code": proc.returncode, "progress_bar": "replaying" in proc.stderr,
            "all_granted_s": (time.monotonic() - started) if waited is not None else None, "failed_left": failed_left}


def run(stack) -> dict:
    """Load the data, then measure lookups, listing and replay while watching peak RSS."""
    timings = load(stack)
    stack.start_workers("workers.main")
    rng = random.Random(9)
    with PeakRss(lambda: stack.web_workers()) as web_rss, PeakRss(lambda: stack.worker_processes()) as worker_rss:
        me = me_latency(stack, [1_000 + rng.randrange(SCALE_USERS) for _ in range(300)])
        check = check_latency(stack, [1_000 + rng.randrange(SCALE_USERS) for _ in range(1000)])
        listing = list_latency(stack)
        replayed = replay(stack)
    stack.stop_workers()
    return {"events": SCALE_EVENTS, "users": SCALE_USERS, "failed": FAILED, "load": timings, "me": me, "check": check,
            "list": listing, "replay": replayed, "web_peak_rss_mb": web_rss.max_mb, "worker_peak_rss_mb": worker_rss.max_mb}


def render(summary: dict) -> str:
    """The scale table."""
    me, listing, rep = summary["me"], summary["list"], summary["replay"]
    verdict = lambda ok: "met" if ok else "missed"  # noqa: E731
    rows = [
        ["`GET /api/me` (2 in flight)", f"p50 {me['p50_ms']:.1f} ms, p99 {me['p99_ms']:.1f} ms", "p99 < 20 ms",
         verdict(me["p99_ms"] < 20)],
    ]
    if "check" in summary:
        check = summary["check"]
        rows.append([f"`GET /api/v1/users/{{id}}/entitlements/premium` at {summary['users']:,} users (2 in flight)",
                     f"p50 {check['p50_ms']:.1f} ms, p99 {check['p99_ms']:.1f} ms", "p99 < 10 ms", verdict(check["p99_ms"] < 10)])
    rows += [
        ["`events list --status failed --limit 50`: the query", f"p50 {listing['query_p50_ms']:.1f} ms, p99 {listing['query_p99_ms']:.1f} ms",
         "p99 < 20 ms", verdict(listing["query_p99_ms"] < 20)],
        ["the same, whole command (interpreter start included)", f"{listing['command_wall_s']:.2f} s", "—", "—"],
        [f"`events replay --failed` ({summary['failed']:,} events): command, progress bar "
         f"{'shown' if rep['progress_bar'] else 'missing'}", f"{rep['command_s']:.1f} s", "< 60 s", verdict(rep["command_s"] < 60)],
        ["the same, until every replayed payment is granted",
         f"{rep['all_granted_s']:.1f} s" if rep["all_granted_s"] else "not within 600 s", "< 60 s",
         verdict(bool(rep["all_granted_s"]) and rep["all_granted_s"] < 60)],
        ["peak RSS of a gunicorn worker", f"{summary['web_peak_rss_mb']:.0f} MB", "< 100 MB", verdict(summary["web_peak_rss_mb"] < 100)],
        ["peak RSS of a Dramatiq worker process", f"{summary['worker_peak_rss_mb']:.0f} MB", "< 100 MB",
         verdict(summary["worker_peak_rss_mb"] < 100)],
    ]
    return table(["measure", "figure", "target", "verdict"], rows)
