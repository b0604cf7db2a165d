"""`entitle initdata debug|sign`: every check shown, the right exit code, and the token never printed."""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import time
from urllib.parse import parse_qsl

import pytest

from app.telegram.initdata import sign_init_data, verify_init_data
from webapp import create_app
# A real initData with Telegram's Ed25519 signature; its source is cited where it is defined.
from tests.app.telegram.test_initdata import TMA_3RD_BOT_ID as THIRD_PARTY_BOT_ID
from tests.app.telegram.test_initdata import TMA_3RD_INIT_DATA as THIRD_PARTY_INIT_DATA
from tests.app.telegram.test_initdata import TMA_DOC_TOKEN as OTHER_BOTS_TOKEN

TOKEN = "7000000003:AAHsecretHalfOfTheBotTokenMustNotLeak_xyz"
SECRET_HALF = TOKEN.split(":", 1)[1]
USER = {"id": 777001, "first_name": "Grace", "username": "grace"}


def signed(auth_date: float | None = None) -> str:
    return sign_init_data(TOKEN, user=USER, auth_date=int(auth_date or time.time()))


def assert_no_secret(result) -> None:
    shown = result.stdout + result.stderr
    assert TOKEN not in shown and SECRET_HALF not in shown


@pytest.fixture
def debug(cli):
    """`entitle initdata debug` with TELEGRAM_BOT_TOKEN set, checked for leaks on every call."""

    def run(*args: str, **env: str):
        result = cli("initdata", "debug", *args, **{"TELEGRAM_BOT_TOKEN": TOKEN, **env})
        assert_no_secret(result)
        return result

    return run


def test_a_valid_init_data_passes_every_check(debug):
    result = debug(signed())

    assert result.exit_code == 0, result.stdout + result.stderr
    assert "initData is valid" in result.stdout
    for check in ("parse", "hash", "signature", "auth_date", "age", "user", "data-check-string"):
        assert check in result.stdout
    assert '"id": 777001' in result.stdout


def test_the_token_can_come_from_the_option(cli):
    result = cli("initdata", "debug", signed(), "--token", TOKEN)

    assert result.exit_code == 0
    assert_no_secret(result)


def one_byte_changed(raw: str) -> str:
    return raw.replace("%3A777001%2C", "%3A777002%2C", 1)


@pytest.mark.parametrize(
    "make, args, reason",
    [
        (lambda: one_byte_changed(signed()), (), "hash_mismatch"),
        (lambda: signed(auth_date=time.time() - 901), (), "expired"),
        (lambda: signed(auth_date=time.time() - 120), ("--max-age", "60"), "expired"),
        (lambda: "user=%ZZ&hash", (), "malformed"),
        (lambda: signed().rsplit("&hash=", 1)[0], (), "hash_missing"),
        (lambda: THIRD_PARTY_INIT_DATA, ("--bot-id", str(THIRD_PARTY_BOT_ID + 1), "--max-age", "0"), "signature_invalid"),
        (
            lambda: THIRD_PARTY_INIT_DATA,
            ("--bot-id", str(THIRD_PARTY_BOT_ID), "--environment", "test", "--max-age", "0"),
            "signature_invalid",
        ),
    ],
    ids=["one-byte-changed", "expired", "expired-by-max-age", "malformed", "no-hash", "wrong-bot-id", "test-key"],
)
def test_each_invalid_kind_exits_1_with_its_reason(debug, make, args, reason):
    result = debug(make(), *args, TELEGRAM_BOT_TOKEN="" if "--bot-id" in args else TOKEN)

    assert result.exit_code == 1
    assert "initData is invalid" in result.stdout
    assert reason in result.stdout


def test_a_real_third_party_signature_passes_with_the_bot_id(debug):
    result = debug(THIRD_PARTY_INIT_DATA, "--bot-id", str(THIRD_PARTY_BOT_ID), "--max-age", "0", TELEGRAM_BOT_TOKEN="")

    assert result.exit_code == 0, result.stdout
    assert "Ed25519 signature valid" in result.stdout


