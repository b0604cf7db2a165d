"""Finding a payer's events in a long inbox, and replaying many at once."""
from __future__ import annotations

import json

from app.models import Event, EventStatus


def _failed(n: int, provider: str = "telegram") -> list[Event]:
    return [
        Event.create(provider=provider, external_id=f"charge-{i:04d}", type="successful_payment", status=EventStatus.FAILED,
                     attempts=4, error="handler failed", payload={"message": {"successful_payment": {"telegram_payment_charge_id": f"charge-{i:04d}"}}})
        for i in range(n)
    ]


def test_a_long_listing_says_on_stderr_how_many_it_did_not_show(cli):
    _failed(60)
    result = cli("events", "list", "--status", "failed", "--json")
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)) == 50
    assert "showing 50 of 60 matching events" in result.stderr

    everything = cli("events", "list", "--status", "failed", "--limit", "100", "--json")
    assert len(json.loads(everything.stdout)) == 60 and "showing" not in everything.stderr


def test_search_finds_an_event_by_its_charge_id_or_by_text_in_its_payload(cli):
    _failed(5)
    stripe = Event.create(provider="stripe", external_id="evt_1", type="checkout.session.completed", status=EventStatus.PROCESSED,
                          payload={"data": {"object": {"id": "cs_test_abc", "payment_intent": "pi_3Zabc_def"}}})

    by_id = json.loads(cli("events", "list", "--search", "charge-0003", "--json").stdout)
    assert [row["external_id"] for row in by_id] == ["charge-0003"]
    by_payment_intent = json.loads(cli("events", "list", "--search", "pi_3Zabc_def", "--json").stdout)
    assert [row["id"] for row in by_payment_intent] == [stripe.id]
    # `_` and `%` are literal, not wildcards.
    assert json.loads(cli("events", "list", "--search", "pi_3Z%", "--json").stdout) == []
    assert json.loads(cli("events", "list", "--search", "charge_000", "--json").stdout) == []


def test_a_bulk_replay_shows_one_summary_and_per_event_lines_only_when_asked(cli):
    events = _failed(30)
    result = cli("events", "replay", "--failed", "--no-wait")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "30 queued, 0 skipped"

    for event in events:
        Event.update(status=EventStatus.FAILED).where(Event.id == event.id).execute()
    verbose = cli("events", "replay", "--failed", "--verbose", "--no-wait")
    assert verbose.stdout.count(": queued") == 30

    for event in events:
        Event.update(status=EventStatus.FAILED).where(Event.id == event.id).execute()
    as_json = json.loads(cli("events", "replay", "--failed", "--json", "--no-wait").stdout)
    assert len(as_json["results"]) == 30 and set(as_json["results"].values()) == {"queued"}


def test_a_64_character_charge_id_stays_whole_on_one_line_at_80_columns(cli):
    charge = "stxA" + "b" * 56 + "1234"
    Event.create(provider="telegram", external_id=charge, type="successful_payment", status=EventStatus.FAILED,
                 error="the amount paid does not match the plan", payload={})
    result = cli("events", "list", COLUMNS="80")
    assert result.exit_code == 0
    assert any(charge in line for line in result.stdout.splitlines()), result.stdout
