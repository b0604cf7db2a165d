"""The service under test: a PostgreSQL database, fake providers, gunicorn and Dramatiq, each a process."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg2
import requests

from bench import config
from bench.procs import alive, children, free_port, signal_group, wait_port

TABLES = ("ledger_entry", "grant", "event_log", "event", "user")  # CASCADE empties the tables that refer to them


def ensure_database(name: str) -> str:
    """Create the database `name` when missing; return its URL."""
    conn = psycopg2.connect(config.PG_ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return f"{config.PG_BASE_URL}/{name}"


def wait_postgres(timeout: float = 60.0) -> None:
    """Return once PostgreSQL accepts connections again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg2.connect(config.PG_ADMIN_URL, connect_timeout=2).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Stack:
    """Everything one benchmark or fault scenario runs against, started and stopped as processes."""

    def __init__(self, database: str = "entitle_bench", broker_url: str | None = None, **extra_env: str):
        self.database = database
        self.database_url = ensure_database(database)
        self.namespace = f"entitle-bench-{uuid.uuid4().hex[:8]}"
        self.broker_url = broker_url or config.REDIS_URL
        self.workdir = Path(tempfile.mkdtemp(prefix="entitle-bench-"))
        self.metrics_dir = self.workdir / "metrics"
        self.metrics_dir.mkdir()
        self.extra_env = extra_env
        self.fakes: subprocess.Popen | None = None
        self.web: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.web_port = free_port()
        self.urls: dict[str, str] = {}
        self.code_root = config.ROOT  # where web and workers import the service from (another tree for a baseline)

    # -- environment ---------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """The environment every process of the service runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "PYTEST"))}
        env.update(
            DATABASE_URL=self.database_url,
            BROKER_URL=self.broker_url,
            BROKER_NAMESPACE=self.namespace,
            TELEGRAM_BOT_TOKEN=config.BOT_TOKEN,
            TELEGRAM_WEBHOOK_SECRET=config.TELEGRAM_SECRET,
            TELEGRAM_API_URL=self.urls.get("telegram", "http://127.0.0.1:9"),
            STRIPE_SECRET_KEY=config.STRIPE_KEY,
            STRIPE_WEBHOOK_SECRET=config.STRIPE_SECRET,
            STRIPE_API_BASE=self.urls.get("stripe", "http://127.0.0.1:9"),
            JWT_SECRET_KEY=config.JWT_SECRET,
            ENTITLE_ENV="production",
            PLANS_FILE=str(config.ROOT / "plans.toml"),
            PROMETHEUS_MULTIPROC_DIR=str(self.metrics_dir),
            PYTHONPATH=str(config.ROOT),
            PYTHONUNBUFFERED="1",
        )
        env.pop("REDIS_URL", None)
        env.update(self.extra_env)
        return env

    @property
    def url(self) -> str:
        """The web server's base address."""
        return f"http://127.0.0.1:{self.web_port}"

    def _log(self, name: str):
        return open(self.workdir / f"{name}.log", "ab")

    # -- database ------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema up to date."""
        subprocess.run([str(config.ROOT / ".venv" / "bin" / "entitle"), "db", "migrate"], env=self.env, cwd=self.workdir,
                       check=True, stdout=subprocess.DEVNULL)

    def reset(self) -> None:
        """Empty every table and the broker's queues."""
        self.sql(f"TRUNCATE {', '.join(chr(34) + t + chr(34) for t in TABLES)} RESTART IDENTITY CASCADE")
        self.sql('TRUNCATE "webhook_endpoint", "api_key", "reconcile_state" RESTART IDENTITY CASCADE')
        self.flush_broker()

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """Run one statement on the service's database; rows when it returns any."""
        conn = psycopg2.connect(self.database_url)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def flush_broker(self) -> None:
        """Delete every key of this stack's broker namespace."""
        import redis

        client = redis.Redis.from_url(self.broker_url)
        keys = list(client.scan_iter(f"{self.namespace}*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i:i + 500])

    # -- processes -----------------------------------------------------------------------

    def start_fakes(self) -> None:
        """Start the fake Bot API and Stripe API and note their addresses."""
        self.fakes = subprocess.Popen([config.PYTHON, "-m", "bench.fakes"], cwd=config.ROOT, env=self.env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log("fakes"))
        self.urls = json.loads(self.fakes.stdout.readline())
        from bench import payloads

        payloads.use_sandbox(self.urls["stripe"])

    def start_web(self, app: str = "webapp:create_app()", workers: int = 2) -> None:
        """gunicorn with the project's gunicorn.conf.py, `workers` sync workers, on a loopback port."""
        self.stop_web()
        for f in self.metrics_dir.glob("*.db"):
            f.unlink()
        self.web = subprocess.Popen(
            [str(config.ROOT / ".venv" / "bin" / "gunicorn"), "-c", str(config.ROOT / "gunicorn.conf.py"),
             "--bind", f"127.0.0.1:{self.web_port}", "--workers", str(workers), "--backlog", "2048", *os.environ.get("BENCH_GUNICORN_ARGS", "").split(), app],
            cwd=self.code_root, env=self.env, stdout=self._log("web"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_port(self.web_port)
        deadline = time.monotonic() + 30
        while len(self.web_workers()) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        # Warm every worker: the first /api/plans reads the card prices from Stripe (the fake) once per process.
        for _ in range(20):
            if requests.get(f"{self.url}/api/plans", timeout=60).ok:
                break
            time.sleep(0.1)

    def web_workers(self) -> list[int]:
        """Pids of gunicorn's worker processes."""
        return children(self.web.pid) if self.web and self.web.poll() is None else []

    def start_workers(self, *modules: str, processes: int = 2, threads: int = 4, wait: bool = True) -> None:
        """`dramatiq workers.main` with `processes` processes of `threads` threads (the Procfile's `worker:`)."""
        self.stop_workers()
        log = self.workdir / "worker.log"
        before = log.read_text(errors="replace").count("ready for action") if log.exists() else 0
        self.worker = subprocess.Popen(
            [config.PYTHON, "-m", "dramatiq", *modules, "--processes", str(processes), "--threads", str(threads)],
            cwd=self.code_root, env=self.env, stdout=self._log("worker"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        if wait:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if log.read_text(errors="replace").count("ready for action") >= before + processes:
                    return
                time.sleep(0.1)
            raise RuntimeError(f"Dramatiq workers did not start; see {log}")

    def worker_processes(self) -> list[int]:
        """Pids of Dramatiq's worker processes (the children of `dramatiq`)."""
        return children(self.worker.pid) if self.worker and self.worker.poll() is None else []

    def kill_workers(self) -> None:
        """SIGKILL every Dramatiq process at once, mid-message."""
        if self.worker is not None:
            signal_group(self.worker.pid, signal.SIGKILL)
            self.worker.wait(10)
            self.worker = None

    def stop_workers(self) -> None:
        """Stop Dramatiq gracefully."""
        self._stop("worker")

    def stop_web(self) -> None:
        """Stop gunicorn gracefully."""
        self._stop("web")

    def _stop(self, name: str) -> None:
        proc = getattr(self, name)
        if proc is None:
            return
        signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait(10)
        setattr(self, name, None)

    def start(self, app: str = "webapp:create_app()", workers: bool = True) -> "Stack":
        """Migrate, then start the fakes, the web server and (unless told not to) the workers."""
        self.migrate()
        self.start_fakes()
        self.start_web(app)
        if workers:
            self.start_workers("workers.main")
        return self

    def stop(self) -> None:
        """Stop every process this stack started and delete its broker keys and files."""
        self.stop_workers()
        self.stop_web()
        if self.fakes is not None:
            self.fakes.terminate()
            try:
                self.fakes.wait(10)
            except subprocess.TimeoutExpired:
                self.fakes.kill()
            self.fakes = None
        try:
            self.flush_broker()
        except Exception:
            pass
        if os.environ.get("BENCH_KEEP_LOGS") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def check_alive(self) -> None:
        """Raise when the web server died."""
        if self.web is not None and not alive(self.web.pid):
            raise RuntimeError(f"gunicorn exited; see {self.workdir / 'web.log'}")
