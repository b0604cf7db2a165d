"""initData verification, proved against vectors published by other implementations."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from urllib.parse import quote, unquote_plus

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from app.telegram.initdata import (
    REASONS,
    TELEGRAM_PUBLIC_KEYS,
    InitDataError,
    data_check_string,
    expected_hash,
    explain,
    parse_init_data,
    sign_init_data,
    verify_init_data,
    verify_third_party,
)

# --- Published vectors, copied verbatim ---------------------------------------------------

# Telegram-Mini-Apps/telegram-apps, apps/docs/platform/init-data.md ("Using Telegram Bot Token"
# worked example); the same pair is in Telegram-Mini-Apps/init-data-golang, validate_test.go.
TMA_DOC_TOKEN = "5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8"
TMA_DOC_INIT_DATA = (
    "query_id=AAHdF6IQAAAAAN0XohDhrOrc&user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%22"
    "%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22"
    "%2C%22is_premium%22%3Atrue%7D&auth_date=1662771648"
    "&hash=c501b71e775f74ce10e377dea85a7ea24ecd640b223ea86dfe453e0eaed2e2b2"
)
TMA_DOC_CHECK_STRING = (
    "auth_date=1662771648\nquery_id=AAHdF6IQAAAAAN0XohDhrOrc\n"
    'user={"id":279058397,"first_name":"Vladislav","last_name":"Kibenko","username":"vdkfrost",'
    '"language_code":"ru","is_premium":true}'
)

# Telegram-Mini-Apps/telegram-apps, packages/init-data-node/src/entries/node.test.ts (`sp`, and the
# `sign` test that produces it from auth_date=1 and the same token).
TMA_NODE_INIT_DATA = (
    "auth_date=1&can_send_after=10000&chat=%7B%22id%22%3A1%2C%22type%22%3A%22group%22%2C%22title%22%3A"
    "%22chat-title%22%2C%22photo_url%22%3A%22group%22%2C%22username%22%3A%22my-chat%22%7D&chat_instance=888"
    "&chat_type=sender&hash=47cfa22e72b887cba90c9cb833c5ea0f599975b6ce7193741844b5c4a4228b40&query_id=QUERY"
    "&receiver=%7B%22added_to_attachment_menu%22%3Afalse%2C%22allows_write_to_pm%22%3Atrue%2C%22first_name"
    "%22%3A%22receiver-first-name%22%2C%22id%22%3A991%2C%22is_bot%22%3Afalse%2C%22is_premium%22%3Atrue%2C"
    "%22language_code%22%3A%22ru%22%2C%22last_name%22%3A%22receiver-last-name%22%2C%22photo_url%22%3A"
    "%22receiver-photo%22%2C%22username%22%3A%22receiver-username%22%7D&start_param=debug&user=%7B%22"
    "added_to_attachment_menu%22%3Afalse%2C%22allows_write_to_pm%22%3Afalse%2C%22first_name%22%3A%22"
    "user-first-name%22%2C%22id%22%3A222%2C%22is_bot%22%3Atrue%2C%22is_premium%22%3Afalse%2C%22"
    "language_code%22%3A%22en%22%2C%22last_name%22%3A%22user-last-name%22%2C%22photo_url%22%3A%22"
    "user-photo%22%2C%22username%22%3A%22user-username%22%7D"
)
TMA_NODE_HASH = "47cfa22e72b887cba90c9cb833c5ea0f599975b6ce7193741844b5c4a4228b40"

# aiogram/aiogram, tests/test_utils/test_web_app.py (token "42:TEST").
AIOGRAM_TOKEN = "42:TEST"
AIOGRAM_INIT_DATA = (
    "auth_date=1650385342"
    "&user=%7B%22id%22%3A42%2C%22first_name%22%3A%22Test%22%7D"
    "&query_id=test"
    "&hash=46d2ea5e32911ec8d30999b56247654460c0d20949b6277af519e76271182803"
)
# Same file, second case: `+` for spaces, and a user whose "id" is the *string* "123456789".
AIOGRAM_PLUS_INIT_DATA = (
    "auth_date=1650385342"
    "&user=%7B%22id%22%3A+%22123456789%22%2C+%22first_name%22%3A+%22PlaceholderFirstName%22%2C+%22last_name"
    "%22%3A+%22PlaceholderLastName+%5Cud83c%5Cuddfa%5Cud83c%5Cudde6%22%2C+%22username%22%3A+%22Latand%22%2C+"
    "%22language_code%22%3A+%22en%22%2C+%22is_premium%22%3A+%22true%22%2C+%22allows_write_to_pm%22%3A+"
    "%22true%22%7D"
    "&query_id=test"
    "&hash=b3c8b293f14ad0f7f0abcf769aea1209a72295d30a87eb0e74df855d32e53bfe"
)

# aiogram/aiogram, tests/test_utils/test_web_app_signature.py: signed with aiogram's own test key
# (Telegram's private key is not public), bot id 42.
AIOGRAM_PUBLIC_KEY = "4112765021341e5415e772cd65903f6b94e3ea1c2ab669e6d3e18ee2db00da61"
AIOGRAM_SIGNED = (
    "auth_date=1650385342&user=%7B%22id%22%3A42%2C%22first_name%22%3A%22Test%22%7D&query_id=test"
    "&signature=JQ0JR2tjC65yq_jNZV0wuJVX6J-SWPMV0mprUXG34g-NvxL4RcF1Rz5n4VVo00VRghEUBf5t___uoeb1-jU_Cw"
)
AIOGRAM_BAD_SIGNED = (
    "auth_date=1650385342&user=%7B%22id%22%3A42%2C%22first_name%22%3A%22Test%22%7D&query_id=test"
    "&signature=JQ0JR2tjC65yq_jNZV0wuJVX6J-SWPMV0mprUXG34g-NvxL4RcF1Rz5n4VVo00VRghEUBf5t___uoeb1-j1U_w"
)

# nimaxin/init-data-py, tests/vectors.py: real initData captured from Telegram, with the tokens.
INIT_DATA_PY_VECTORS = {
    "plain": (
        "query_id=AAF03wc0AgAAAHTfBzROOCVW&user=%7B%22id%22%3A5167898484%2C%22"
        "first_name%22%3A%22xin%22%2C%22last_name%22%3A%22%22%2C%22username%22"
        "%3A%22pvnimaxin%22%2C%22language_code%22%3A%22en%22%2C%22allows_write"
        "_to_pm%22%3Atrue%7D&auth_date=1722938610&hash=8654c8c617c143abf656f4f"
        "159be2539880a56f58c2d9be622f90c0346aa162b",
        "7244657541:AAEgqk0HDC3WD5cdbnGMdd6L0TJ74FDp97Y",
        5167898484,
    ),
    "utf8": (
        "query_id=AAF2GVE4AwAAAHYZUTgHczdc&user=%7B%22id%22%3A7387289974%2C%22"
        "first_name%22%3A%22%D0%90%D1%80%D1%82%D1%91%D0%BC%22%2C%22last_name%22"
        "%3A%22%D0%9E%D0%BD%D1%83%D1%84%D1%80%D0%B8%D0%B9%22%2C%22username%22"
        "%3A%22typexin%22%2C%22language_code%22%3A%22en%22%2C%22allows_write_to"
        "_pm%22%3Atrue%7D&auth_date=1724048856&hash=53b22bc70a748dae613a5aa9189"
        "0b387b9cc0356c5dcffca173816b6e40a17e5",
        "7244657541:AAHAJP25XehV6N02kiLLAEi2el-xLsSw29w",
        7387289974,
    ),
    "escaped_slash": (
        "query_id=AAF03wc0AgAAAHTfBzTtHPDB&user=%7B%22id%22%3A5167898484%2C%22"
        "first_name%22%3A%22xin%22%2C%22last_name%22%3A%22%22%2C%22username%22"
        "%3A%22pvnimaxin%22%2C%22language_code%22%3A%22en%22%2C%22allows_write"
        "_to_pm%22%3Atrue%2C%22photo_url%22%3A%22https%3A%5C%2F%5C%2Ft.me%5C%2F"
        "i%5C%2Fuserpic%5C%2F320%5C%2FYpcdHFmoxukmQ537mOZhe-Woot_k2xrmbdAIrGK1z"
        "FgIVth6Wzacz7P2nGNCcp9j.svg%22%7D&auth_date=1731441609&hash=f4bac82fe8"
        "f20abdc03126af489751752e830227b58241ec2f9dd67913909ee0",
        "7244657541:AAFMjYH4kc3U9zG0GWnxYfW-QKICVzDwvEw",
        5167898484,
    ),
}

# Telegram-Mini-Apps/telegram-apps, packages/init-data-node/src/entries/shared.test.ts (`sp`, `botId`):
# a real initData carrying both `hash` and Telegram's production Ed25519 `signature`. The same string
# is in Telegram-Mini-Apps/init-data-golang, validate_third_party_test.go.
TMA_3RD_BOT_ID = 7342037359
TMA_3RD_INIT_DATA = (
    "user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%20%2B%20-%20%3F%20%5C%2F%22%2C%22last_name"
    "%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22%2C%22is_premium"
    "%22%3Atrue%2C%22allows_write_to_pm%22%3Atrue%2C%22photo_url%22%3A%22https%3A%5C%2F%5C%2Ft.me%5C%2Fi%5C"
    "%2Fuserpic%5C%2F320%5C%2F4FPEE4tmP3ATHa57u6MqTDih13LTOiMoKoLDRG4PnSA.svg%22%7D&chat_instance="
    "8134722200314281151&chat_type=private&auth_date=1733584787&signature=zL-ucjNyREiHDE8aihFwpfR9aggP2xiAo3"
    "NSpfe-p7IbCisNlDKlo7Kb6G4D0Ao2mBrSgEk4maLSdv6MLIlADQ&hash=2174df5b000556d044f3f020384e879c8efcab55ddea2"
    "ced4eb752e93e7080d6"
)
# Same file, `spOld`: the same fields with the user JSON re-serialised (keys sorted, `+` spaces).
TMA_3RD_RESERIALISED = (
    "auth_date=1&chat_instance=8134722200314281151&chat_type=private&user=%7B%22allows_write_to_pm%22%3Atrue"
    "%2C%22first_name%22%3A%22Vladislav+%2B+-+%3F+%2F%22%2C%22id%22%3A279058397%2C%22is_premium%22%3Atrue%2C"
    "%22language_code%22%3A%22ru%22%2C%22last_name%22%3A%22Kibenko%22%2C%22photo_url%22%3A%22https%3A%2F%2F"
    "t.me%2Fi%2Fuserpic%2F320%2F4FPEE4tmP3ATHa57u6MqTDih13LTOiMoKoLDRG4PnSA.svg%22%2C%22username%22%3A%22"
    "vdkfrost%22%7D&signature=zL-ucjNyREiHDE8aihFwpfR9aggP2xiAo3NSpfe-p7IbCisNlDKlo7Kb6G4D0Ao2mBrSgEk4maLSdv6"
    "MLIlADQ&hash=b2e387ba89f433607d2492aad63bb04328b0f3d28585fd149617c8ef129566a2"
)

# swimmwatch/telegram-webapp-auth, tests/test_validate_third_party.py: another real initData with a
# production Ed25519 signature.
TWA_3RD_BOT_ID = 7544535829
TWA_3RD_INIT_DATA = (
    "query_id=AAH1t3EVAAAAAPW3cRVyuBgH&"
    "user=%7B%22id%22%3A359774197%2C%22first_name%22%3A%22Dmitry%22%2C%22"
    "last_name%22%3A%22Vasiliev%22%2C%22language_code%22%3A%22en%22%2C%22"
    "allows_write_to_pm%22%3Atrue%2C%22"
    "photo_url%22%3A%22https%3A%5C%2F%5C%2Ft.me%5C%2Fi%5C%2Fuserpic%5C%2F320%5C%2F"
    "aUkVEo2bVNr6G41sIB2bNwCdbkwnaVS79N41WHr_ApQ.svg%22%7D&"
    "auth_date=1736353840&"
    "signature=s72bv8J1hwJanbDqlo9TTMK6Uf4WSwQKuPKK_Q16QBhKD0hfOfoYCOpRl_d8m_8AEI1_oF-9WCJuwW1KQy5-BA&"
    "hash=c0b008672bf1edae403293e790eec42d047ac6613a5799e1939fac5eca41a397"
)

TOKEN = "123456:ABC-local-development-token"
NOW = 1_700_000_000


def reason_of(call, *args, **kwargs) -> str:
    with pytest.raises(InitDataError) as caught:
        call(*args, **kwargs)
    return caught.value.reason


def encode(fields: dict[str, str]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in fields.items())


def signed_fields(fields: dict[str, str], token: str = TOKEN) -> str:
    """Fields signed exactly as given (for cases sign_init_data will not build, e.g. no auth_date)."""
    return encode({**fields, "hash": expected_hash(fields, token)})


# --- Valid vectors stay valid -------------------------------------------------------------


def test_tma_documented_example_is_valid_and_its_check_string_matches_the_docs():
    assert data_check_string(parse_init_data(TMA_DOC_INIT_DATA)) == TMA_DOC_CHECK_STRING
    data = verify_init_data(TMA_DOC_INIT_DATA, TMA_DOC_TOKEN, max_age=0)
    assert data.user_id == 279058397
    assert data.query_id == "AAHdF6IQAAAAAN0XohDhrOrc"
    assert data.auth_date == 1662771648


def test_tma_node_vector_is_valid_with_every_optional_field():
    data = verify_init_data(TMA_NODE_INIT_DATA, TMA_DOC_TOKEN, max_age=0)
    assert data.user_id == 222
    assert data.start_param == "debug"
    assert data.chat_type == "sender"
    assert data.chat_instance == "888"
    assert json.loads(data.fields["receiver"])["id"] == 991


def test_aiogram_vector_is_valid():
    data = verify_init_data(AIOGRAM_INIT_DATA, AIOGRAM_TOKEN, max_age=0)
    assert data.user == {"id": 42, "first_name": "Test"}
    assert data.query_id == "test"


@pytest.mark.parametrize("name", sorted(INIT_DATA_PY_VECTORS))
def test_real_telegram_vectors_from_init_data_py_are_valid(name):
    raw, token, user_id = INIT_DATA_PY_VECTORS[name]
    assert verify_init_data(raw, token, max_age=0).user_id == user_id


def test_escaped_slashes_in_user_json_are_hashed_as_sent():
    raw, token, _ = INIT_DATA_PY_VECTORS["escaped_slash"]
    fields = parse_init_data(raw)
    assert "https:\\/\\/t.me\\/i\\/userpic" in fields["user"]
    assert verify_init_data(raw, token, max_age=0).user["photo_url"].startswith("https://t.me/i/userpic/")


def test_vectors_are_valid_at_a_fixed_now_inside_max_age():
    raw, token, _ = INIT_DATA_PY_VECTORS["plain"]
    assert verify_init_data(raw, token, max_age=900, now=1722938610 + 899).auth_date == 1722938610


def test_tma_third_party_vector_carries_a_valid_production_signature():
    data = verify_third_party(TMA_3RD_INIT_DATA, TMA_3RD_BOT_ID, max_age=0)
    assert data.user_id == 279058397
    assert data.user["first_name"] == "Vladislav + - ? /"
    assert data.hash == "2174df5b000556d044f3f020384e879c8efcab55ddea2ced4eb752e93e7080d6"
    assert data.signature.startswith("zL-ucjNy")


def test_telegram_webapp_auth_third_party_vector_is_valid():
    assert verify_third_party(TWA_3RD_INIT_DATA, TWA_3RD_BOT_ID, max_age=0).user_id == 359774197


def test_aiogram_signature_vector_is_valid_with_its_own_public_key():
    data = verify_third_party(AIOGRAM_SIGNED, 42, max_age=0, public_key=AIOGRAM_PUBLIC_KEY)
    assert data.user_id == 42


def test_public_keys_are_telegrams():
    # Telegram-Mini-Apps/telegram-apps, packages/init-data-node/src/validate3rd.ts and
    # apps/docs/platform/init-data.md ("Using Telegram Public Key").
    assert TELEGRAM_PUBLIC_KEYS == {
        "production": "e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d",
        "test": "40055058a4ee38156a06562e52eece92a771bcd8346a8c4615cb7376eddf72ec",
    }


# --- Tampered variants fail with the right reason ----------------------------------------


def test_one_changed_byte_is_a_hash_mismatch():
    tampered = TMA_DOC_INIT_DATA.replace("Vladislav", "Vladislaw")
    assert reason_of(verify_init_data, tampered, TMA_DOC_TOKEN, max_age=0) == "hash_mismatch"


def test_one_changed_hash_digit_is_a_hash_mismatch():
    tampered = TMA_DOC_INIT_DATA[:-1] + ("3" if TMA_DOC_INIT_DATA[-1] != "3" else "4")
    assert reason_of(verify_init_data, tampered, TMA_DOC_TOKEN, max_age=0) == "hash_mismatch"


def test_wrong_token_is_a_hash_mismatch():
    assert reason_of(verify_init_data, TMA_NODE_INIT_DATA, TMA_DOC_TOKEN + "A", max_age=0) == "hash_mismatch"
    assert reason_of(verify_init_data, AIOGRAM_INIT_DATA, "42:INVALID", max_age=0) == "hash_mismatch"


def test_an_appended_field_is_a_hash_mismatch():
    assert reason_of(verify_init_data, AIOGRAM_INIT_DATA + "&x=1", AIOGRAM_TOKEN, max_age=0) == "hash_mismatch"


def test_non_ascii_hash_is_a_mismatch_not_a_crash():
    # aiogram/aiogram, tests/test_utils/test_web_app.py (issue #1903 case).
    raw = "user=%7B%22id%22%3A42%2C%22first_name%22%3A%22Test%22%7D&query_id=test&hash=%C3%A9%C3%A9%C3%A9"
    assert reason_of(verify_init_data, raw, AIOGRAM_TOKEN, max_age=0) == "hash_mismatch"


@pytest.mark.parametrize(
    "raw",
    [
        AIOGRAM_INIT_DATA.rsplit("&hash=", 1)[0],
        "user=%7B%22id%22%3A42%2C%22first_name%22%3A%22Test%22%7D&query_id=test",
        "auth_date=1",
        "auth_date=1&hash=",
    ],
)
def test_removed_hash_is_hash_missing(raw):
    assert reason_of(verify_init_data, raw, AIOGRAM_TOKEN, max_age=0) == "hash_missing"


def test_plus_means_space_so_aiogram_plus_vector_passes_the_hash_but_its_string_id_is_refused():
    explanation = explain(AIOGRAM_PLUS_INIT_DATA, bot_token=AIOGRAM_TOKEN, max_age=0)
    steps = {step.name: step for step in explanation.steps}
    assert steps["hash"].ok is True
    assert explanation.reason == "user_invalid"
    assert reason_of(verify_init_data, AIOGRAM_PLUS_INIT_DATA, AIOGRAM_TOKEN, max_age=0) == "user_invalid"


def test_altered_signature_is_signature_invalid():
    assert reason_of(verify_third_party, AIOGRAM_BAD_SIGNED, 42, max_age=0, public_key=AIOGRAM_PUBLIC_KEY) == (
        "signature_invalid"
    )
    flipped = TMA_3RD_INIT_DATA.replace("signature=zL-u", "signature=zL-v")
    assert reason_of(verify_third_party, flipped, TMA_3RD_BOT_ID, max_age=0) == "signature_invalid"


def test_signature_from_another_bot_or_environment_is_invalid():
    assert reason_of(verify_third_party, TMA_3RD_INIT_DATA, TMA_3RD_BOT_ID + 1, max_age=0) == "signature_invalid"
    assert reason_of(
        verify_third_party, TMA_3RD_INIT_DATA, TMA_3RD_BOT_ID, environment="test", max_age=0
    ) == "signature_invalid"


def test_reserialised_user_json_breaks_the_signature():
    assert reason_of(verify_third_party, TMA_3RD_RESERIALISED, TMA_3RD_BOT_ID, max_age=0) == "signature_invalid"


def test_tampered_field_under_a_signature_is_invalid():
    tampered = TMA_3RD_INIT_DATA.replace("chat_type=private", "chat_type=group")
    assert reason_of(verify_third_party, tampered, TMA_3RD_BOT_ID, max_age=0) == "signature_invalid"


def test_signature_that_is_not_base64url_is_invalid():
    raw = TMA_3RD_INIT_DATA.replace("signature=zL-u", "signature=%%%%zL-u")
    assert reason_of(verify_third_party, raw, TMA_3RD_BOT_ID, max_age=0) == "signature_invalid"


def test_missing_signature_is_signature_missing():
    raw = AIOGRAM_SIGNED.rsplit("&signature=", 1)[0]
    assert reason_of(verify_third_party, raw, 42, max_age=0, public_key=AIOGRAM_PUBLIC_KEY) == "signature_missing"
    assert reason_of(verify_third_party, TMA_DOC_INIT_DATA, TMA_3RD_BOT_ID, max_age=0) == "signature_missing"


def test_published_vectors_are_expired_today():
    assert reason_of(verify_init_data, TMA_DOC_INIT_DATA, TMA_DOC_TOKEN) == "expired"
    assert reason_of(verify_init_data, TMA_NODE_INIT_DATA, TMA_DOC_TOKEN, max_age=1) == "expired"
    assert reason_of(verify_third_party, TMA_3RD_INIT_DATA, TMA_3RD_BOT_ID, max_age=1) == "expired"


def test_expiry_boundary():
    raw = sign_init_data(TOKEN, user={"id": 1}, auth_date=NOW - 900)
    assert verify_init_data(raw, TOKEN, now=NOW).auth_date == NOW - 900
    assert reason_of(verify_init_data, raw, TOKEN, now=NOW + 1) == "expired"


def test_future_auth_date_beyond_skew_is_from_future():
    assert verify_init_data(sign_init_data(TOKEN, user={"id": 1}, auth_date=NOW + 60), TOKEN, now=NOW)
    raw = sign_init_data(TOKEN, user={"id": 1}, auth_date=NOW + 61)
    assert reason_of(verify_init_data, raw, TOKEN, now=NOW) == "from_future"


def test_max_age_zero_skips_the_age_check():
    raw = sign_init_data(TOKEN, user={"id": 1}, auth_date=NOW + 3600)
    assert verify_init_data(raw, TOKEN, max_age=0, now=NOW).auth_date == NOW + 3600


def test_negative_max_age_is_a_programming_error():
    with pytest.raises(ValueError):
        verify_init_data(TMA_DOC_INIT_DATA, TMA_DOC_TOKEN, max_age=-1)


def test_missing_auth_date_is_auth_date_missing():
    raw = signed_fields({"user": '{"id":1}'})
    assert reason_of(verify_init_data, raw, TOKEN, max_age=0) == "auth_date_missing"


@pytest.mark.parametrize("value", ["", "AAA", "-5", "1.5", " 12", "1_000", "١٢٣", "9" * 13])
def test_non_numeric_auth_date_is_auth_date_invalid(value):
    raw = signed_fields({"auth_date": value, "user": '{"id":1}'})
    assert reason_of(verify_init_data, raw, TOKEN, max_age=0) == "auth_date_invalid"


@pytest.mark.parametrize(
    "user", ["not json", "[1]", "{}", '{"id":"1"}', '{"id":1.0}', '{"id":true}', "null", '{"first_name":"x"}']
)
def test_user_must_be_a_json_object_with_an_integer_id(user):
    raw = signed_fields({"auth_date": str(NOW), "user": user})
    assert reason_of(verify_init_data, raw, TOKEN, now=NOW) == "user_invalid"


def test_user_is_optional():
    data = verify_init_data(signed_fields({"auth_date": str(NOW)}), TOKEN, now=NOW)
    assert data.user is None and data.user_id is None


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "test&foo=bar=baz",  # aiogram/aiogram, tests/test_utils/test_web_app.py
        "here comes something wrong;",  # Telegram-Mini-Apps/init-data-golang, validate_test.go
        "auth_date=1&auth_date=2&hash=abc",
        "auth_date=1&&hash=abc",
        "auth_date=1&hash=abc&",
        "=1&hash=abc",
        "auth_date=1&user=%FF%FE&hash=abc",
        "auth_date=1%0Auser%3D1&hash=abc",
    ],
)
def test_garbage_is_malformed(raw):
    assert reason_of(verify_init_data, raw, TOKEN, max_age=0) == "malformed"
    assert reason_of(verify_third_party, raw, 1, max_age=0) == "malformed"


def test_empty_token_is_token_missing():
    assert reason_of(verify_init_data, TMA_DOC_INIT_DATA, "", max_age=0) == "token_missing"
    assert explain(TMA_DOC_INIT_DATA, max_age=0).reason == "token_missing"


def test_unknown_environment_is_refused():
    with pytest.raises(ValueError):
        verify_third_party(TMA_3RD_INIT_DATA, TMA_3RD_BOT_ID, environment="staging")


def test_every_reason_has_a_message():
    for reason, message in REASONS.items():
        error = InitDataError(reason)
        assert error.reason == reason and str(error) == message == error.message


# --- Parsing ------------------------------------------------------------------------------


def test_parse_keeps_order_blank_values_and_decodes_each_part_after_splitting():
    fields = parse_init_data("b=&a=x+y%20z&c=%26k%3Dv&d=1=2")
    assert list(fields) == ["b", "a", "c", "d"]
    assert fields == {"b": "", "a": "x y z", "c": "&k=v", "d": "1=2"}


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "a+b",
        "%41%42c",
        "%e2%82%ac%E2%82%AC",
        "100%",
        "%4",
        "%zz%41",
        "%%41",
        "caf%C3%A9+%2B%25",
        "\\x41%41",
        "é%41",
        "€%E2%82%AC",
        "%5Cx41",
        "%00%7F",
        "\udcff%41",
    ],
)
def test_parse_decodes_values_exactly_like_unquote_plus(value):
    assert parse_init_data(f"k={value}&%6B+={value}") == {"k": unquote_plus(value), "k ": unquote_plus(value)}


@pytest.mark.parametrize("value", ["%FF", "%C3", "%E2%82", "%C3%28", "é%A9", "%ED%A0%80"])
def test_parse_refuses_invalid_utf8_like_unquote_plus(value):
    with pytest.raises(UnicodeDecodeError):
        unquote_plus(value, errors="strict")
    assert reason_of(parse_init_data, f"k={value}") == "malformed"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["%", "+", "\\", "x", "0", "9", "a", "F", "g", "é", "€", "%C3", "%A9", "%FF"]),
                max_size=20))
def test_parse_decodes_any_value_like_unquote_plus(pieces):
    value = "".join(pieces)
    try:
        want = unquote_plus(value, errors="strict")
    except UnicodeDecodeError:
        want = None
    if want is None or "\n" in want:
        assert reason_of(parse_init_data, f"k={value}") == "malformed"
    else:
        assert parse_init_data(f"k={value}") == {"k": want}


def test_hashes_stay_right_when_tokens_alternate():
    # More tokens than the derived-key cache holds, so some come back after being evicted.
    tokens = [TOKEN] + [f"{600000 + i}:XYZ-another-bot-token" for i in range(11)]
    raws = {token: sign_init_data(token, user={"id": 7}, auth_date=NOW) for token in tokens}
    for _ in range(3):
        for i, (token, raw) in enumerate(raws.items()):
            assert verify_init_data(raw, token, now=NOW).user_id == 7
            assert reason_of(verify_init_data, raw, tokens[i - 1], now=NOW) == "hash_mismatch"
            fields = parse_init_data(raw)
            secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
            assert expected_hash(fields, token) == hmac.new(
                secret, data_check_string(fields).encode(), hashlib.sha256
            ).hexdigest()


def test_parse_keeps_raw_user_json():
    fields = parse_init_data(TMA_3RD_INIT_DATA)
    assert fields["user"].startswith('{"id":279058397,"first_name":"Vladislav + - ? \\/"')


# --- sign_init_data -----------------------------------------------------------------------


def test_sign_round_trips():
    raw = sign_init_data(TOKEN, user={"id": 7, "first_name": "Ann"}, auth_date=NOW, query_id="Q1", start_param="x")
    data = verify_init_data(raw, TOKEN, now=NOW)
    assert data.user == {"id": 7, "first_name": "Ann"}
    assert (data.user_id, data.query_id, data.start_param, data.auth_date) == (7, "Q1", "x", NOW)


def test_sign_shapes_user_json_like_telegram():
    user = {"id": 5, "first_name": "Артём + / ?", "photo_url": "https://t.me/i/userpic/320/a.svg"}
    raw = sign_init_data(TOKEN, user=user, auth_date=NOW)
    fields = parse_init_data(raw)
    assert fields["user"] == (
        '{"id":5,"first_name":"Артём + \\/ ?","photo_url":"https:\\/\\/t.me\\/i\\/userpic\\/320\\/a.svg"}'
    )
    assert "%20" in raw and "+" not in raw
    assert verify_init_data(raw, TOKEN, now=NOW).user == user


def test_sign_defaults_auth_date_to_now():
    assert verify_init_data(sign_init_data(TOKEN, user={"id": 1}), TOKEN).user_id == 1


def test_sign_reproduces_tma_node_hash():
    # The same fields as TMA_NODE_INIT_DATA, in another order: the hash must come out identical.
    fields = parse_init_data(TMA_NODE_INIT_DATA)
    user = json.loads(fields["user"])
    extra = {k: v for k, v in fields.items() if k not in ("user", "auth_date", "query_id", "hash")}
    raw = sign_init_data(TMA_DOC_TOKEN, user=user, auth_date=1, query_id="QUERY", **extra)
    assert parse_init_data(raw)["hash"] == TMA_NODE_HASH


def test_sign_refuses_a_given_hash_and_a_missing_token():
    with pytest.raises(ValueError):
        sign_init_data(TOKEN, user={"id": 1}, hash="x")
    assert reason_of(sign_init_data, "", user={"id": 1}) == "token_missing"


def test_signed_string_verifies_by_signature_too():
    # Our own Ed25519 key standing in for Telegram's, over a string sign_init_data built.
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    fields = parse_init_data(sign_init_data(TOKEN, user={"id": 3}, auth_date=NOW))
    message = f"99:WebAppData\n{data_check_string({k: v for k, v in fields.items() if k != 'hash'})}"
    fields["signature"] = base64.urlsafe_b64encode(private.sign(message.encode())).decode().rstrip("=")
    raw = encode(fields)
    assert verify_third_party(raw, 99, now=NOW, public_key=public).user_id == 3
    # The hash now covers no signature field, so the bot-token check must fail: signature is hashed too.
    assert reason_of(verify_init_data, raw, TOKEN, now=NOW) == "hash_mismatch"


# --- explain ------------------------------------------------------------------------------


def test_explain_records_every_step_of_a_valid_initdata():
    explanation = explain(TMA_3RD_INIT_DATA, bot_id=TMA_3RD_BOT_ID, max_age=0)
    assert explanation.valid and explanation.reason is None
    names = [step.name for step in explanation.steps]
    assert names == ["parse", "data_check_string", "hash", "signature", "auth_date", "age", "user"]
    steps = {step.name: step for step in explanation.steps}
    assert steps["signature"].ok is True and steps["hash"].ok is None and steps["age"].ok is None
    assert "2024-12-07T15:19:47Z" in steps["auth_date"].detail
    assert explanation.fields["chat_type"] == "private"
    json.dumps(explanation.to_dict())


def test_explain_passes_the_hash_without_printing_one():
    explanation = explain(TMA_DOC_INIT_DATA, bot_token=TMA_DOC_TOKEN, max_age=0)
    assert explanation.valid
    steps = {step.name: step for step in explanation.steps}
    assert steps["hash"].ok is True and not re.search(r"[0-9a-f]{64}", steps["hash"].detail)
    assert steps["data_check_string"].detail == TMA_DOC_CHECK_STRING


def test_explain_runs_every_check_and_reports_the_first_failure():
    explanation = explain(TMA_DOC_INIT_DATA, bot_token=TMA_DOC_TOKEN + "A", now=NOW)
    assert not explanation.valid
    assert explanation.reason == "hash_mismatch"
    failed = [step.reason for step in explanation.steps if step.ok is False]
    assert failed == ["hash_mismatch", "expired"]


def test_explain_of_garbage_stops_at_parse():
    explanation = explain("garbage", bot_token=TOKEN)
    assert (explanation.valid, explanation.reason) == (False, "malformed")
    assert [step.name for step in explanation.steps] == ["parse"]
    assert explanation.to_dict()["fields"] == {}


@pytest.mark.parametrize(
    "raw", [TMA_DOC_INIT_DATA, TMA_3RD_INIT_DATA, AIOGRAM_PLUS_INIT_DATA, "garbage", "auth_date=x&hash=1"]
)
def test_explain_never_reveals_the_bot_token(raw):
    for token in (TMA_DOC_TOKEN, TMA_DOC_TOKEN + "A"):
        explanation = explain(raw, bot_token=token, bot_id=TMA_3RD_BOT_ID, max_age=900, now=NOW)
        text = json.dumps(explanation.to_dict()) + repr(explanation)
        assert token not in text
        assert token.split(":", 1)[1] not in text
        # The derived secret key is as good as the token.
        assert hmac.new(b"WebAppData", token.encode(), hashlib.sha256).hexdigest() not in text


# --- Properties ---------------------------------------------------------------------------

values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=30)
keys = st.from_regex(r"[a-z_]{1,12}", fullmatch=True).filter(
    lambda k: k not in ("hash", "auth_date", "user", "query_id")
)


@settings(max_examples=200, deadline=None)
@given(extra=st.dictionaries(keys, values, max_size=4), first_name=values, data=st.data())
def test_any_changed_value_of_a_signed_string_is_rejected(extra, first_name, data):
    raw = sign_init_data(TOKEN, user={"id": 1, "first_name": first_name}, auth_date=NOW, query_id="q", **extra)
    fields = parse_init_data(raw)
    assert verify_init_data(raw, TOKEN, now=NOW).fields == fields
    key = data.draw(st.sampled_from([k for k in fields if k != "hash"]))
    new_value = data.draw(values.filter(lambda v: v != fields[key]))
    tampered = encode({**fields, key: new_value})
    assert reason_of(verify_init_data, tampered, TOKEN, max_age=0) == "hash_mismatch"


@settings(max_examples=300, deadline=None)
@given(raw=st.text(max_size=80))
def test_arbitrary_text_is_refused_with_a_reason_never_a_crash(raw):
    with pytest.raises(InitDataError) as caught:
        verify_init_data(raw, TOKEN, now=NOW)
    assert caught.value.reason in REASONS
    explanation = explain(raw, bot_token=TOKEN, bot_id=1, now=NOW)
    assert not explanation.valid and explanation.reason in REASONS
