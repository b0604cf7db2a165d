"""A no-op actor on the project's broker: the ceiling of the end-to-end benchmark.

Loaded beside `workers.main` (`dramatiq workers.main bench.noop`), so it runs on the same broker, with the
same middleware, processes and threads. Each message only counts itself in Redis.
"""
from __future__ import annotations

import os

import dramatiq

import workers.main  # noqa: F401  (builds the runtime and sets its broker)

COUNTER = f"{os.environ.get('BROKER_NAMESPACE', 'entitle')}:bench:noop"
_client = None


def _redis():
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(os.environ["BROKER_URL"])
    return _client


@dramatiq.actor(actor_name="bench_noop", queue_name="events", max_retries=0)
def bench_noop() -> None:
    """Do nothing but count the message as done."""
    _redis().incr(COUNTER)


def main(argv: list[str]) -> None:
    """`python -m bench.noop N`: enqueue N no-op messages and exit."""
    for _ in range(int(argv[0])):
        bench_noop.send()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
