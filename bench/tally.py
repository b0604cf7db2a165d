"""The ledger every scenario ends with: events accepted, grants expected, present and doubled, events lost."""
from __future__ import annotations

from dataclasses import asdict, dataclass

PAYMENT_TYPES = ("successful_payment", "checkout.session.completed")


@dataclass
class Tally:
    """What the harness counted at the end of a run; `ok` when nothing was lost or doubled."""

    events_accepted: int
    grants_expected: int
    grants_present: int
    grants_doubled: int
    events_lost: int
    accepted_without_row: int = 0

    @property
    def ok(self) -> bool:
        """True when no accepted payment lacks its grant, none was granted twice, and every 200 has its row."""
        return self.events_lost == 0 and self.grants_doubled == 0 and self.accepted_without_row == 0

    def as_dict(self) -> dict:
        """The counts as a dict, with `ok`."""
        return {**asdict(self), "ok": self.ok}


def grants_by_user(sql, users: list[int]) -> dict[int, int]:
    """How many live grants (and ledger grant lines) each of these users holds, keyed by Telegram id."""
    if not users:
        return {}
    rows = sql(
        'SELECT u.telegram_id, COUNT(g.id) FROM "user" u JOIN "grant" g ON g.user_id = u.id '
        "WHERE u.telegram_id BETWEEN %s AND %s GROUP BY u.telegram_id",
        (min(users), max(users)),
    )
    return {int(uid): int(n) for uid, n in rows}


def ledger_grants_by_user(sql, users: list[int]) -> dict[int, int]:
    """How many `grant`/`extend` ledger lines each of these users has."""
    if not users:
        return {}
    rows = sql(
        "SELECT u.telegram_id, COUNT(l.id) FROM \"user\" u JOIN ledger_entry l ON l.user_id = u.id "
        "WHERE l.action IN ('grant', 'extend') AND u.telegram_id BETWEEN %s AND %s GROUP BY u.telegram_id",
        (min(users), max(users)),
    )
    return {int(uid): int(n) for uid, n in rows}


def stored_external_ids(sql) -> set[str]:
    """External ids of every payment event in the inbox."""
    rows = sql("SELECT external_id FROM event WHERE type IN %s", (PAYMENT_TYPES,))
    return {r[0] for r in rows}


def count(sql, items: list[dict], final: list[int | None]) -> Tally:
    """Tally a run: `items` are the requests sent (tagged with user and external_id), `final` their last status."""
    accepted_users = {item["user"] for item, status in zip(items, final) if status is not None and status < 300}
    accepted_ids = {item["external_id"] for item, status in zip(items, final) if status is not None and status < 300}
    expected_users = sorted({item["user"] for item in items})
    stored = stored_external_ids(sql)
    grants = grants_by_user(sql, expected_users)
    ledger = ledger_grants_by_user(sql, expected_users)
    doubled = sum(1 for u in expected_users if grants.get(u, 0) > 1 or ledger.get(u, 0) > 1)
    return Tally(
        events_accepted=len(accepted_ids & stored),
        grants_expected=len(accepted_users),
        grants_present=sum(1 for u in accepted_users if grants.get(u, 0) >= 1),
        grants_doubled=doubled,
        events_lost=sum(1 for u in accepted_users if grants.get(u, 0) == 0),
        accepted_without_row=len(accepted_ids - stored),
    )


def wait_for_grants(sql, users: list[int], timeout: float, poll: float = 0.25) -> float | None:
    """Seconds until every one of `users` holds a grant, or None after `timeout`."""
    import time

    started = time.monotonic()
    wanted = len(set(users))
    while time.monotonic() - started < timeout:
        rows = sql('SELECT COUNT(DISTINCT u.telegram_id) FROM "user" u JOIN "grant" g ON g.user_id = u.id '
                   "WHERE u.telegram_id BETWEEN %s AND %s", (min(users), max(users)))
        if rows[0][0] >= wanted:
            return time.monotonic() - started
        time.sleep(poll)
    return None
