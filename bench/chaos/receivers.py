"""Hostile webhook receivers beside a healthy one: the healthy endpoint's delivery latency alone, then beside them.

Two runs of the same payments against a fresh database, each with a healthy endpoint that
answers 200 at once; the second also has an endpoint that trickles one header byte every 5 s
and one that takes the request and never answers, every endpoint receiving every
`payment.succeeded`. A delivery's latency is from the message's `timestamp` (written in the
payment's transaction) to its arrival at the healthy receiver. WEBHOOK_TIMEOUT keeps its
production default (10 s), so each hostile attempt holds its connection until that deadline.
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench import client, config, payloads, report
from simulate.hostile_receivers import HANG, TRICKLE, HostileReceiver

PAYMENTS = config.size(300, 2000)
RATE = 30  # payments per second, open loop
TRICKLE_EVERY = 5.0  # seconds between the trickling receiver's bytes, as the attack that found the stall used
SETTLE = 120  # seconds allowed for the healthy endpoint to receive every message after the load ends
# p99 beside hostile receivers may exceed p99 alone by this factor, or by this many seconds, whichever is more.
P99_FACTOR, P99_SLACK_S = 1.5, 0.5


class _HealthyReceiver:
    """Answers 200 at once and notes when each message arrived, by its `webhook-id`."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}  # webhook-id -> seconds from the message's timestamp to arrival
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server hook
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.time()
                written = datetime.fromisoformat(json.loads(body)["timestamp"].rstrip("Z")).replace(tzinfo=timezone.utc)
                with receiver._lock:
                    receiver.arrived.setdefault(self.headers["webhook-id"], now - written.timestamp())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    @property
    def url(self) -> str:
        """The address to register."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def latencies(self) -> list[float]:
        """Seconds each message took, in arrival order."""
        with self._lock:
            return list(self.arrived.values())

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def _add_endpoint(stack, url: str) -> None:
    entitle = str(config.ROOT / ".venv" / "bin" / "entitle")
    subprocess.run([entitle, "webhooks", "add", url, "--event", "payment.succeeded", "--json"], env=stack.env,
                   cwd=stack.workdir, check=True, stdout=subprocess.DEVNULL)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _run(stack, first_user: int, hostile: bool) -> dict:
    stack.reset()
    stack.start_workers("workers.main")
    healthy = _HealthyReceiver()
    others = [HostileReceiver(TRICKLE, every=TRICKLE_EVERY).start(), HostileReceiver(HANG).start()] if hostile else []
    try:
        for url in [healthy.url] + [r.url for r in others]:
            _add_endpoint(stack, url)
        time.sleep(1.5)  # each process reads the endpoints at most once a second
        paid = payloads.payments(PAYMENTS, first_user)
        started = time.monotonic()
        result = client.load(stack.url, client.write_requests([p.request for p in paid]), rate=RATE, duration=600)
        accepted = sum(1 for s in result["final"] if s is not None and s < 300)
        deadline = time.monotonic() + SETTLE
        while len(healthy.latencies()) < accepted and time.monotonic() < deadline:
            time.sleep(0.2)
        latencies = healthy.latencies()
        held = [h for r in others for h in r.held]
        return {
            "hostile": hostile, "payments_accepted": accepted, "healthy_received": len(latencies),
            "p50_s": _percentile(latencies, 0.50), "p99_s": _percentile(latencies, 0.99),
            "max_s": max(latencies, default=float("nan")), "seconds": time.monotonic() - started,
            "hostile_attempts": sum(r.connections for r in others), "hostile_longest_attempt_s": max(held, default=0.0),
        }
    finally:
        for receiver in others:
            receiver.stop()
        healthy.stop()


def run(stack, first_user: int) -> dict:
    """Both runs, and whether the healthy endpoint's p99 beside hostile receivers stayed within bounds."""
    alone = _run(stack, first_user, hostile=False)
    beside = _run(stack, first_user + PAYMENTS, hostile=True)
    bound = max(alone["p99_s"] * P99_FACTOR, alone["p99_s"] + P99_SLACK_S)
    ok = (alone["healthy_received"] == alone["payments_accepted"] == PAYMENTS
          and beside["healthy_received"] == beside["payments_accepted"] == PAYMENTS and beside["p99_s"] <= bound)
    return {"alone": alone, "beside": beside, "p99_bound_s": bound, "ok": ok}


def render(result: dict) -> str:
    """One row per run."""
    rows = []
    for name, r in (("healthy endpoint alone", result["alone"]),
                    ("beside a trickling (1 byte / 5 s) and a hanging endpoint", result["beside"])):
        rows.append([name, r["payments_accepted"], r["healthy_received"], f"{r['p50_s']:.3f}", f"{r['p99_s']:.3f}",
                     f"{r['max_s']:.3f}", r["hostile_attempts"] or "—",
                     f"{r['hostile_longest_attempt_s']:.1f}" if r["hostile"] else "—"])
    text = report.table(["run", "payments accepted", "messages at the healthy endpoint", "p50 s", "p99 s", "max s",
                         "attempts at hostile endpoints", "longest hostile attempt s"], rows)
    verdict = "pass" if result["ok"] else "FAIL"
    return text + (f"\n\nVerdict: {verdict} (p99 beside them must stay within {result['p99_bound_s']:.3f} s: "
                   f"{P99_FACTOR}× the p99 alone or {P99_SLACK_S} s more, whichever is larger).")
