"""Text that poisons: NUL characters, lone surrogates and non-ASCII digits, at every door and in both ledgers.

PostgreSQL cannot store a NUL or a lone surrogate, and `str.isdigit()` takes `²`, `①`, `١٢` and `１２３`
while `int()` reads some of them as numbers. Each request puts one such value in one field a door
reads (ids, payloads, names, metadata, paths, query strings, JSON bodies); the ledgers get
transactions and events carrying them, read by `entitle reconcile`. The rules: no 5xx, every
rejection a JSON error, and every row stored reaches its handler's own checks: once the workers
are done none is pending and none failed with a crash (`TypeError`, `UnicodeEncodeError`, a
database error, …) instead of a check's own words.
"""
from __future__ import annotations

import copy
import json
import re
import subprocess
import time
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import config, payloads
from bench.chaos.badinput import EXAMPLES, Checker

POISON = (
    "\x00", "a\x00b", "\ud800", "x\udfffy", "\udc80\x00", "²", "①", "١٢", "１２３", "٤٢", "𝟗", "4\u0662", "12\x00",
)
poison = st.sampled_from(POISON)
# A handler that crashed rather than refused: its row records the exception's class first.
CRASH = re.compile(r"^(TypeError|KeyError|AttributeError|ValueError|IndexError|OverflowError|RecursionError|"
                   r"Unicode\w*Error|DataError|ProgrammingError|InterfaceError|IntegrityError|InternalError|"
                   r"NumericValueOutOfRange|InvalidTextRepresentation|UntranslatableCharacter|CharacterNotInRepertoire)\b")


