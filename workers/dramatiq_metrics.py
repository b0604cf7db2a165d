"""Dramatiq's own `dramatiq_*` metrics, written where `/metrics` reads them and served nowhere else.

Set `dramatiq_prom_db` before importing this where Dramatiq's own code should use that directory:
Dramatiq reads it once, when its Prometheus module is first imported.
"""
from __future__ import annotations

import os
import tempfile

# Dramatiq's module creates `dramatiq_prom_db` (default: TMPDIR/dramatiq-prometheus) when first imported.
# Unless a caller chose that directory, let it "create" one that exists, so importing this creates no file.
_CHOSEN = os.environ.get("dramatiq_prom_db")
if _CHOSEN is None:
    os.environ["dramatiq_prom_db"] = tempfile.gettempdir()
try:
    from dramatiq.middleware.prometheus import Prometheus
finally:
    if _CHOSEN is None:
        os.environ.pop("dramatiq_prom_db", None)


class DramatiqMetrics(Prometheus):
    """Dramatiq's Prometheus middleware without its exposition server, writing to the multiprocess directory."""

    def __init__(self, directory: str):
        super().__init__()
        self.directory = directory
        self.ready = False
        # Set up now, not only at Dramatiq's process boot: `entitle run` and in-process workers have none.
        self.after_process_boot(None)

    @property
    def forks(self):
        """Nothing to fork: the parent forks an HTTP server on `dramatiq_prom_host:port` (0.0.0.0:9191)."""
        return []

    def after_process_boot(self, broker):
        """Declare Dramatiq's metrics once, keeping the multiprocess directory ours."""
        if self.ready:
            return
        super().after_process_boot(broker)
        # The parent points both variables at its DB_PATH; samples must land where `/metrics` reads.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["prometheus_multiproc_dir"] = self.directory
        self.ready = True

    def after_worker_shutdown(self, broker, worker):
        """Drop this process's live gauges from the directory."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), self.directory)
