"""The plan catalogue: the shipped example loads; mistakes stop start-up, naming file and plan."""
from __future__ import annotations

import pytest

from app.plans import Catalogue, PlanError, load_plans
from tests.conftest import ROOT


def test_the_shipped_example_loads():
    plans = load_plans(ROOT / "plans.toml")
    month = plans["premium_month"]
    assert month.entitlement == "premium" and month.days == 30 and month.stars == 250
    assert month.stars_subscription and month.stripe_mode == "subscription"
    assert plans["supporter_lifetime"].days is None and not plans["supporter_lifetime"].sold_by_card


@pytest.mark.parametrize(
    "text, problem",
    [
        ('[plans.gold]\ntitle = "Gold"\nentitlement = "gold"\nstars = 10\ncolour = "gold"\n', "unknown field 'colour'"),
        ('[plans.gold]\ntitle = "Gold"\nentitlement = "gold"\nstars = "ten"\n', "'stars' must be int"),
        ('[plans.gold]\ntitle = "Gold"\nstars = 10\n', "'entitlement' is required"),
        ('[plans.gold]\ntitle = "Gold"\nentitlement = "gold"\n', "cannot be bought"),
        ('[plans.gold]\ntitle = "Gold"\nentitlement = "gold"\nstripe_price = "p"\nstripe_mode = "weekly"\n', "'stripe_mode'"),
        ('[plans.gold]\ntitle = "Gold"\nentitlement = "gold"\nstars = 0\n', "greater than 0"),
    ],
)
def test_a_bad_plan_is_named_with_its_file_and_problem(tmp_path, text, problem):
    path = tmp_path / "plans.toml"
    path.write_text(text)
    with pytest.raises(PlanError) as error:
        load_plans(path)
    assert str(path) in str(error.value)
    assert "plan 'gold'" in str(error.value)
    assert problem in str(error.value)


def test_malformed_toml_names_the_file(tmp_path):
    path = tmp_path / "plans.toml"
    path.write_text("[plans.gold\ntitle=")
    with pytest.raises(PlanError, match="not valid TOML") as error:
        Catalogue.from_file(path)
    assert str(path) in str(error.value)


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(PlanError, match="not found"):
        load_plans(tmp_path / "nope.toml")


def test_malformed_plans_stop_the_service_from_starting(tmp_path, cli, env):
    path = tmp_path / "plans.toml"
    path.write_text('[plans.gold]\ntitle = "Gold"\nentitlement = "gold"\nstars = 10\nprice = 3\n')
    result = cli("run", "--port", "0", PLANS_FILE=str(path))
    assert result.exit_code == 1
    assert str(path) in result.stderr and "plan 'gold'" in result.stderr and "unknown field 'price'" in result.stderr


def test_plans_are_listed_by_the_cli_and_the_api(cli, client):
    listed = cli("plans", "list", "--json")
    assert listed.exit_code == 0
    keys = [p["key"] for p in __import__("json").loads(listed.stdout)]
    assert keys == ["premium_month", "premium_week", "supporter_lifetime"]
    api = client.get("/api/plans")
    assert api.status_code == 200
    assert [p["key"] for p in api.get_json()["plans"]] == keys