def _leaves(data, at=()):
    """The paths of every string and number in JSON data (the fields a value can be put in)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, at + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _leaves(value, at + (index,))
    elif isinstance(data, (str, int)) and not isinstance(data, bool):
        yield at


def _put(data, path, value):
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def _body(data) -> bytes:
    # json.dumps writes a lone surrogate as its \\ud800 escape: valid JSON, which a parser turns back into one.
    return json.dumps(data).encode()


def _path(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _telegram_bases(user: int) -> list[dict]:
    updates = payloads.telegram_updates()
    payload = payloads.invoice_payload(payloads.TELEGRAM_PLAN, user)
    return [
        updates.successful_payment_update(user, payload, payloads.STARS_PRICE, updates.new_charge_id()),
        updates.refunded_payment_update(user, payload, payloads.STARS_PRICE, updates.new_charge_id()),
        updates.pre_checkout_query_update(user, payload, payloads.STARS_PRICE),
        updates.command_update(user, "/start"),
    ]


def door_cases(check: Checker, first_user: int, api_key: str) -> None:
    """One poisoned field per request, at the Telegram and Stripe webhooks, sign-in, the Mini App, `/api/v1` and Checkout's return."""
    telegram_headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": config.TELEGRAM_SECRET}
    api = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    events = payloads.stripe_events()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(door=st.sampled_from(["telegram"] * 4 + ["stripe"] * 3 + ["api_v1", "session", "miniapp", "checkout_return"]),
           user=st.integers(min_value=0, max_value=999_999), value=poison, data=st.data())
    def case(door, user, value, data):
        user += first_user
        if door == "telegram":
            update = data.draw(st.sampled_from(_telegram_bases(user)), label="update")
            path = data.draw(st.sampled_from(list(_leaves(update))), label="field")
            _put(update, path, value)
            answer = check.send("POST", "/webhooks/telegram", body=_body(update), headers=telegram_headers, expect_reject=False,
                                note=f"telegram {'.'.join(map(str, path))}={value!r}")
            if answer.status_code == 200 and "event" in (answer.json() or {}):
                check.recorded.append(("telegram", answer.json()["event"], ".".join(map(str, path))))
        elif door == "stripe":
            session = payloads.paid_checkout_session(user)
            event = data.draw(st.sampled_from([
                events.event("checkout.session.completed", session),
                events.event("charge.refunded", events.charge(payment_intent=session.get("payment_intent") or events.new_id("pi"), refunded=True,
                                                              metadata={"telegram_user_id": str(user)})),
                events.event("customer.subscription.updated", events.subscription(metadata={"telegram_user_id": str(user)})),
            ]), label="event")
            path = data.draw(st.sampled_from([p for p in _leaves(event) if p[0] not in ("object",)]), label="field")
            _put(event, path, value)
            body = _body(event)
            answer = check.send("POST", "/webhooks/stripe", body=body, headers=payloads.sign_stripe(body)["headers"],
                                expect_reject=False, note=f"stripe {event['type']} {'.'.join(map(str, path))}={value!r}")
            if answer.status_code == 200:
                check.recorded.append(("stripe", event["id"] if isinstance(event.get("id"), str) else "", ".".join(map(str, path))))
        elif door == "api_v1":
            how = data.draw(st.sampled_from(["user", "check_user", "check_key", "grant_field", "revoke"]), label="how")
            if how == "user":
                check.send("GET", f"/api/v1/users/{_path(value)}", headers=api)
            elif how == "check_user":
                check.send("GET", f"/api/v1/users/{_path(value)}/entitlements/premium", headers=api)
            elif how == "check_key":
                check.send("GET", f"/api/v1/users/{user}/entitlements/{_path(value)}", headers=api)
            elif how == "revoke":
                check.send("DELETE", f"/api/v1/grants/{_path(value)}", headers=api)
            else:
                body = {"entitlement": "premium", "days": 1, "reason": "chaos"}
                field = data.draw(st.sampled_from(["entitlement", "days", "reason", "until"]), label="grant field")
                body.pop("days") if field == "until" else None
                body[field] = value
                # A grant is the one request here that may succeed (a poisoned reason is cleaned or refused).
                check.send("POST", f"/api/v1/users/{user}/grants", body=_body(body), headers=api, expect_reject=False)
        elif door == "session":
            where = data.draw(st.sampled_from(["first_name", "username", "init_data"]), label="where")
            named = {"id": user, "first_name": value if where == "first_name" else "Chaos"}
            if where == "username":
                named["username"] = value
            raw = _signed_init_data(named)
            if where == "init_data":
                raw = raw + value
            # A correctly signed name with a NUL is a real payer's: signing in may succeed, the name is cleaned.
            check.send("POST", "/api/session", body=_body({"init_data": raw}), headers={"Content-Type": "application/json"},
                       expect_reject=where == "init_data")
        elif door == "miniapp":
            token = _sign_in(check, user)
            route = data.draw(st.sampled_from(["/api/invoice", "/api/checkout"]), label="route")
            if token is not None:
                check.send("POST", route, body=_body({"plan": value}),
                           headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        else:
            check.send("GET", f"/checkout/success?session_id=cs_{_path(value)}")

    case()


def _signed_init_data(user: dict) -> str:
    """initData signed with the bot's token whose user JSON writes NULs and lone surrogates as \\u escapes, as a client may."""
    from urllib.parse import urlencode

    from app.telegram.initdata import expected_hash

    fields = {"auth_date": str(int(time.time())), "user": json.dumps(user, separators=(",", ":"))}
    return urlencode({**fields, "hash": expected_hash(fields, config.BOT_TOKEN)})


def _sign_in(check: Checker, user: int) -> str | None:
    from app.telegram.initdata import sign_init_data

    raw = sign_init_data(config.BOT_TOKEN, user={"id": user, "first_name": "Chaos"})
    answer = check.http.post(check.url + "/api/session", json={"init_data": raw}, timeout=30)
    return answer.json().get("access_token") if answer.status_code == 200 else None


def _star_transactions(first_user: int, now: int) -> list[dict]:
    """Good Star payments with poisoned ones between them: in ids, amounts, users, payloads, periods and dates."""
    plan, good, bad = payloads.TELEGRAM_PLAN, [], []
    for n, value in enumerate(POISON):
        user = first_user + n
        payload = payloads.invoice_payload(plan, user)
        source = {"type": "user", "transaction_type": "invoice_payment", "invoice_payload": payload,
                  "user": {"id": user, "is_bot": False, "first_name": "Ledger"}}
        good.append({"id": f"stx_good_{first_user}_{n}", "amount": payloads.STARS_PRICE, "date": now - 60 + n, "source": source})
        for field in ("id", "amount", "user", "invoice_payload", "subscription_period", "date", "first_name"):
            t = copy.deepcopy({"id": f"stx_bad_{first_user}_{n}_{field}", "amount": payloads.STARS_PRICE, "date": now - 30,
                               "source": source})
            if field in ("id", "amount", "date"):
                t[field] = value
            elif field == "user":
                t["source"]["user"]["id"] = value
            elif field == "first_name":
                t["source"]["user"]["first_name"] = value  # a name: cleaned, and the payment is recorded
            else:
                t["source"][field] = value
            bad.append(t)
    return good + bad


def _stripe_events(first_user: int) -> list[dict]:
    events = payloads.stripe_events()
    result = []
    for n, value in enumerate(POISON):
        for field in ("id", "customer", "client_reference_id", "metadata"):
            session = payloads.paid_checkout_session(first_user + n)
            event = events.event("checkout.session.completed", session)
            if field == "id":
                event["id"] = "evt_" + value
            elif field == "metadata":
                session["metadata"]["telegram_user_id"] = value
            else:
                session[field] = value
            result.append(event)
    return result


def ledger_cases(stack, check: Checker, first_user: int) -> dict:
    """Poisoned ledgers read by `entitle reconcile telegram|stripe` against the stack's database: each run ends, bad entries reported."""
    from simulate.stripe_api import FakeStripeAPI
    from simulate.telegram_api import FakeTelegramAPI

    telegram = FakeTelegramAPI(config.BOT_TOKEN).start()
    stripe = FakeStripeAPI(secret_key=config.STRIPE_KEY).start()
    figures = {}
    try:
        for t in _star_transactions(first_user, int(time.time())):
            telegram.add_star_transaction(t)
        for event in _stripe_events(first_user):
            stripe.put_event(event)
        env = {**stack.env, "TELEGRAM_API_URL": telegram.url, "STRIPE_API_BASE": stripe.url}
        for provider in ("telegram", "stripe"):
            run = subprocess.run([str(config.ROOT / ".venv" / "bin" / "entitle"), "reconcile", provider, "--days", "1", "--json"],
                                 env=env, capture_output=True, text=True, timeout=300)
            check.sent += 1
            if run.returncode != 0:
                check.violate(f"reconcile {provider} exited {run.returncode}: {run.stderr[-300:]!r}")
                continue
            rows = json.loads(run.stdout)["rows"]
            figures[provider] = {action: sum(1 for r in rows if r["action"] == action) for action in {r["action"] for r in rows}}
            for row in rows:
                if row["action"] == "recorded":
                    check.recorded.append((provider, row["external_id"], "ledger"))
    finally:
        telegram.stop()
        stripe.stop()
    return figures


def unreadable(stack, recorded: list[tuple[str, object, str]]) -> tuple[dict[str, int], list[str]]:
    """The recorded events' statuses, and those that never reached their handler's own checks (still pending, or crashed)."""
    statuses: dict[str, int] = {}
    bad = []
    for provider, ref, how in recorded:
        column = "id" if isinstance(ref, int) else "external_id"
        rows = stack.sql(f'SELECT status, error FROM "event" WHERE provider = %s AND {column} = %s', (provider, ref))
        for status, error in rows:
            statuses[status] = statuses.get(status, 0) + 1
            if status == "pending" or (status == "failed" and CRASH.match(error or "")):
                bad.append(f"{provider} {ref} ({how}): {status} {str(error)[:160]!r}")
    return statuses, bad


def run(stack, first_user: int) -> dict:
    """The family: doors, then ledgers, then every stored row checked once the workers are done."""
    check = Checker(stack.url)
    created = subprocess.run([str(config.ROOT / ".venv" / "bin" / "entitle"), "apikeys", "create", "chaos-poison", "--json"],
                             env=stack.env, capture_output=True, text=True, timeout=60)
    api_key = json.loads(created.stdout)["key"]
    door_cases(check, first_user, api_key)
    ledgers = ledger_cases(stack, check, first_user + 500_000)
    deadline = time.monotonic() + 120
    while True:
        statuses, bad = unreadable(stack, check.recorded)
        if not statuses.get("pending") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for line in bad:
        check.violate(f"a row its handler cannot read: {line}")
    return {"kind": "stored", "sent": check.sent, "statuses": check.statuses, "violations": check.violations,
            "recorded": len(check.recorded), "outcomes": statuses, "unreadable": len(bad), "ledgers": ledgers}
