"""A real HTTP endpoint for outgoing webhooks that verifies each one with the reference `standardwebhooks` library.

The suite's `receiver` fixture (tests/conftest.py) serves one per test. It can be told to answer
500 to the next N requests or until told otherwise, to answer slowly, or to redirect; it records
what it accepted (parsed) and every request it saw.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Received:
    """One request as it arrived: headers, raw body, and whether the library verified it."""

    path: str
    headers: dict
    body: bytes
    verified: bool
    answered: int

    @property
    def message(self) -> dict:
        """The parsed body."""
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Serve on 127.0.0.1 on a free port; `secret` must be set before messages arrive."""

    secret: str | None = None
    failures_left: int = 0  # answer 500 to this many more requests
    down: bool = False  # answer 500 until set back to False
    delay: float = 0.0  # seconds to wait before answering
    redirect_to: str | None = None  # answer 302 with this Location
    requests: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> "WebhookReceiver":
        """Start serving in a thread."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server hook
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver._handle(self, body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        """The address to register as an endpoint."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def verify(self, body: bytes, headers: dict) -> bool:
        """Whether the reference library accepts this body and these headers under the secret."""
        try:
            Webhook(self.secret).verify(body, headers)
            return True
        except WebhookVerificationError:
            return False

    def _handle(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = self.verify(body, headers)
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            status = self._status(verified)
            self.requests.append(Received(request.path, headers, body, verified, status))
        request.send_response(status)
        if status == 302:
            request.send_header("Location", self.redirect_to)
        request.send_header("Content-Length", "0")
        request.end_headers()

    def _status(self, verified: bool) -> int:
        if self.redirect_to:
            return 302
        if self.down:
            return 500
        if self.failures_left > 0:
            self.failures_left -= 1
            return 500
        return 200 if verified else 401

    @property
    def accepted(self) -> list[dict]:
        """Messages answered 2xx, in the order they arrived, parsed."""
        with self._lock:
            return [r.message for r in self.requests if 200 <= r.answered < 300]


# Retries in milliseconds, a worker that looks for due deliveries often, and a short timeout.
FAST_WEBHOOKS = {
    "WEBHOOK_RETRY_SCHEDULE": "0.05,0.1,0.2,0.3,0.5,0.8,1,1,1,1",
    "WEBHOOK_POLL_INTERVAL": "0.05",
    "WEBHOOK_TIMEOUT": "1",
}


# For tests of delivery itself: the messages payments write, without the transitions' messages beside them.
PAYMENT_TYPES = ("payment.succeeded", "payment.refunded")


def add_endpoint(cli, receiver: WebhookReceiver, *events: str) -> int:
    """`entitle webhooks add` the receiver (with `--event` filters); gives it the printed secret and returns the id."""
    args = ["webhooks", "add", receiver.url, "--json"]
    for event in events:
        args += ["--event", event]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    added = json.loads(result.stdout)
    receiver.secret = added["secret"]
    return added["id"]
