"""Dramatiq's own `dramatiq_*` metrics, written where `/metrics` reads them and served nowhere else.

Import this only after setting `dramatiq_prom_db`: Dramatiq reads it once, when its Prometheus
module is first imported.
"""
from __future__ import annotations

import os

from dramatiq.middleware.prometheus import Prometheus


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
