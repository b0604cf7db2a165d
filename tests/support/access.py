"""Chat access in tests: a catalogue whose `premium` has two chats and reminders, on top of the Telegram setup."""
from __future__ import annotations

from app.models import Event
from tests.conftest import ROOT
from tests.support.telegram import telegram_env
from tests.support.waiting import wait_for

CHAT_A, CHAT_B = -1001000000011, -1001000000022
ACCESS_TABLE = f"""
[entitlements.premium]
title = "Premium"
chats = [{CHAT_A}, {CHAT_B}]
remind_days = [3, 1]
"""


def access_env(env: dict, telegram_api, tmp_path) -> dict:
    """`env` plus the bot's settings, the stand-in's address and the plan file with chats."""
    plans = tmp_path / "plans.toml"
    plans.write_text((ROOT / "plans.toml").read_text() + ACCESS_TABLE)
    telegram_env(env, telegram_api)
    env["PLANS_FILE"] = str(plans)
    return env


def access_events(type_: str) -> list[Event]:
    """The inbox rows of the access consumers of one type, oldest first."""
    return list(Event.select().where((Event.provider == "access") & (Event.type == type_)).order_by(Event.id))


def wait_all_done(type_: str, count: int) -> list[Event]:
    """Wait until `count` rows of this type exist and none is pending."""
    def done():
        rows = access_events(type_)
        return len(rows) >= count and all(r.status != "pending" for r in rows)

    wait_for(done, timeout=60, message=f"{count} {type_} event(s) done")
    return access_events(type_)


def join_request_update(update_id: int, chat_id: int, user_id: int, date: int = 1700000000) -> dict:
    """A chat_join_request update as Telegram sends it."""
    user = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
    return {
        "update_id": update_id,
        "chat_join_request": {
            "chat": {"id": chat_id, "type": "supergroup", "title": "Premium chat"},
            "from": user,
            "user_chat_id": user_id,
            "date": date,
        },
    }
