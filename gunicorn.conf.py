"""Gunicorn settings read from the working directory (the Procfile's `web:`)."""
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
accesslog = "-"
# Telegram waits at most ~10 s for pre_checkout_query answers; never hold a request longer.
timeout = 30
# Header lines up to 64 KiB reach the app, which answers one over 8 KiB with 431 in the JSON error shape
# (webapp/headers.py); only a longer one meets gunicorn's own HTML page, since gunicorn parses before any app code.
limit_request_field_size = 65536


def on_starting(server):
    """Clear the metrics directory of an earlier run, whose files would otherwise be counted again."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from app.host_metrics import forget_gone_processes

        forget_gone_processes(directory)


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the shared metrics directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
