"""Configuration: defaults, `.env`, masking, and production refusing weak secrets."""
from __future__ import annotations

import pytest

from app.config import ConfigError, check_for_startup, load_settings, mask


def test_defaults_follow_the_contract(tmp_path):
    s = load_settings(environ={}, env_file=tmp_path / "missing.env")
    assert s.database_url == "sqlite:///entitle.db"
    assert s.embedded_broker and s.telegram_api_url == "https://api.telegram.org"
    assert s.jwt_access_token_minutes == 15 and s.initdata_max_age == 900 and s.port == 8000
    assert s.public_url == "http://127.0.0.1:8000" and s.entitle_env == "development"
    assert s.jwt_secret_generated and len(s.jwt_secret_key) >= 32


def test_dotenv_is_read_and_the_environment_wins(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("PORT=9000\nREDIS_URL=redis://example:6379/0\nSTRIPE_WEBHOOK_SECRET=whsec_a, whsec_b\n")
    s = load_settings(environ={"PORT": "9100"}, env_file=dotenv)
    assert s.port == 9100
    assert s.broker_url == "redis://example:6379/0"
    assert s.stripe_webhook_secrets == ("whsec_a", "whsec_b")


def test_a_bad_number_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="JWT_ACCESS_TOKEN_MINUTES"):
        load_settings(environ={"JWT_ACCESS_TOKEN_MINUTES": "soon"}, env_file=tmp_path / "x")


@pytest.mark.parametrize(
    "environ, named",
    [
        ({}, "JWT_SECRET_KEY"),
        ({"JWT_SECRET_KEY": "change-me"}, "JWT_SECRET_KEY"),
        ({"JWT_SECRET_KEY": "x" * 40, "TELEGRAM_BOT_TOKEN": "1:abc"}, "TELEGRAM_WEBHOOK_SECRET"),
        ({"JWT_SECRET_KEY": "x" * 40, "STRIPE_SECRET_KEY": "sk_test_1"}, "STRIPE_WEBHOOK_SECRET"),
    ],
)
def test_production_refuses_missing_or_default_secrets(tmp_path, environ, named):
    s = load_settings(environ={"ENTITLE_ENV": "production", **environ}, env_file=tmp_path / "x")
    with pytest.raises(ConfigError) as error:
        check_for_startup(s)
    assert named in str(error.value)
    for value in environ.values():
        if len(value) > 6:
            assert value not in str(error.value)


def test_production_starts_with_real_secrets(tmp_path):
    s = load_settings(
        environ={"ENTITLE_ENV": "production", "JWT_SECRET_KEY": "k" * 48, "TELEGRAM_BOT_TOKEN": "1:abc", "TELEGRAM_WEBHOOK_SECRET": "w" * 32},
        env_file=tmp_path / "x",
    )
    check_for_startup(s)


def test_masking_never_shows_the_whole_secret():
    assert mask(None) == "(not set)"
    assert mask("short") == "****"
    shown = mask("sk_test_51Habcdefghijklmnop")
    assert "abcdefghijklmnop" not in shown and shown.startswith("sk_")


@pytest.mark.parametrize("name, value", [("INITDATA_MAX_AGE", "0"), ("INITDATA_MAX_AGE", "-1"), ("JWT_ACCESS_TOKEN_MINUTES", "0"), ("SWEEP_INTERVAL", "-5")])
def test_numbers_out_of_range_name_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigError, match=f"{name} must be at least"):
        load_settings(environ={name: value}, env_file=tmp_path / "x")


def test_masking_shows_only_the_public_kind():
    assert mask("sk_live_51Habcdefghijkl") == "sk_live_****"
    assert mask("whsec_abcdefghijkl") == "whsec_****"
    assert mask("123456:AAHsecretsecret") == "123456:****"
    assert mask("a-jwt-secret-of-some-length") == "****"
