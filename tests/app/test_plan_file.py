"""The plan file the runtime reads, for web and workers alike: read again only after an edit."""
from __future__ import annotations

import os

import pytest

from app.plans import PlanError, PlanFile
from tests.conftest import ROOT

GOLD = '\n[plans.gold]\ntitle = "Gold"\nentitlement = "gold"\nstars = 500\n'


@pytest.fixture
def plans_file(tmp_path):
    """A copy of the shipped catalogue."""
    path = tmp_path / "plans.toml"
    path.write_text((ROOT / "plans.toml").read_text())
    return path


@pytest.fixture
def plans(plans_file):
    """The loader of that copy, as a runtime holds it."""
    return PlanFile(plans_file)


def touch_later(path, seconds: int = 10) -> None:
    """Move the file's mtime forward, as a later edit would."""
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 1_000_000_000))


def test_an_unchanged_file_is_read_once(plans_file, plans):
    first = plans.current()
    assert first.get("premium_week") is not None
    assert plans.current() is first


def test_an_edit_is_picked_up_on_the_next_event(plans_file, plans):
    before = plans.current()
    assert before.get("gold") is None

    plans_file.write_text(plans_file.read_text() + GOLD)
    touch_later(plans_file)

    after = plans.current()
    assert after is not before and after.get("gold").stars == 500
    assert plans.current() is after


def test_a_broken_edit_is_reported_and_a_fix_is_read(plans_file, plans):
    plans.current()
    good = plans_file.read_text()
    plans_file.write_text(good + "[plans.gold\n")
    touch_later(plans_file)
    with pytest.raises(PlanError, match="not valid TOML"):
        plans.current()

    plans_file.write_text(good + GOLD)
    touch_later(plans_file, 20)
    assert plans.current().get("gold") is not None


def test_a_missing_file_names_the_setting(plans_file, plans):
    plans_file.unlink()
    with pytest.raises(PlanError, match="PLANS_FILE"):
        plans.current()
