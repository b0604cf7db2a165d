"""`entitle run`, `entitle worker` and `entitle status`."""
from __future__ import annotations

import logging
import os
from typing import Optional

import typer
from rich.text import Text

from app import db, inbox, migrations
from app.config import ConfigError, check_for_startup, mask_url, production_problems
from app.plans import PlanError
from cli import context
from cli.output import console, fail, print_json, styled, table


def run(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default: PORT or 8000)."),
    worker_threads: int = typer.Option(2, "--worker-threads", min=1, help="Embedded worker threads."),
) -> None:
    """Serve the web app, with an embedded worker when no BROKER_URL is set."""
    from werkzeug.serving import make_server

    from webapp import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = context.settings()
    try:
        check_for_startup(settings)
    except ConfigError as exc:
        fail(str(exc))
    context.database()
    if settings.database_url.startswith("sqlite"):
        for m in migrations.migrate():
            console.print(f"applied migration {m.version:04d} {m.name}")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from app.host_metrics import forget_gone_processes

        forget_gone_processes(os.environ["PROMETHEUS_MULTIPROC_DIR"])  # an earlier run's counts are not added again
    runtime = context.runtime()
    try:
        app = create_app(runtime=runtime)
    except PlanError as exc:
        fail(str(exc))
    port = port or settings.port
    worker = None
    if settings.embedded_broker:
        import dramatiq

        worker = dramatiq.Worker(runtime.broker, worker_threads=worker_threads, worker_timeout=200)
        worker.start()
    server = make_server(host, port, app, threaded=True)
    console.print(f"entitle listening on [bold]http://{host}:{server.port}[/]")
    console.print(f"database: {mask_url(settings.database_url)}")
    console.print(f"broker:   {'embedded (worker runs in this process)' if worker else mask_url(settings.broker_url)}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if worker is not None:
            worker.stop(timeout=10000)
        console.print("stopped")


def worker(
    processes: int = typer.Option(2, "--processes", "-p", min=1, envvar="WORKER_PROCESSES", help="Worker processes (WORKER_PROCESSES)."),
    threads: int = typer.Option(4, "--threads", "-t", min=1, envvar="WORKER_THREADS", help="Threads per process (WORKER_THREADS)."),
    queues: Optional[str] = typer.Option(
        None, "--queues", "-Q", help="Comma-separated queues to consume (default: WORKER_QUEUES, else all: payments, access, sessions)."
    ),
) -> None:
    """Run supervised worker processes for the configured broker: a process that dies is logged with its cause and restarted."""
    from workers.runtime import PROVIDER_TABLES
    from workers.supervisor import supervise

    settings = context.settings()
    known = inbox.Handlers(PROVIDER_TABLES).queues()
    if queues is not None:
        chosen = tuple(q.strip() for q in queues.split(",") if q.strip())
        unknown = [q for q in chosen if q not in known]
        if unknown or not chosen:
            raise typer.BadParameter(f"unknown queue {', '.join(unknown) or '(none named)'}; the queues are {', '.join(known)}", param_hint="--queues")
    else:
        chosen = settings.worker_queues
        unknown = [q for q in chosen if q not in known]
        if unknown:
            fail(f"WORKER_QUEUES names unknown queue {', '.join(unknown)}; the queues are {', '.join(known)}")
    try:
        check_for_startup(settings)
    except ConfigError as exc:
        fail(str(exc))
    if settings.embedded_broker:
        fail("BROKER_URL (or REDIS_URL) is not set: the worker runs inside `entitle run`")
    from cli.metrics_dir import METRICS_DIR

    if METRICS_DIR:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR
        os.makedirs(METRICS_DIR, exist_ok=True)
    raise typer.Exit(supervise(processes, threads, chosen, all_queues=known))


def _workers_report(settings, database_ok: bool) -> dict:
    """Workers seen through their heartbeats; none alive fails the status when a broker is configured."""
    from app import heartbeats
    from app.clock import iso

    within = int(heartbeats.ALIVE_WITHIN.total_seconds())
    if not database_ok:
        return {"state": "unknown (database down or not migrated)", "alive": 0, "within_seconds": within, "last_seen": None}
    try:
        seen = heartbeats.seen()
    except Exception as exc:
        return {"state": f"unknown: {type(exc).__name__}", "alive": 0, "within_seconds": within, "last_seen": None}
    if seen.ok:
        state = "ok"
    else:
        # Without a broker the worker runs inside `entitle run`; not running it is not a failure.
        state = "none (embedded)" if settings.embedded_broker else "none alive"
    return {"state": state, "alive": seen.alive, "within_seconds": within, "last_seen": iso(seen.last_seen)}


def _reconcile_report(database_ok: bool) -> dict:
    """The last reconciliation with each provider's ledger: when, what it found and recorded."""
    from app.reconcile import runs

    if not database_ok:
        return {}
    try:
        return runs.last_runs()
    except Exception as exc:
        return {"error": f"unknown: {type(exc).__name__}"}


def _reconcile_line(provider: str, run: dict) -> Text:
    if not run.get("last_run"):
        return Text(f"reconcile {provider}: never run")
    # A provider's error is quoted as text, never read as markup.
    outcome = styled(f"failed: {run['error']}", "red") if run.get("error") else (
        f"{run.get('found', 0)} found, {run.get('known', 0)} known, {run.get('recorded', 0)} recorded"
    )
    return Text.assemble(f"reconcile {provider}: {run['last_run']}, ", outcome)


def _webhooks_report(settings, database_ok: bool) -> list[dict]:
    """Each live outgoing-webhook endpoint's health (`failing`, `late` or `ok`)."""
    from app.webhooks import health

    if not database_ok:
        return []
    try:
        return [row.to_dict() for row in health.report(settings.webhook_late_after)]
    except Exception:  # the database went away since it answered above; its own line says so
        return []


def _webhook_line(endpoint: dict) -> str:
    from rich.markup import escape

    details = [f"{endpoint['pending']} pending"]
    if endpoint["retrying"]:
        details.append(f"{endpoint['retrying']} retrying after a failed attempt")
    if endpoint["oldest_due_seconds"]:
        details.append(f"oldest due {endpoint['oldest_due_seconds']:.0f} s ago")
    if endpoint["last_error"]:
        details.append(f"last error: {endpoint['last_error']}")
    return f"  endpoint {endpoint['id']} {escape(endpoint['url'])}: [red]{endpoint['state']}[/] ({escape(', '.join(details))})"


def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Configuration (secrets masked), database, broker, queue depths, workers alive, pending and failed events."""
    from workers.broker import ping, queue_depths

    settings = context.settings()
    report: dict = {"config": settings.masked(), "problems": production_problems(settings) if settings.production else []}
    healthy = not report["problems"]
    context.database()
    try:
        db.ping()
        waiting = migrations.pending()
        report["database"] = {"state": "ok", "pending_migrations": [m.version for m in waiting]}
        report["events"] = inbox.counts() if not waiting else {}
    except Exception as exc:
        healthy = False
        report["database"] = {"state": f"down: {type(exc).__name__}"}
        report["events"] = {}
    report["workers"] = _workers_report(settings, not report["database"].get("pending_migrations", [None]))
    report["reconcile"] = _reconcile_report(not report["database"].get("pending_migrations", [None]))
    if report["workers"]["state"] == "none alive":
        healthy = False
    report["webhooks"] = _webhooks_report(settings, not report["database"].get("pending_migrations", [None]))
    if any(endpoint["state"] != "ok" for endpoint in report["webhooks"]):
        healthy = False
    if settings.embedded_broker:
        # The in-memory broker lives inside `entitle run`; this process's own copy says nothing.
        report["broker"] = {"state": "embedded", "kind": "the worker runs inside `entitle run`"}
    else:
        runtime = context.runtime()
        broker = runtime.broker
        try:
            ping(broker)
            report["broker"] = {"state": "ok", "kind": type(broker).__name__, "queues": queue_depths(broker, runtime.queues())}
        except Exception as exc:
            healthy = False
            report["broker"] = {"state": f"down: {type(exc).__name__}", "kind": type(broker).__name__}
    if as_json:
        print_json(report)
    else:
        console.print(table("Configuration", ["setting", "value"], report["config"].items()))
        for problem in report["problems"]:
            console.print(f"[red]config: {problem}[/]", highlight=False)
        console.print(f"database: {report['database']['state']}", highlight=False)
        if report["database"].get("pending_migrations"):
            console.print(f"  [yellow]migrations pending: {report['database']['pending_migrations']}[/]")
        console.print(f"broker:   {report['broker']['state']} ({report['broker']['kind']})", highlight=False)
        for queue, depth in report["broker"].get("queues", {}).items():
            console.print(f"  queue {queue}: {depth} waiting")
        seen = report["workers"]
        style = "green" if seen["state"] == "ok" else ("yellow" if seen["state"] == "none (embedded)" else "red")
        last = f", last seen {seen['last_seen']}" if seen.get("last_seen") else ""
        console.print(f"workers:  [{style}]{seen['alive']} alive[/] in the last {seen['within_seconds']} s{last}", highlight=False)
        if report["events"]:
            ev = report["events"]
            style = "red" if ev.get("failed") else "green"
            console.print(f"events:   {ev['pending']} pending, [{style}]{ev['failed']} failed[/], {ev['processed']} processed, {ev['ignored']} ignored")
        for provider, run in report["reconcile"].items():
            if isinstance(run, dict):
                console.print(_reconcile_line(provider, run), highlight=False)
        if report["webhooks"]:
            troubled = [endpoint for endpoint in report["webhooks"] if endpoint["state"] != "ok"]
            style = "red" if troubled else "green"
            console.print(f"webhooks: {len(report['webhooks'])} endpoints, [{style}]{len(troubled)} failing or late[/]", highlight=False)
            for endpoint in troubled:
                console.print(_webhook_line(endpoint), highlight=False)
    if not healthy:
        raise typer.Exit(1)