def telegram_hash(raw: str, token: str) -> str:
    """The hash Telegram's documented algorithm gives these fields under this token."""
    fields = dict(parse_qsl(raw, keep_blank_values=True, strict_parsing=True))
    check_string = "\n".join(f"{key}={fields[key]}" for key in sorted(fields) if key != "hash")
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    return hmac.new(secret, check_string.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("output", [(), ("--json",)], ids=["table", "json"])
def test_a_tampered_init_data_is_never_shown_its_correct_hash(debug, output):
    tampered = one_byte_changed(signed())
    given = dict(parse_qsl(tampered))["hash"]
    forgery = telegram_hash(tampered, TOKEN)
    assert forgery != given

    # Wide enough that rich never folds a 64-character value across lines.
    result = debug(tampered, *output, COLUMNS="400")

    assert result.exit_code == 1
    assert "hash_mismatch" in result.stdout
    shown = result.stdout + result.stderr
    assert forgery not in re.sub(r"[^0-9a-f]", "", shown)
    assert set(re.findall(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])", shown)) <= {given}


def test_no_hash_in_debug_output_signs_in_a_tampered_init_data(debug, settings, database, broker):
    service = create_app(dataclasses.replace(settings, telegram_bot_token=TOKEN)).test_client()
    tampered = one_byte_changed(signed())
    report = json.loads(debug(tampered, "--json").stdout)

    for candidate in set(re.findall(r"[0-9a-f]{64}", json.dumps(report))):
        forged = re.sub(r"hash=[0-9a-f]{64}", f"hash={candidate}", tampered)
        response = service.post("/api/session", json={"init_data": forged})
        assert response.status_code == 401 and response.get_json()["error"]["code"] == "hash_mismatch"


@pytest.mark.parametrize("output", [(), ("--json",)], ids=["table", "json"])
def test_with_another_bots_token_the_hash_check_is_skipped_and_the_signature_decides(debug, output):
    assert not OTHER_BOTS_TOKEN.startswith(f"{THIRD_PARTY_BOT_ID}:")

    result = debug(
        THIRD_PARTY_INIT_DATA, "--bot-id", str(THIRD_PARTY_BOT_ID), "--max-age", "0", *output,
        TELEGRAM_BOT_TOKEN=OTHER_BOTS_TOKEN, COLUMNS="400",
    )

    assert result.exit_code == 0, result.stdout
    owner = OTHER_BOTS_TOKEN.split(":", 1)[0]
    if output:
        steps = {step["name"]: step for step in json.loads(result.stdout)["steps"]}
        assert json.loads(result.stdout)["valid"] is True
        assert steps["hash"]["ok"] is None and steps["signature"]["ok"] is True
        detail = steps["hash"]["detail"]
    else:
        assert "initData is valid" in result.stdout and "Ed25519 signature valid" in result.stdout
        [detail] = [line for line in result.stdout.splitlines() if "hash" in line and "skip" in line]
    assert "skipped" in detail and owner in detail and str(THIRD_PARTY_BOT_ID) in detail
    assert OTHER_BOTS_TOKEN.split(":", 1)[1] not in result.stdout + result.stderr


def test_max_age_0_skips_the_age_check(debug):
    old = signed(auth_date=1_000_000)

    assert debug(old).exit_code == 1
    result = debug(old, "--max-age", "0", "--json")
    assert result.exit_code == 0
    age = next(step for step in json.loads(result.stdout)["steps"] if step["name"] == "age")
    assert age["ok"] is None


def test_json_output_parses_and_names_every_check(debug):
    result = debug(one_byte_changed(signed()), "--json")

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False and report["reason"] == "hash_mismatch"
    steps = {step["name"]: step for step in report["steps"]}
    assert {"parse", "data_check_string", "hash", "signature", "auth_date", "age", "user"} <= set(steps)
    assert steps["hash"]["ok"] is False and steps["hash"]["reason"] == "hash_mismatch"
    assert report["fields"]["auth_date"].isdigit()


@pytest.mark.parametrize(
    "args, env",
    [
        ((), {"TELEGRAM_BOT_TOKEN": ""}),
        (("--max-age", "-1"), {}),
        (("--environment", "test"), {}),
        (("--environment", "staging", "--bot-id", "1"), {}),
    ],
    ids=["no-token-no-bot-id", "negative-max-age", "environment-without-bot-id", "unknown-environment"],
)
def test_usage_errors_exit_2(debug, args, env):
    assert debug(signed(), *args, **env).exit_code == 2


def test_debug_names_the_likely_cause_the_payer_never_sees(debug):
    shown = debug(one_byte_changed(signed()))
    as_json = debug(one_byte_changed(signed()), "--json")

    said = " ".join(shown.stdout.split())
    assert shown.exit_code == 1 and "likely cause: TELEGRAM_BOT_TOKEN is not the token of the bot that opened the app" in said
    assert json.loads(as_json.stdout)["likely_cause"].startswith("TELEGRAM_BOT_TOKEN is not the token")
    assert json.loads(debug(signed(), "--json").stdout)["likely_cause"] is None


def test_sign_prints_an_init_data_that_verifies(cli):
    result = cli("initdata", "sign", "--user-id", "424242", "--username", "@dev", TELEGRAM_BOT_TOKEN=TOKEN)

    assert result.exit_code == 0
    assert_no_secret(result)
    raw = result.stdout.strip()
    assert "\n" not in raw
    data = verify_init_data(raw, TOKEN)
    assert data.user_id == 424242 and data.user["username"] == "dev"
    assert cli("initdata", "debug", raw, "--token", TOKEN).exit_code == 0


def test_sign_url_prints_the_mini_apps_address_carrying_the_init_data(cli):
    result = cli("initdata", "sign", "--user-id", "424242", "--url", TELEGRAM_BOT_TOKEN=TOKEN, PUBLIC_URL="https://pay.example/")

    assert result.exit_code == 0
    assert_no_secret(result)
    url = result.stdout.strip()
    base, _, fragment = url.partition("#")
    assert base == "https://pay.example/app"
    # Where Telegram puts them when it opens a Mini App, as telegram-web-app.js reads them.
    launch = dict(parse_qsl(fragment))
    assert set(launch) == {"tgWebAppData", "tgWebAppVersion", "tgWebAppPlatform"}
    assert verify_init_data(launch["tgWebAppData"], TOKEN).user_id == 424242


def test_sign_takes_the_token_option(cli):
    result = cli("initdata", "sign", "--user-id", "1", "--token", TOKEN, TELEGRAM_BOT_TOKEN="")

    assert result.exit_code == 0
    assert verify_init_data(result.stdout.strip(), TOKEN).user_id == 1


def test_sign_without_a_token_is_a_usage_error(cli):
    result = cli("initdata", "sign", "--user-id", "1", TELEGRAM_BOT_TOKEN="")

    assert result.exit_code == 2
    assert "TELEGRAM_BOT_TOKEN" in result.stderr
