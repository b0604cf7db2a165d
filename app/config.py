"""Configuration read from the environment and an optional `.env` file."""
from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping

from dotenv import dotenv_values

DEFAULT_DATABASE_URL = "sqlite:///entitle.db"
DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"  # PUBLIC_URL when neither it nor PORT is set
# Seconds before each retry of an outgoing webhook: about three days in all, then the delivery is `failed`.
DEFAULT_WEBHOOK_RETRY_SCHEDULE = (5.0, 60.0, 300.0, 1800.0, 7200.0, 21600.0, 43200.0, 86400.0, 86400.0)

log = logging.getLogger(__name__)

# Values that ship in examples (this module, the README) and must never guard a production deployment.
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        "", "change-me", "changeme", "secret", "dev", "development", "test", "jwt-secret", "super-secret",
        "dev-secret", "whsec_anything", "whsec_new", "whsec_old", "whsec_...", "whsec_…",
        # `entitle sandbox` prints these (and the README shows them) for local use.
        "sandbox-telegram-webhook-secret", "whsec_sandbox_stripe_webhook_secret_local_only",
    }
)
MIN_SECRET_LENGTH = 16
MIN_JWT_SECRET_LENGTH = 32  # HS256 wants a key at least as long as its 256-bit output

SECRET_NAMES = frozenset(
    {
        "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "JWT_SECRET_KEY",
        "METRICS_TOKEN",
    }
)

