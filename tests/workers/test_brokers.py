"""BROKER_URL picks the broker: Redis, RabbitMQ, or the embedded in-process one."""
from __future__ import annotations

import os
import socket
import uuid

import dramatiq
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from app.config import load_settings
from app.models import Event, Grant
from tests.support.slow_handlers import TABLES
from workers.runtime import build_runtime
from tests.support.waiting import wait_for

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def rabbitmq_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_the_url_picks_the_broker(env):
    def kind(**extra):
        return type(build_runtime(load_settings(environ={**env, **extra}, env_file="/none")).broker)

    assert kind() is RedisBroker
    assert kind(BROKER_URL="", REDIS_URL="") is StubBroker
    assert kind(BROKER_URL="", REDIS_URL=env["BROKER_URL"]) is RedisBroker
    assert kind(BROKER_URL=AMQP_URL) is RabbitmqBroker
    with pytest.raises(ValueError, match="BROKER_URL"):
        kind(BROKER_URL="kafka://nope")


@pytest.mark.skipif(not rabbitmq_up(), reason="RabbitMQ is not running on 127.0.0.1:5672 (.ci/run starts it)")
def test_an_event_goes_through_rabbitmq(env, database):
    runtime = build_runtime(load_settings(environ={**env, "BROKER_URL": AMQP_URL}, env_file="/none"), tables=TABLES)
    broker = runtime.broker
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    reference = f"amqp-{uuid.uuid4().hex[:8]}"
    try:
        runtime.accept("testpay", reference, "slow_paid", {"user": 77, "sleep": 0})
        wait_for(lambda: Event.get(Event.external_id == reference).status == "processed", timeout=30)
    finally:
        worker.stop(timeout=5000)
        broker.close()
    assert Grant.select().where(Grant.reference == reference).count() == 1


def test_the_embedded_broker_processes_in_process(env, database):
    runtime = build_runtime(load_settings(environ={**env, "BROKER_URL": "", "REDIS_URL": ""}, env_file="/none"), tables=TABLES)
    broker = runtime.broker
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        runtime.accept("testpay", "embedded-1", "slow_paid", {"user": 78, "sleep": 0})
        wait_for(lambda: Event.get(Event.external_id == "embedded-1").status == "processed")
    finally:
        worker.stop(timeout=5000)
    assert Grant.select().where(Grant.reference == "embedded-1").count() == 1


def test_payments_chat_access_and_bot_replies_each_have_a_queue(env, database, runtime):
    from workers.broker import queue_depths

    runtime.accept("telegram", "update:1", "command", {"update_id": 1})
    runtime.accept("testpay", "pay-1", "slow_paid", {"user": 1})
    runtime.accept("access", "remove:1", "chat_remove", {"user": 1, "chat": -100, "entitlement": "premium"})
    runtime.accept("telegram", "join:1", "chat_join_request", {"update_id": 2})
    assert queue_depths(runtime.broker, runtime.queues()) == {"payments": 1, "access": 2, "sessions": 1}
