"""Metrics aggregate across processes on one host (gunicorn workers and Dramatiq workers)."""
from __future__ import annotations

import os
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT

BUMP = "from app import metrics; metrics.entitlements_granted.labels(source='telegram').inc({n}); metrics.events_processed.labels(provider='stripe', result='processed').inc()"
READ = "import sys; from app import metrics; sys.stdout.write(metrics.exposition()[0].decode())"


def run(code: str, env: dict) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout


def test_counters_from_separate_processes_add_up(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    run(BUMP.format(n=2), env)
    run(BUMP.format(n=3), env)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(run(READ, env))
        for s in family.samples
    }
    assert samples[("entitlements_granted_total", (("source", "telegram"),))] == 5
    assert samples[("events_processed_total", (("provider", "stripe"), ("result", "processed")))] == 2
