"""The bot's Bot API budget itself: callers deferred to their slots go at its pace, however late they come back."""
from __future__ import annotations

import time
import uuid

import pytest

from app.telegram import budget
from tests.support.telegram import most_in_one_second

RATE = 5
CALLERS = 15


@pytest.fixture(params=["redis", "in-process"])
def env(env, request):
    """A budget of 5 calls a second, in the broker's Redis (a namespace of its own) or, with no broker, in this process."""
    values = {**env, "BOT_API_RATE": str(RATE), "BROKER_NAMESPACE": f"entitle-budget-{uuid.uuid4().hex[:8]}"}
    if request.param == "in-process":
        values["BROKER_URL"] = values["REDIS_URL"] = ""
    return values


def test_callers_that_come_back_late_together_still_go_no_more_than_the_rate_in_any_second(settings):
    # Given 15 reminders to 15 chats, each deferred to its slot in a budget of 5 calls a second
    bot = budget.for_settings(settings)
    chats = {f"event:{i}": 9_100_000 + i for i in range(CALLERS)}
    waits = {caller: bot.wait_for(caller, chat) for caller, chat in chats.items()}
    assert sum(1 for w in waits.values() if w == 0) == 1 and max(waits.values()) > (CALLERS - 2) / RATE

    # When they all come back late, at once, after the last slot (as deferred messages do when workers are slow to see them due)
    time.sleep(max(waits.values()) + 0.5)
    went, due = [], dict.fromkeys(chats, 0.0)
    deadline = time.monotonic() + 20
    while due and time.monotonic() < deadline:
        for caller in [c for c, at in due.items() if at <= time.monotonic()]:
            wait = bot.wait_for(caller, chats[caller])
            if wait == 0:
                went.append(time.monotonic())
                del due[caller]
            else:
                due[caller] = time.monotonic() + wait
        time.sleep(0.005)

    # Then every one goes, never more than 5 in one second, and none is sent to the back of the line again
    assert not due, f"{len(due)} never went"
    # The budget times calls by Redis's clock and these are read in this process, so allow a few ms of difference.
    assert most_in_one_second(went, span=0.98) <= RATE
    assert went[-1] - went[0] < (CALLERS - 1) / RATE + 1
