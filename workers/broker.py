"""The Dramatiq broker chosen by `BROKER_URL`: Redis, RabbitMQ, or in-process when unset."""
from __future__ import annotations

import os
from typing import Iterable

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, default_middleware

from app.config import Settings
from workers.db_middleware import DatabaseConnection
from workers.heartbeat import Heartbeat
from workers.metrics_relay import PublishHostMetrics
from workers.outbox import OutboxPump
from workers.startup_check import StartupCheck


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A broker for the configured URL, with the project's middleware (the runtime adds the sweeper); connects to nothing yet."""
    middleware = [m() for m in default_middleware] + [
        StartupCheck(settings), CurrentMessage(), DatabaseConnection(), Heartbeat(),
    ]
    middleware.append(OutboxPump(settings))
    middleware.append(PublishHostMetrics(settings))
    if settings.prometheus_multiproc_dir:
        middleware.append(_dramatiq_metrics(settings.prometheus_multiproc_dir))
    url = settings.broker_url
    if not url:
        return StubBroker(middleware=middleware)
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis
        from dramatiq.brokers.redis import RedisBroker
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # A frozen or unreachable Redis costs a caller BROKER_TIMEOUT once, never more: no retries
        # here (a webhook leaves the hand-off to the sweeper; Dramatiq restarts its own consumers).
        timeout = settings.broker_timeout
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, health_check_interval=30, retry=Retry(NoBackoff(), 0),
        )
        return RedisBroker(client=client, namespace=settings.broker_namespace, middleware=middleware)
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url, middleware=middleware)
    raise ValueError("BROKER_URL must start with redis://, rediss:// or amqp://")


def _dramatiq_metrics(directory: str) -> dramatiq.Middleware:
    """Dramatiq's own metrics in the directory our `/metrics` reads, with no HTTP server of their own."""
    os.environ["dramatiq_prom_db"] = directory  # Dramatiq's documented variable, read at its first import
    from workers.dramatiq_metrics import DramatiqMetrics

    return DramatiqMetrics(directory)


def queue_depths(broker: dramatiq.Broker, queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting in each of these queues (delayed ones included)."""
    depths: dict[str, int] = {}
    for queue in queues:
        if isinstance(broker, StubBroker):
            ready = broker.queues.get(queue)
            delayed = broker.queues.get(f"{queue}.DQ")
            depths[queue] = (ready.qsize() if ready else 0) + (delayed.qsize() if delayed else 0)
        elif hasattr(broker, "client"):  # Redis
            ns = broker.namespace
            depths[queue] = int(broker.client.llen(f"{ns}:{queue}")) + int(broker.client.llen(f"{ns}:{queue}.DQ"))
        else:
            try:
                ready, delayed, _dead = broker.get_queue_message_counts(queue)
                depths[queue] = ready + delayed
            except Exception:  # RabbitMQ answers only for declared queues
                depths[queue] = 0
    return depths


def ping(broker: dramatiq.Broker) -> None:
    """Raise when the broker cannot be reached."""
    if isinstance(broker, StubBroker):
        return
    if hasattr(broker, "client"):
        broker.client.ping()
        return
    import pika

    connection = pika.BlockingConnection(broker.parameters)
    connection.close()
