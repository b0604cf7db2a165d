"""Carries each host's metrics through the shared Redis, so any web process serves every host's.

Every process with a Redis (web and worker alike) publishes its host's aggregate (all processes of
the host, through the multiprocess directory) under `{namespace}:metrics:host:{host}` (and the host's
name in the set `{namespace}:metrics:hosts`), refreshed
every quarter of `METRICS_HOST_TTL` and expiring after it: a host gone for good drops out of
`/metrics` within that bound. Several processes of one host write the same key with the same sums,
so nothing is counted twice. `/metrics` reads its own host fresh from the directory.
"""
from __future__ import annotations

import logging
import threading
from typing import Iterable, Mapping

import redis
from dramatiq.middleware import Middleware

from app import host_metrics
from app.config import Settings

log = logging.getLogger(__name__)


class HostMetricsStore:
    """The hosts' metric snapshots in Redis."""

    def __init__(self, client: redis.Redis, namespace: str, host: str, ttl: float):
        self.client = client
        self.prefix = f"{namespace}:metrics:host:"
        self.hosts_key = f"{namespace}:metrics:hosts"  # the hosts that have published, so a scrape reads no other key
        self.host = host
        self.ttl = ttl

    def publish(self) -> None:
        """Write this host's current metrics, to expire after the TTL unless written again."""
        snapshot = host_metrics.encode(host_metrics.local_families())
        with self.client.pipeline(transaction=False) as pipe:
            pipe.set(self.prefix + self.host, snapshot, px=int(self.ttl * 1000))
            pipe.sadd(self.hosts_key, self.host)
            pipe.execute()

    def others(self) -> Mapping[str, list]:
        """The latest snapshot of every other live host, by host name."""
        hosts = sorted(h.decode() if isinstance(h, bytes) else h for h in self.client.smembers(self.hosts_key))
        snapshots = self.client.mget([self.prefix + host for host in hosts]) if hosts else []
        found, gone = {}, []
        for host, snapshot in zip(hosts, snapshots):
            if snapshot is None:
                gone.append(host)  # its snapshot expired: the host stopped publishing
            elif host != self.host:
                found[host] = host_metrics.decode(snapshot)
        if gone:
            self.client.srem(self.hosts_key, *gone)
        return found


def store_for(settings: Settings) -> HostMetricsStore | None:
    """The store for these settings, or None when there is no Redis to share (one host, nothing to carry)."""
    if not settings.redis_url:
        return None
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=10)
    return HostMetricsStore(client, settings.broker_namespace, settings.metrics_host, settings.metrics_host_ttl)


def exposition(settings: Settings, store: HostMetricsStore | None, shared: Iterable = ()) -> tuple[bytes, str]:
    """`/metrics`: this host's metrics and, when a Redis is shared, every other live host's, labelled by host; then `shared`."""
    others: Mapping[str, list] = {}
    if store is not None:
        try:
            others = store.others()
        except redis.RedisError as exc:  # this host's samples are still worth serving
            log.warning("other hosts' metrics unreadable: %s", type(exc).__name__)
    return host_metrics.exposition(settings.metrics_host, others, shared)


class Publisher:
    """A daemon thread publishing this host's metrics every quarter of the TTL."""

    def __init__(self, store: HostMetricsStore):
        self.store = store
        self.interval = store.ttl / 4
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Publisher":
        """Publish now, then keep publishing until `stop`."""
        self._stop.clear()
        self._publish()
        self._thread = threading.Thread(target=self._run, name="entitle-metrics-publisher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Publish a last time (this process's final counts) and end the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._publish()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._publish()

    def _publish(self) -> None:
        try:
            self.store.publish()
        except Exception as exc:  # Redis down: the key expires and comes back with the next publish
            log.warning("this host's metrics not published: %s", type(exc).__name__)


_started: dict[tuple, Publisher] = {}
_started_lock = threading.Lock()


def publish_from_this_process(settings: Settings) -> HostMetricsStore | None:
    """Start this process's publisher for these settings once (web processes call it for each app they build)."""
    if not settings.redis_url:
        return None
    key = (settings.redis_url, settings.broker_namespace, settings.metrics_host, settings.metrics_host_ttl)
    with _started_lock:
        if key not in _started:  # one publisher and one Redis connection pool per process, however many apps it builds
            _started[key] = Publisher(store_for(settings)).start()
        return _started[key].store


class PublishHostMetrics(Middleware):
    """Each worker process publishes its host's metrics while it runs, and once more as it stops."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.publisher: Publisher | None = None

    def after_worker_boot(self, broker, worker):
        store = store_for(self.settings)
        if store is not None:
            self.publisher = Publisher(store).start()

    def after_worker_shutdown(self, broker, worker):
        if self.publisher is not None:
            self.publisher.stop()
            self.publisher = None
