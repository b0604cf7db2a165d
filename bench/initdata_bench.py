"""Benchmark 3: initData verification, microseconds per call, beside three published validators.

All four get the same inputs: realistic initData strings (query_id, user JSON, auth_date, hash)
signed with one bot token. Each is called as its documentation shows; telegram-webapp-auth's
authenticator is built once with the derived secret, as its README does.
"""
from __future__ import annotations

import time
from datetime import timedelta

from bench import config
from bench.report import median, table

INPUTS = 1000
CALLS = config.size(20_000, 100_000)
REPEATS = 5


def _inputs() -> list[str]:
    from app.telegram.initdata import sign_init_data

    now = int(time.time())
    return [
        sign_init_data(config.BOT_TOKEN, user={"id": 10_000 + i, "first_name": "Ada", "last_name": "Lovelace",
                                               "username": f"ada{i}", "language_code": "en", "is_premium": True,
                                               "allows_write_to_pm": True,
                                               "photo_url": f"https://t.me/i/userpic/320/ada{i}.svg"},
                       auth_date=now, query_id=f"AAHdF6IQAAAAAN0XohDhrOrc{i}", chat_instance="-8301826434926380",
                       chat_type="private")
        for i in range(INPUTS)
    ]


def candidates() -> dict:
    """name → (verify function, what it checks besides the hash)."""
    from app.telegram.initdata import verify_init_data

    found = {"entitle `verify_init_data`": (lambda raw: verify_init_data(raw, config.BOT_TOKEN, max_age=900),
                                            "age (and future dates), constant-time compare, strict parse, user JSON")}
    try:
        from telebot.util import validate_web_app_data

        found["pyTelegramBotAPI `util.validate_web_app_data`"] = (
            lambda raw: validate_web_app_data(config.BOT_TOKEN, raw), "no age check, `==` compare, returns a bool")
    except ImportError:
        pass
    try:
        from init_data_py import validate_by_hash

        found["init-data-py `validate_by_hash`"] = (
            lambda raw: validate_by_hash(raw, config.BOT_TOKEN, expires_in=900), "age, constant-time compare, parsed model")
    except ImportError:
        pass
    try:
        from telegram_webapp_auth.auth import TelegramAuthenticator, generate_secret_key

        auth = TelegramAuthenticator(generate_secret_key(config.BOT_TOKEN))
        found["telegram-webapp-auth `TelegramAuthenticator.validate`"] = (
            lambda raw: auth.validate(raw, timedelta(seconds=900)), "age, constant-time compare, parsed model")
    except ImportError:
        pass
    return found


def _time(fn, inputs: list[str]) -> float:
    started = time.perf_counter()
    n = 0
    while n < CALLS:
        for raw in inputs:
            fn(raw)
        n += len(inputs)
    return (time.perf_counter() - started) / n * 1e6


def run() -> dict:
    """Microseconds per verification for each candidate (median of REPEATS), all checked to accept the inputs."""
    inputs = _inputs()
    results = {}
    for name, (fn, checks) in candidates().items():
        for raw in inputs[:10]:
            if fn(raw) is False:
                raise RuntimeError(f"{name} rejected a valid initData")
        results[name] = {"us": median([_time(fn, inputs) for _ in range(REPEATS)]), "checks": checks}
    return {"calls": CALLS, "repeats": REPEATS, "results": results}


def render(summary: dict) -> str:
    """The initData table."""
    results = summary["results"]
    ours = results["entitle `verify_init_data`"]["us"]
    others = [r["us"] for name, r in results.items() if not name.startswith("entitle")]
    fastest = min(others) if others else ours
    rows = []
    for name, r in sorted(results.items(), key=lambda kv: kv[1]["us"]):
        rows.append([name, f"{r['us']:.1f}", f"{r['us'] / fastest:.2f}", r["checks"]])
    verdict = "met" if ours <= fastest * 1.0 else "missed"
    return table(["validator", "µs per call", "÷ fastest other", "checks"], rows) + \
        f"\n\nTarget: no slower than the fastest other validator ({fastest:.1f} µs) — {verdict} ({ours:.1f} µs)."
