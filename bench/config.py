"""Sizes, secrets and switches shared by the benchmarks and the fault scenarios."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = os.environ.get("BENCH_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
FULL = os.environ.get("BENCH_FULL") == "1"

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_BASE_URL = os.environ.get("BENCH_PG_BASE_URL", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE = os.environ.get("BENCH_DATABASE", "entitle_bench")  # a name of its own when several benches share a server

# Secrets of the benchmark's own service: long and random-looking, so production mode accepts them.
BOT_TOKEN = "7000000001:AAbenchbenchbenchbenchbenchbenchbench"
TELEGRAM_SECRET = "bench-telegram-webhook-secret-0123456789"
STRIPE_KEY = "sk_test_entitle_fake_0000000000000000"
STRIPE_SECRET = "whsec_benchbenchbenchbenchbenchbench0123"
JWT_SECRET = "bench-jwt-secret-key-that-is-long-enough-for-hs256-0123456789"


def size(default: int, full: int) -> int:
    """`full` with BENCH_FULL=1, else `default`."""
    return full if FULL else default


RUNS = int(os.environ.get("BENCH_RUNS", "3"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
RUN_SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