# Without JWT_SECRET_KEY, development signs sessions with a secret generated once and kept in this file.
DEV_JWT_SECRET_FILE = ".entitle-jwt-secret"


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message names the variable, never its value."""


_PUBLIC_PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_", "whsec_")


def mask(value: str | None) -> str:
    """Show that a secret is set, and its kind where that is public (`sk_live_`, a bot's id), never the secret."""
    if not value:
        return "(not set)"
    prefix = next((p for p in _PUBLIC_PREFIXES if value.startswith(p)), "")
    if not prefix and ":" in value and value.split(":", 1)[0].isdigit():
        prefix = value.split(":", 1)[0] + ":"  # a bot token's id half is public
    return f"{prefix}****"


@dataclass(frozen=True)
class Settings:
    """Every setting the service reads, with the contract's defaults."""

    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str | None = None
    broker_namespace: str = "entitle"
    telegram_bot_token: str | None = None
    telegram_webhook_secret: str | None = None
    telegram_api_url: str = DEFAULT_TELEGRAM_API_URL
    telegram_environment: str = "production"
    stripe_secret_key: str | None = None
    stripe_webhook_secrets: tuple[str, ...] = ()
    stripe_api_base: str | None = None
    jwt_secret_key: str = field(default="", repr=False)
    jwt_access_token_minutes: int = 15
    join_paywall_seconds: float = 600.0
    initdata_max_age: int = 900
    plans_file: str = "plans.toml"
    public_url: str = DEFAULT_PUBLIC_URL
    entitle_env: str = "development"
    port: int = 8000
    max_body_bytes: int = 1024 * 1024
    event_max_retries: int = 8
    event_min_backoff_ms: int = 1000
    event_max_backoff_ms: int = 300_000
    sweep_interval: float = 10.0
    sweep_after: float = 15.0
    sweep_lost_after: float = 30.0
    batch_rows: int = 32
    batch_seconds: float = 0.05
    prometheus_multiproc_dir: str | None = None
    redis_url: str | None = None
    metrics_host: str = ""
    metrics_host_ttl: float = 60.0
    metrics_token: str | None = field(default=None, repr=False)
    webhook_retry_schedule: tuple[float, ...] = DEFAULT_WEBHOOK_RETRY_SCHEDULE
    webhook_timeout: float = 10.0
    webhook_poll_interval: float = 1.0
    webhook_late_after: float = 60.0
    reconcile_interval: float = 900.0
    api_rate_limit: int = 600  # requests per API key per minute on /api/v1; 0: no limit
    worker_queues: tuple[str, ...] = ()  # empty: every queue
    broker_timeout: float = 2.0
    bot_api_rate: int = 20
    bot_api_chat_rate: int = 1

    @property
    def jwt_secret_file(self) -> Path:
        """Where development keeps its generated JWT secret: beside the SQLite database, else in the working directory."""
        database = sqlite_file(self.database_url)
        directory = database.parent if database else Path.cwd()
        return (directory / DEV_JWT_SECRET_FILE).absolute()

    @property
    def production(self) -> bool:
        """True when running with `ENTITLE_ENV=production`."""
        return self.entitle_env == "production"

    @property
    def embedded_broker(self) -> bool:
        """True when no broker is configured and the worker runs inside the web process."""
        return not self.broker_url

    @property
    def bot_id(self) -> int | None:
        """The bot's numeric id, the part of the token before the colon."""
        if not self.telegram_bot_token or ":" not in self.telegram_bot_token:
            return None
        head = self.telegram_bot_token.split(":", 1)[0]
        return int(head) if head.isdigit() else None

    def masked(self) -> dict[str, str]:
        """Every setting as shown to an operator, secrets masked."""
        shown: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            name = "STRIPE_WEBHOOK_SECRET" if f.name == "stripe_webhook_secrets" else f.name.upper()
            if name in SECRET_NAMES:
                if isinstance(value, tuple):
                    shown[name] = ", ".join(mask(v) for v in value) or "(not set)"
                elif f.name == "jwt_secret_key" and not value and not self.production:
                    shown[name] = f"(not set; development secret in {self.jwt_secret_file})"
                else:
                    shown[name] = mask(value)
            elif name in ("DATABASE_URL", "BROKER_URL", "REDIS_URL"):
                shown[name] = mask_url(value) if value else "(embedded)"
            elif name == "WEBHOOK_RETRY_SCHEDULE":
                shown[name] = ", ".join(f"{delay:g}" for delay in value) + " (seconds)"
            elif name == "WORKER_QUEUES":
                shown[name] = ", ".join(value) or "(all)"
            else:
                shown[name] = "" if value is None else str(value)
        return shown


def sqlite_file(url: str) -> Path | None:
    """The file of a `sqlite:///…` database URL; None for other databases and in-memory SQLite."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def mask_url(url: str) -> str:
    """Hide the password of a connection URL."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _number(env: Mapping[str, str], name: str, default, kind=int, minimum=1):
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a {'whole ' if kind is int else ''}number") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    return value


def read_environment(environ: Mapping[str, str] | None = None, env_file: str | Path = ".env") -> dict[str, str]:
    """The process environment over the values of `.env` (the environment wins)."""
    merged: dict[str, str] = {}
    path = Path(env_file)
    if path.is_file():
        merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    merged.update(os.environ if environ is None else environ)
    return merged


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | Path = ".env") -> Settings:
    """Build the settings from the environment (and `.env`)."""
    env = read_environment(environ, env_file)
    get = lambda name: (env.get(name) or "").strip() or None  # noqa: E731

    entitle_env = get("ENTITLE_ENV") or "development"
    if entitle_env not in ("development", "production", "test"):
        raise ConfigError("ENTITLE_ENV must be development, production or test")
    telegram_environment = get("TELEGRAM_ENVIRONMENT") or "production"
    if telegram_environment not in ("production", "test"):
        raise ConfigError("TELEGRAM_ENVIRONMENT must be production or test")

    webhook_secrets = tuple(s.strip() for s in (get("STRIPE_WEBHOOK_SECRET") or "").split(",") if s.strip())

    return Settings(
        database_url=get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        broker_url=get("BROKER_URL") or get("REDIS_URL"),
        broker_namespace=get("BROKER_NAMESPACE") or "entitle",
        telegram_bot_token=get("TELEGRAM_BOT_TOKEN"),
        telegram_webhook_secret=get("TELEGRAM_WEBHOOK_SECRET"),
        telegram_api_url=(get("TELEGRAM_API_URL") or DEFAULT_TELEGRAM_API_URL).rstrip("/"),
        telegram_environment=telegram_environment,
        stripe_secret_key=get("STRIPE_SECRET_KEY"),
        stripe_webhook_secrets=webhook_secrets,
        stripe_api_base=(get("STRIPE_API_BASE") or "").rstrip("/") or None,
        jwt_secret_key=get("JWT_SECRET_KEY") or "",
        jwt_access_token_minutes=_number(env, "JWT_ACCESS_TOKEN_MINUTES", 15),
        join_paywall_seconds=_number(env, "JOIN_PAYWALL_SECONDS", 600.0, float, 1),
        initdata_max_age=_number(env, "INITDATA_MAX_AGE", 900),
        plans_file=get("PLANS_FILE") or "plans.toml",
        public_url=(get("PUBLIC_URL") or f"http://127.0.0.1:{_number(env, 'PORT', 8000)}").rstrip("/"),
        entitle_env=entitle_env,
        port=_number(env, "PORT", 8000),
        max_body_bytes=_number(env, "MAX_BODY_BYTES", 1024 * 1024),
        event_max_retries=_number(env, "EVENT_MAX_RETRIES", 8, minimum=0),
        event_min_backoff_ms=_number(env, "EVENT_MIN_BACKOFF_MS", 1000),
        event_max_backoff_ms=_number(env, "EVENT_MAX_BACKOFF_MS", 300_000),
        sweep_interval=_number(env, "SWEEP_INTERVAL", 10.0, float, 0.01),
        sweep_after=_number(env, "SWEEP_AFTER", 15.0, float, 0.01),
        sweep_lost_after=_number(env, "SWEEP_LOST_AFTER", 30.0, float, 0.01),
        batch_rows=_number(env, "BATCH_ROWS", 32, minimum=1),
        batch_seconds=_number(env, "BATCH_SECONDS", 0.05, float, 0.0),
        prometheus_multiproc_dir=get("PROMETHEUS_MULTIPROC_DIR"),
        redis_url=get("REDIS_URL") or _redis_only(get("BROKER_URL")),
        metrics_host=get("DYNO") or socket.gethostname(),
        metrics_host_ttl=_number(env, "METRICS_HOST_TTL", 60.0, float, 1),
        metrics_token=get("METRICS_TOKEN"),
        webhook_retry_schedule=_schedule(get("WEBHOOK_RETRY_SCHEDULE")),
        webhook_timeout=_number(env, "WEBHOOK_TIMEOUT", 10.0, float, 0.01),
        webhook_poll_interval=_number(env, "WEBHOOK_POLL_INTERVAL", 1.0, float, 0.01),
        webhook_late_after=_number(env, "WEBHOOK_LATE_AFTER", 60.0, float, 0.01),
        reconcile_interval=_number(env, "RECONCILE_INTERVAL", 900.0, float, 0),
        api_rate_limit=_number(env, "API_RATE_LIMIT", 600, minimum=0),
        broker_timeout=_number(env, "BROKER_TIMEOUT", 2.0, float, 0.05),
        bot_api_rate=_number(env, "BOT_API_RATE", 20),
        bot_api_chat_rate=_number(env, "BOT_API_CHAT_RATE", 1),
        worker_queues=tuple(q.strip() for q in (get("WORKER_QUEUES") or "").split(",") if q.strip()),
    )


