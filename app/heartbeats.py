"""Worker heartbeats, kept in the database so that they work with every broker and in `entitle run`."""
from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.clock import utcnow
from app.db import transaction
from app.models import WorkerHeartbeat

INTERVAL_SECONDS = 10
# A worker not seen for this long is taken for dead (killed, or its host gone).
ALIVE_WITHIN = timedelta(seconds=30)  # three beats missed


def worker_name() -> str:
    """A name for this worker process, unique across hosts and restarts."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def beat(worker: str) -> None:
    """Note that `worker` is alive now."""
    now = utcnow()
    with transaction():
        updated = WorkerHeartbeat.update(seen_at=now).where(WorkerHeartbeat.worker == worker).execute()
        if not updated:
            WorkerHeartbeat.insert(
                worker=worker, hostname=socket.gethostname()[:255], pid=os.getpid(), started_at=now, seen_at=now
            ).on_conflict_ignore().execute()


def forget(worker: str) -> None:
    """Remove a worker that stopped cleanly, and the rows of workers dead for long."""
    with transaction():
        WorkerHeartbeat.delete().where(
            (WorkerHeartbeat.worker == worker) | (WorkerHeartbeat.seen_at < utcnow() - 10 * ALIVE_WITHIN)
        ).execute()


@dataclass(frozen=True)
class WorkersSeen:
    """How many workers were seen within `ALIVE_WITHIN`, and the last time any was."""

    alive: int
    last_seen: datetime | None

    @property
    def ok(self) -> bool:
        """True when at least one worker is alive."""
        return self.alive > 0


def seen(now: datetime | None = None) -> WorkersSeen:
    """The workers seen recently."""
    now = now or utcnow()
    rows = list(WorkerHeartbeat.select(WorkerHeartbeat.seen_at))
    alive = sum(1 for row in rows if row.seen_at >= now - ALIVE_WITHIN)
    return WorkersSeen(alive, max((row.seen_at for row in rows), default=None))
