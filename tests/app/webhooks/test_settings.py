"""The retry schedule of outgoing webhooks: about three days by default, configurable, checked."""
from __future__ import annotations

import pytest

from app.config import ConfigError, load_settings


def _load(**env: str):
    return load_settings(environ=env, env_file="/nonexistent/.env")


def test_the_default_schedule_spans_about_three_days_and_the_timeout_is_10s():
    settings = _load()

    assert 2.5 * 86400 <= sum(settings.webhook_retry_schedule) <= 3.5 * 86400
    assert settings.webhook_retry_schedule[0] == 5 and settings.webhook_timeout == 10


def test_the_schedule_is_comma_separated_seconds():
    assert _load(WEBHOOK_RETRY_SCHEDULE="0.5, 2,10").webhook_retry_schedule == (0.5, 2.0, 10.0)


@pytest.mark.parametrize("raw", ["5,soon", "5,-1"])
def test_a_schedule_that_is_not_seconds_stops_start_up_naming_the_variable(raw):
    with pytest.raises(ConfigError, match="WEBHOOK_RETRY_SCHEDULE"):
        _load(WEBHOOK_RETRY_SCHEDULE=raw)