def _redis_only(url: str | None) -> str | None:
    """The broker URL when it names a Redis server (which then also carries the hosts' metrics)."""
    return url if url and url.startswith(("redis://", "rediss://", "unix://")) else None


def _schedule(raw: str | None) -> tuple[float, ...]:
    """`WEBHOOK_RETRY_SCHEDULE`: comma-separated seconds before each retry."""
    if raw is None:
        return DEFAULT_WEBHOOK_RETRY_SCHEDULE
    try:
        delays = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError("WEBHOOK_RETRY_SCHEDULE must be comma-separated seconds, e.g. 5,60,300") from None
    if any(delay < 0 for delay in delays):
        raise ConfigError("WEBHOOK_RETRY_SCHEDULE must not hold negative delays")
    return delays


def weak_secret_problem(name: str, value: str | None, minimum: int = MIN_SECRET_LENGTH) -> str | None:
    """Why a secret's value cannot guard production (naming the variable, never the value), or None."""
    if not value or not value.strip():
        return f"{name} is missing"
    if value.strip().lower() in KNOWN_DEFAULT_SECRETS:
        return f"{name} is a published example value"
    if len(value) < minimum:
        return f"{name} is shorter than {minimum} characters"
    return None


def production_problems(settings: Settings) -> list[str]:
    """What keeps this configuration from running in production, each naming its variable."""
    problems = [weak_secret_problem("JWT_SECRET_KEY", settings.jwt_secret_key, MIN_JWT_SECRET_LENGTH)]
    if settings.telegram_bot_token or settings.telegram_webhook_secret:
        problems.append(weak_secret_problem("TELEGRAM_WEBHOOK_SECRET", settings.telegram_webhook_secret))
    if settings.stripe_secret_key or settings.stripe_webhook_secrets:
        for value in settings.stripe_webhook_secrets or (None,):
            problems.append(weak_secret_problem("STRIPE_WEBHOOK_SECRET", value))
    if settings.metrics_token is not None:
        problems.append(weak_secret_problem("METRICS_TOKEN", settings.metrics_token))
    return list(dict.fromkeys(p for p in problems if p))


def check_for_startup(settings: Settings) -> None:
    """Refuse to start in production with missing or default secrets."""
    if settings.production:
        problems = production_problems(settings)
        if problems:
            raise ConfigError("refusing to start in production: " + "; ".join(problems))


def jwt_secret(settings: Settings) -> str:
    """The key that signs session tokens: `JWT_SECRET_KEY`, or in development one generated once and kept in a file."""
    if settings.jwt_secret_key:
        return settings.jwt_secret_key
    if settings.production:
        raise ConfigError("JWT_SECRET_KEY is required in production")
    path = settings.jwt_secret_file
    try:
        secret = _read_secret_file(path) or _create_secret_file(path)
    except OSError as exc:
        raise ConfigError(
            f"JWT_SECRET_KEY is not set and no development secret can be kept in {path} ({exc.strerror or exc}); set JWT_SECRET_KEY"
        ) from None
    log.info("JWT_SECRET_KEY is not set: sessions are signed with the development secret in %s", path)
    return secret


def _read_secret_file(path: Path) -> str | None:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not secret:
        raise ConfigError(f"the development JWT secret file {path} is empty; delete it or set JWT_SECRET_KEY")
    return secret


def _create_secret_file(path: Path) -> str:
    """Write a new secret to `path` (mode 0600) unless another process did first; answers the one that won."""
    draft = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secrets.token_urlsafe(48) + "\n")
        try:
            # A hard link appears complete or not at all and never replaces a file another worker made.
            os.link(draft, path)
            log.warning("JWT_SECRET_KEY is not set: generated a development secret in %s", path)
        except FileExistsError:
            pass
    finally:
        draft.unlink(missing_ok=True)
    return _read_secret_file(path) or ""
