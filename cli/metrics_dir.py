"""Keeps an operator's command out of the processes `/metrics` aggregates (imported first by `cli`).

prometheus-client reads `PROMETHEUS_MULTIPROC_DIR` at import: a CLI run's counters stay in memory,
so it leaves no file in the shared directory. `entitle run` serves the web app, which reads that
directory and counts into it like any web process, so it keeps the variable; `entitle worker`
hands the directory on to the workers it starts.
"""
from __future__ import annotations

import os
import sys

SERVES_METRICS = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None) == "run"
METRICS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") if SERVES_METRICS else os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
if SERVES_METRICS and METRICS_DIR:
    os.makedirs(METRICS_DIR, exist_ok=True)
