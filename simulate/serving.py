"""What the stand-ins share: one HTTP server served in a background thread, with `with`, and its address."""
from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: object, headers: Mapping[str, str] = {}) -> None:
    """Answer a request with a JSON body and any extra headers."""
    data = json.dumps(payload).encode("utf-8")
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


class Served:
    """Serves `_make_server()` in a daemon thread from `start()` until `stop()`; `url` is its base address."""

    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    thread_name = "entitle-stand-in"

    def _make_server(self) -> ThreadingHTTPServer:
        raise NotImplementedError

    def start(self):
        """Listen and serve in a background thread (once); raises OSError when the port is taken."""
        if self._server is None:
            self._server = self._make_server()
            # A short poll interval so stop() returns at once instead of after up to half a second.
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name=self.thread_name, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base address, e.g. `http://127.0.0.1:8001`."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"
