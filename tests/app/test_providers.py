"""What the inbox handlers run with: the worker's settings, and a plan catalogue read again only after an edit."""
from __future__ import annotations

import dataclasses
import os

import pytest

from app import providers
from app.plans import PlanError
from tests.conftest import ROOT

GOLD = '\n[plans.gold]\ntitle = "Gold"\nentitlement = "gold"\nstars = 500\n'


@pytest.fixture
def plans_file(tmp_path, settings):
    """A copy of the shipped catalogue that handlers read, as PLANS_FILE; the previous settings come back after."""
    path = tmp_path / "plans.toml"
    path.write_text((ROOT / "plans.toml").read_text())
    before = providers.settings()
    providers.load_handlers(dataclasses.replace(settings, plans_file=str(path)))
    yield path
    providers.load_handlers(before)


def touch_later(path, seconds: int = 10) -> None:
    """Move the file's mtime forward, as a later edit would."""
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 1_000_000_000))


def test_an_unchanged_file_is_read_once(plans_file):
    first = providers.catalogue()
    assert first.get("premium_week") is not None
    assert providers.catalogue() is first


def test_an_edit_is_picked_up_on_the_next_event(plans_file):
    before = providers.catalogue()
    assert before.get("gold") is None

    plans_file.write_text(plans_file.read_text() + GOLD)
    touch_later(plans_file)

    after = providers.catalogue()
    assert after is not before and after.get("gold").stars == 500
    assert providers.catalogue() is after


def test_a_broken_edit_is_reported_and_a_fix_is_read(plans_file):
    providers.catalogue()
    good = plans_file.read_text()
    plans_file.write_text(good + "[plans.gold\n")
    touch_later(plans_file)
    with pytest.raises(PlanError, match="not valid TOML"):
        providers.catalogue()

    plans_file.write_text(good + GOLD)
    touch_later(plans_file, 20)
    assert providers.catalogue().get("gold") is not None


def test_a_missing_file_names_the_setting(plans_file):
    plans_file.unlink()
    with pytest.raises(PlanError, match="PLANS_FILE"):
        providers.catalogue()
