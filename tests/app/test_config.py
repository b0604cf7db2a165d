"""Configuration: defaults, `.env`, masking, and production refusing weak secrets."""
from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, check_for_startup, jwt_secret, load_settings, mask, production_problems


def test_defaults_follow_the_contract(tmp_path):
    s = load_settings(environ={}, env_file=tmp_path / "missing.env")
    assert s.database_url == "sqlite:///entitle.db"
    assert s.embedded_broker and s.telegram_api_url == "https://api.telegram.org"
    assert s.jwt_access_token_minutes == 15 and s.initdata_max_age == 900 and s.port == 8000
    assert s.public_url == "http://127.0.0.1:8000" and s.entitle_env == "development"
    assert s.jwt_secret_key == "" and s.jwt_secret_file == Path.cwd() / ".entitle-jwt-secret"
    assert s.metrics_token is None


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


def dev_settings(tmp_path, database_url: str, **extra):
    return load_settings(environ={"DATABASE_URL": database_url, **extra}, env_file=tmp_path / "x")


def test_the_development_jwt_secret_is_kept_beside_the_sqlite_database(tmp_path, caplog):
    (tmp_path / "data").mkdir()
    settings = dev_settings(tmp_path, f"sqlite:///{tmp_path / 'data' / 'app.db'}")
    assert settings.jwt_secret_file == tmp_path / "data" / ".entitle-jwt-secret"

    secret = jwt_secret(settings)

    kept = tmp_path / "data" / ".entitle-jwt-secret"
    assert kept.read_text().strip() == secret and len(secret) >= 32
    assert (kept.stat().st_mode & 0o777) == 0o600
    assert jwt_secret(dev_settings(tmp_path, f"sqlite:///{tmp_path / 'data' / 'app.db'}")) == secret
    assert str(kept) in caplog.text and secret not in caplog.text
    assert jwt_secret(dev_settings(tmp_path, f"sqlite:///{tmp_path / 'data' / 'app.db'}", JWT_SECRET_KEY="k" * 40)) == "k" * 40


def test_without_sqlite_the_development_jwt_secret_is_kept_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url in ("postgresql://postgres@127.0.0.1:5432/entitle", "sqlite:///:memory:"):
        assert dev_settings(tmp_path, url).jwt_secret_file == tmp_path / ".entitle-jwt-secret"


def _secret_in_a_new_process(path: str) -> str:
    return jwt_secret(load_settings(environ={"DATABASE_URL": f"sqlite:///{path}"}, env_file="/nonexistent/.env"))


def test_processes_starting_together_agree_on_one_development_secret(tmp_path):
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(6) as pool:
        found = pool.map(_secret_in_a_new_process, [str(tmp_path / "entitle.db")] * 12)

    assert len(set(found)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".entitle-jwt-secret"]


def test_production_never_falls_back_to_a_development_secret(tmp_path):
    settings = dev_settings(tmp_path, f"sqlite:///{tmp_path / 'app.db'}", ENTITLE_ENV="production")
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY"):
        jwt_secret(settings)
    assert not (tmp_path / ".entitle-jwt-secret").exists()


PRODUCTION = {
    "ENTITLE_ENV": "production",
    "JWT_SECRET_KEY": "k" * 48,
    "TELEGRAM_BOT_TOKEN": "1:abcdefghijkl",
    "TELEGRAM_WEBHOOK_SECRET": "w" * 32,
    "STRIPE_SECRET_KEY": "sk_test_abcdefghijkl",
    "STRIPE_WEBHOOK_SECRET": "whsec_" + "s" * 32,
    "METRICS_TOKEN": "m" * 32,
}


@pytest.mark.parametrize("name", ["JWT_SECRET_KEY", "TELEGRAM_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET", "METRICS_TOKEN"])
@pytest.mark.parametrize("value", ["dev-secret", "whsec_anything", "whsec_new", "whsec_old", "change-me", "fifteen-chars-x"])
def test_production_refuses_example_and_short_secrets_by_name(tmp_path, name, value):
    check_for_startup(load_settings(environ=PRODUCTION, env_file=tmp_path / "x"))
    s = load_settings(environ={**PRODUCTION, name: value}, env_file=tmp_path / "x")

    with pytest.raises(ConfigError) as error:
        check_for_startup(s)

    assert name in str(error.value) and value not in str(error.value)
    assert [p for p in production_problems(s) if not p.startswith(name)] == []


def test_one_weak_stripe_secret_among_several_is_refused(tmp_path):
    s = load_settings(environ={**PRODUCTION, "STRIPE_WEBHOOK_SECRET": f"{PRODUCTION['STRIPE_WEBHOOK_SECRET']},whsec_old"}, env_file=tmp_path / "x")
    assert production_problems(s) == ["STRIPE_WEBHOOK_SECRET is a published example value"]


def test_public_url_follows_port_unless_set():
    assert load_settings(environ={"PORT": "8101"}, env_file="/none").public_url == "http://127.0.0.1:8101"
    assert load_settings(environ={}, env_file="/none").public_url == "http://127.0.0.1:8000"
    given = load_settings(environ={"PORT": "8101", "PUBLIC_URL": "https://pay.example.com/"}, env_file="/none")
    assert given.public_url == "https://pay.example.com"
