"""One host's metrics as a portable snapshot, and `/metrics` as every host's snapshots side by side.

Inside a host prometheus-client's multiprocess mode adds up the processes' files; between hosts,
which share no filesystem, a host's aggregate travels as a snapshot (`encode` / `decode`) and each
series is labelled with the host it came from, so nothing is counted twice and a scrape of any web
process sees every host.
"""
from __future__ import annotations

import glob
import json
import os
from typing import Iterable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

HOST_LABEL = "host"


def local_families() -> list[Metric]:
    """This host's metrics: every process's files added up in multiprocess mode, else this process's own."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess

        os.makedirs(directory, exist_ok=True)  # no process has written a sample yet
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return list(registry.collect())
    from prometheus_client import REGISTRY

    return list(REGISTRY.collect())


def encode(families: Iterable[Metric]) -> bytes:
    """A snapshot of metric families as JSON (names, help, types and samples; no timestamps or exemplars)."""
    return json.dumps(
        [[f.name, f.documentation, f.type, f.unit, [[s.name, s.labels, s.value] for s in f.samples]] for f in families],
        separators=(",", ":"),
    ).encode()


def decode(snapshot: bytes) -> list[Metric]:
    """The metric families of a snapshot made by `encode`."""
    families = []
    for name, documentation, type_, unit, samples in json.loads(snapshot):
        family = Metric(name, documentation, type_, unit)
        family.samples = [Sample(sample_name, labels, value) for sample_name, labels, value in samples]
        families.append(family)
    return families


class HostsCollector:
    """Every host's families merged into one family per name, each sample labelled with its host."""

    def __init__(self, by_host: Mapping[str, Iterable[Metric]]):
        self.by_host = by_host

    def collect(self) -> Iterable[Metric]:
        """One family per metric name, with the samples of every host."""
        merged: dict[str, Metric] = {}
        for host, families in sorted(self.by_host.items()):
            for family in families:
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                into.samples.extend(
                    Sample(s.name, {HOST_LABEL: host, **s.labels}, s.value, s.timestamp, s.exemplar) for s in family.samples
                )
        return list(merged.values())


class Families:
    """A collector of families built elsewhere (what the whole deploy shares, with no host label)."""

    def __init__(self, families: Iterable[Metric]):
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        """The families as given."""
        return self.families


def exposition(host: str, others: Mapping[str, Iterable[Metric]] | None = None, shared: Iterable[Metric] = ()) -> tuple[bytes, str]:
    """The text for `/metrics`: this host's metrics, read now, beside the snapshots of the `others`, then the `shared` families."""
    by_host = {name: families for name, families in (others or {}).items() if name != host}
    by_host[host] = local_families()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HostsCollector(by_host))
    registry.register(Families(shared))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def forget_gone_processes(directory: str) -> list[str]:
    """Remove the files of processes no longer running from a multiprocess directory; the paths removed.

    A process that starts serving a host's metrics calls it, so an earlier run's counts are not added again;
    the files of processes still alive (a worker started beside the web process) stay.
    """
    os.makedirs(directory, exist_ok=True)
    removed = []
    for path in glob.glob(os.path.join(directory, "*.db")):
        pid = os.path.basename(path).rsplit("_", 1)[-1].removesuffix(".db")
        if not (pid.isdigit() and _alive(int(pid))):
            os.remove(path)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
