"""One worker process, as `entitle worker` starts each of its children: `python -m workers.process --threads N --queues Q,…`.

It builds the runtime (`workers.main`) and runs a Dramatiq worker over the chosen queues
(all when none are named) until SIGTERM, then lets the messages in hand finish. The process
that supervises it (`workers.supervisor`) logs its death with the cause and starts it again.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

# Exit codes the supervisor reads (the same as Dramatiq's own `dramatiq` command).
EXIT_OK = 0
EXIT_START_FAILED = 2  # the module or the configuration cannot be loaded: starting again cannot help
EXIT_BROKER_UNREACHABLE = 3

log = logging.getLogger("entitle.worker")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers.process", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--queues", default="", help="comma-separated; empty: every queue")
    parser.add_argument("--shutdown-timeout", type=int, default=30_000, help="milliseconds messages in hand get at SIGTERM")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one worker process until SIGTERM; returns its exit code."""
    args = _arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    stop = threading.Event()
    # Ctrl-C reaches the whole process group: the supervisor turns it into one SIGTERM per child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    try:
        import dramatiq
        from dramatiq.errors import BrokerConnectionError
        from dramatiq.middleware import MiddlewareError

        from workers import main as wiring  # builds the runtime for the environment's settings
    except Exception:
        log.exception("the worker cannot start")
        return EXIT_START_FAILED
    broker = wiring.broker
    queues = {q for q in args.queues.split(",") if q} or None
    try:
        broker.emit_after("process_boot")
        worker = dramatiq.Worker(broker, queues=queues, worker_threads=args.threads)
        worker.start()
    except MiddlewareError as exc:  # a production secret missing, a broken plan file
        log.error("the worker cannot start: %s", exc)
        return EXIT_START_FAILED
    except BrokerConnectionError:
        log.exception("the worker cannot reach the broker")
        return EXIT_BROKER_UNREACHABLE
    log.info("worker process ready: %d thread(s) on %s", args.threads, ", ".join(sorted(queues or wiring.runtime.queues())))
    while not stop.wait(1):
        pass
    log.info("stopping: letting the messages in hand finish")
    worker.stop(timeout=args.shutdown_timeout)
    broker.close()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
