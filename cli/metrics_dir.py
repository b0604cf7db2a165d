"""Keeps a CLI run out of the processes `/metrics` aggregates (imported first by `cli`).

prometheus-client reads `PROMETHEUS_MULTIPROC_DIR` at import: a CLI run's counters stay in memory,
so it leaves no file in the shared directory. `entitle worker` hands the directory on to the
workers it starts.
"""
from __future__ import annotations

import os

METRICS_DIR = os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
