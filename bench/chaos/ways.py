"""Promo codes, gift links and plan names that are not what they seem, at every door that takes one.

The Mini App's `POST /api/redeem {"code"}` and `POST /api/trial {"plan"}` (signed in), and the bot's
`/redeem CODE`, `/start promo_CODE`, `/start gift_CODE` and `/gift PLAN` through the Telegram webhook,
handled by the running workers. The values are malformed, oversized, unicode (among them letters
that `str.upper()`/`str.lower()` turn into the ASCII of a live code or plan: `ſ`→S, `ﬀ`→FF, the Kelvin
sign→k), SQL-looking, NUL and lone surrogates. A live code exists throughout, and no plan offers a
trial, so nothing sent may grant. The rules: no 5xx, every Mini App answer a 4xx JSON error, no grant
and no use of the live code, and every command stored ends handled (a refusal the payer is sent),
never pending and never failed (a crash, or a message Telegram refuses, such as one over 4,096 characters).
"""
from __future__ import annotations

import secrets
import subprocess
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import config, payloads
from bench.chaos.badinput import EXAMPLES, Checker
from bench.chaos.poison import POISON, _body, _sign_in

LIVE_CODE = "CHAOS-SALE"
MALFORMED = ("", " ", "-", "__", "AB", "a b c", "CHAOS-SALE extra", "CHAOS-SALE\nCHAOS-SALE", "\t\r\n", "@entitle_bot",
             "promo_", "gift_", "/redeem", "promo_promo_CHAOS-SALE", "gift_" + secrets.token_urlsafe(16))
OVERSIZED = ("A" * 33, "A" * 65, "CHAOS-SALE" * 7, "x" * 4000, "ſ" * 4000, "\u2028" * 4000, "9" * 4090, "🎁" * 2000)
UNICODE = ("chaoſ-sale", "CHAOS-ſALE", "ﬀ", "CHAOS-SALEı", "ＣＨＡＯＳ－ＳＡＬＥ", "СНАОЅ-ЅАLЕ", "CHAOS\u200b-SALE",
           "\u202eELAS-SOAHC", "CHAOS-SALE\u0301", "ÉTÉ2024", "🎁🎁🎁", "premium_wee\u212a", "PREMİUM_WEEK",
           "ſupporter_lifetime", "premium_week\u00a0\u00a0x")
SQL = ("' OR '1'='1", "CHAOS-SALE' --", "'; DROP TABLE promo_code; --", "%", "CHAOS%", "_HAOS-SALE", "\\",
       "1; SELECT pg_sleep(5)", '" OR ""="', "CHAOS-SALE\\' OR 1=1", "premium_week' OR 1=1 --", "*", "gift_%")
TEXT = MALFORMED + OVERSIZED + UNICODE + SQL + POISON
NOT_TEXT = (5, None, True, [LIVE_CODE], {"code": LIVE_CODE}, 1.5)
KINDS = {"malformed": MALFORMED, "oversized": OVERSIZED, "unicode": UNICODE, "sql": SQL, "poison": POISON}
COMMANDS = ("/redeem {}", "/start promo_{}", "/start gift_{}", "/gift {}")


def _create_live_code(stack) -> None:
    subprocess.run([str(config.ROOT / ".venv" / "bin" / "entitle"), "promo", "create", LIVE_CODE, "--entitlement", "premium",
                    "--days", "1"], env=stack.env, capture_output=True, text=True, timeout=60)  # made once; a rerun finds it


def _uses(stack) -> int:
    rows = stack.sql("SELECT uses FROM promo_code WHERE code = %s", (LIVE_CODE,))
    return rows[0][0] if rows else -1


def door_cases(check: Checker, first_user: int) -> None:
    """One odd value per request, at the Mini App's two doors and the bot's four commands."""
    telegram_headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": config.TELEGRAM_SECRET}
    updates = payloads.telegram_updates()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(door=st.sampled_from(["redeem", "trial"] + ["command"] * 4), kind=st.sampled_from(sorted(KINDS)),
           user=st.integers(min_value=0, max_value=999_999), data=st.data())
    def case(door, kind, user, data):
        user += first_user
        value = data.draw(st.sampled_from(KINDS[kind]), label="value")
        if door == "command":
            text = data.draw(st.sampled_from(COMMANDS), label="command").format(value)
            answer = check.send("POST", "/webhooks/telegram", body=_body(updates.command_update(user, text)),
                                headers=telegram_headers, expect_reject=False, note=f"{kind}: {text[:60]!r}")
            if answer.status_code == 200 and "event" in (answer.json() or {}):
                check.recorded.append(("telegram", answer.json()["event"], f"{kind} {text.split()[0]}"))
            return
        token = _sign_in(check, user)
        if token is None:
            check.violate(f"user {user} could not sign in")
            return
        if data.draw(st.booleans(), label="not text"):
            value = data.draw(st.sampled_from(NOT_TEXT), label="value")
        field = "code" if door == "redeem" else "plan"
        check.send("POST", f"/api/{door}", body=_body({field: value}), note=f"{kind}: {field}={str(value)[:60]!r}",
                   headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})

    case()


def ended(stack, recorded: list[tuple[str, object, str]]) -> tuple[dict[str, int], list[str]]:
    """The commands' statuses, and those not handled: still pending, or failed (a crash, or a message Telegram refused)."""
    statuses: dict[str, int] = {}
    bad = []
    for provider, ref, how in recorded:
        column = "id" if isinstance(ref, int) else "external_id"
        for status, error in stack.sql(f'SELECT status, error FROM "event" WHERE provider = %s AND {column} = %s', (provider, ref)):
            statuses[status] = statuses.get(status, 0) + 1
            if status in ("pending", "failed"):
                bad.append(f"{provider} {ref} ({how}): {status} {str(error)[:160]!r}")
    return statuses, bad


def run(stack, first_user: int) -> dict:
    """The family: a live code, the doors, then every command checked once the workers are done, and the grants counted."""
    from bench.chaos.badinput import _grants_of_users

    _create_live_code(stack)
    uses_before = _uses(stack)
    check = Checker(stack.url)
    door_cases(check, first_user)
    deadline = time.monotonic() + 120
    while True:
        statuses, bad = ended(stack, check.recorded)
        if not statuses.get("pending") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for line in bad:
        check.violate(f"a command not handled: {line}")
    grants = _grants_of_users(stack, first_user, first_user + 1_000_000)
    if grants:
        check.violate(f"{grants} grants from odd codes, gift links and plan names")
    if _uses(stack) != uses_before or uses_before < 0:
        check.violate(f"the live code {LIVE_CODE} was used ({uses_before} → {_uses(stack)} uses)")
    return {"kind": "stored", "sent": check.sent, "statuses": check.statuses, "violations": check.violations,
            "recorded": len(check.recorded), "outcomes": statuses, "unreadable": len(bad), "grants": grants}
