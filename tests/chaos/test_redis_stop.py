"""Redis stopped while real payment webhooks arrive: they are still accepted, and granted once when it is back."""
from __future__ import annotations

import dramatiq
import pytest

from app.config import load_settings
from app.models import Event
from tests.support.chaos import all_granted, clean, payments_for, post, tally
from simulate.redis_server import RedisServer
from tests.support.waiting import wait_for


@pytest.fixture
def own_redis():
    server = RedisServer().start()
    yield server
    server.stop()


def test_payments_accepted_while_redis_is_down_are_granted_once_after_it_returns(env, database, own_redis, stripe_api):
    from webapp import create_app
    from workers.runtime import build_runtime

    settings = load_settings(environ={**env, "BROKER_URL": own_redis.url}, env_file="/none")
    runtime = build_runtime(settings)
    worker = dramatiq.Worker(runtime.broker, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        client = create_app(runtime=runtime).test_client()
        deliveries = payments_for(client.application, 20, first_user=43_000_000, stripe_api=stripe_api)
        # Given half the payments delivered while Redis is up
        statuses = [post(client, d) for d in deliveries[:10]]

        # When Redis stops (its queues are lost with it) and the other half arrives
        own_redis.stop()
        statuses += [post(client, d) for d in deliveries[10:]]
        assert Event.select().where(Event.status == "pending").count() >= 10

        # Then, once Redis is back, the sweeper queues what was waiting and each payment is granted once
        own_redis.start()
        wait_for(lambda: all_granted(deliveries), timeout=60, message="every payment granted after Redis returned")
    finally:
        worker.stop(timeout=5000)
    assert statuses == [200] * 20
    assert tally(deliveries, statuses) == clean(20)
