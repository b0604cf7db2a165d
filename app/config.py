"""Configuration read from the environment and an optional `.env` file."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping

from dotenv import dotenv_values

DEFAULT_DATABASE_URL = "sqlite:///entitle.db"
DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"

# Values that ship in examples and must never guard a production deployment.
KNOWN_DEFAULT_SECRETS = frozenset(
    {"", "change-me", "changeme", "secret", "dev", "development", "test", "jwt-secret", "super-secret"}
)

SECRET_NAMES = frozenset(
    {"TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "JWT_SECRET_KEY"}
)


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
    jwt_secret_generated: bool = False
    jwt_access_token_minutes: int = 15
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
    prometheus_multiproc_dir: str | None = None

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
            if f.name == "jwt_secret_generated":
                continue
            value = getattr(self, f.name)
            name = "STRIPE_WEBHOOK_SECRET" if f.name == "stripe_webhook_secrets" else f.name.upper()
            if name in SECRET_NAMES:
                if isinstance(value, tuple):
                    shown[name] = ", ".join(mask(v) for v in value) or "(not set)"
                elif f.name == "jwt_secret_key" and self.jwt_secret_generated:
                    shown[name] = "(random, this process only)"
                else:
                    shown[name] = mask(value)
            elif name in ("DATABASE_URL", "BROKER_URL"):
                shown[name] = mask_url(value) if value else "(embedded)"
            else:
                shown[name] = "" if value is None else str(value)
        return shown


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

    jwt_secret = get("JWT_SECRET_KEY")
    generated = jwt_secret is None
    if generated:
        jwt_secret = secrets.token_urlsafe(48)

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
        jwt_secret_key=jwt_secret,
        jwt_secret_generated=generated,
        jwt_access_token_minutes=_number(env, "JWT_ACCESS_TOKEN_MINUTES", 15),
        initdata_max_age=_number(env, "INITDATA_MAX_AGE", 900),
        plans_file=get("PLANS_FILE") or "plans.toml",
        public_url=(get("PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/"),
        entitle_env=entitle_env,
        port=_number(env, "PORT", 8000),
        max_body_bytes=_number(env, "MAX_BODY_BYTES", 1024 * 1024),
        event_max_retries=_number(env, "EVENT_MAX_RETRIES", 8, minimum=0),
        event_min_backoff_ms=_number(env, "EVENT_MIN_BACKOFF_MS", 1000),
        event_max_backoff_ms=_number(env, "EVENT_MAX_BACKOFF_MS", 300_000),
        sweep_interval=_number(env, "SWEEP_INTERVAL", 10.0, float, 0.01),
        sweep_after=_number(env, "SWEEP_AFTER", 15.0, float, 0.01),
        sweep_lost_after=_number(env, "SWEEP_LOST_AFTER", 30.0, float, 0.01),
        prometheus_multiproc_dir=get("PROMETHEUS_MULTIPROC_DIR"),
    )


def production_problems(settings: Settings) -> list[str]:
    """Names of the variables that keep this configuration from running in production."""
    problems: list[str] = []

    def weak(value: str | None) -> bool:
        return value is None or value.strip().lower() in KNOWN_DEFAULT_SECRETS

    if settings.jwt_secret_generated or weak(settings.jwt_secret_key) or len(settings.jwt_secret_key) < 32:
        problems.append("JWT_SECRET_KEY is missing, a known default, or shorter than 32 characters")
    if settings.telegram_bot_token and weak(settings.telegram_webhook_secret):
        problems.append("TELEGRAM_WEBHOOK_SECRET is missing or a known default (TELEGRAM_BOT_TOKEN is set)")
    if settings.stripe_secret_key:
        if not settings.stripe_webhook_secrets or any(weak(s) for s in settings.stripe_webhook_secrets):
            problems.append("STRIPE_WEBHOOK_SECRET is missing or a known default (STRIPE_SECRET_KEY is set)")
    return problems


def check_for_startup(settings: Settings) -> None:
    """Refuse to start in production with missing or default secrets."""
    if settings.production:
        problems = production_problems(settings)
        if problems:
            raise ConfigError("refusing to start in production: " + "; ".join(problems))
