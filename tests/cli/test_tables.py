"""Listings at 80 columns fit without breaking an id, key or timestamp; piped, each row is one tab-separated line."""
from __future__ import annotations

import re

from app.models import Event, EventStatus

TERMINAL_80 = {"TTY_COMPATIBLE": "1", "NO_COLOR": "1", "COLUMNS": "80"}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def _events(n: int) -> list[Event]:
    return [
        Event.create(provider="stripe", external_id=f"evt_1QabcdefGHIJKLmnopqrs{i:04d}", type="checkout.session.completed",
                     status=EventStatus.FAILED, attempts=3,
                     error="Stripe knows no checkout session cs_test_a1b2c3; nothing was granted and nothing will be " * 2,
                     payload={"data": {"object": {"client_reference_id": "777000111"}}})
        for i in range(n)
    ]


def test_events_list_fits_80_columns_dropping_columns_but_breaking_no_id_type_or_timestamp(cli):
    events = _events(3)

    for width in ("80", "120"):
        shown = cli("events", "list", **{**TERMINAL_80, "COLUMNS": width})

        assert shown.exit_code == 0, shown.output
        lines = shown.stdout.splitlines()
        assert max(len(line) for line in lines) <= int(width), shown.stdout
        for event in events:
            [row] = [line for line in lines if event.external_id in line]
            assert "checkout.session.completed" in row and f"{event.id} " in row and "failed" in row
        assert not any(re.search(r"\d{4}-\d\d-\d\dT\d?\d?:?\d?\d?$", line.rstrip()) for line in lines), "no timestamp cut"
    assert all(TIMESTAMP.search(line) for line in lines if "evt_" in line), "at 120 columns the received time shows, whole"


def test_the_plans_at_80_columns_keep_plan_keys_whole_and_shorten_titles(cli):
    shown = cli("plans", "list", **TERMINAL_80)

    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, shown.stdout
    assert any("premium_month" in line for line in lines) and any("supporter_lifetime" in line for line in lines)
    assert not any(line.rstrip(" │").endswith("premium_mon") for line in lines)


def test_piped_listings_are_one_tab_separated_line_per_row_after_a_header(cli):
    events = _events(4)

    piped = cli("events", "list", COLUMNS="80")

    assert piped.exit_code == 0, piped.output
    header, *rows = piped.stdout.splitlines()
    assert header.split("\t")[:4] == ["id", "provider", "type", "external id"]
    assert len(rows) == 4
    for row in rows:
        fields = row.split("\t")
        assert len(fields) == len(header.split("\t"))
        assert fields[3] in {e.external_id for e in events} and fields[5] == "failed"
        assert fields[-1].startswith("Stripe knows no checkout session"), "prose is kept, on its row"
