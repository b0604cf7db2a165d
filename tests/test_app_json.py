"""`app.json`, Heroku's manifest: valid, and naming what a production deploy must be given."""
from __future__ import annotations

import json
import re

from tests.conftest import ROOT

MANIFEST = json.loads((ROOT / "app.json").read_text())
README = (ROOT / "README.md").read_text()

# What production needs that is not a default: secrets, the public address, production mode.
# DATABASE_URL and REDIS_URL come from the add-ons, which set them.
PRODUCTION = {"ENTITLE_ENV", "PUBLIC_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "JWT_SECRET_KEY", "METRICS_TOKEN",
              "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"}


def _configuration_names() -> set[str]:
    table = README[README.index("## Configuration"):README.index("\n## ", README.index("## Configuration") + 1)]
    return {name for row in table.splitlines() if row.startswith("| `") for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def test_app_json_names_every_variable_production_needs_with_secrets_generated():
    env = MANIFEST["env"]
    assert PRODUCTION <= set(env)
    assert env["ENTITLE_ENV"]["value"] == "production"
    for secret in ("TELEGRAM_WEBHOOK_SECRET", "JWT_SECRET_KEY", "METRICS_TOKEN"):
        assert env[secret].get("generator") == "secret", secret
    assert env["PUBLIC_URL"]["required"] is True and env["TELEGRAM_BOT_TOKEN"]["required"] is True
    assert all(entry.get("description") for entry in env.values())


def test_app_json_asks_for_the_databases_and_both_process_types():
    plans = {addon["plan"] if isinstance(addon, dict) else addon for addon in MANIFEST["addons"]}
    assert {"heroku-postgresql", "heroku-redis"} <= plans
    assert set(MANIFEST["formation"]) == {"web", "worker"}
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert set(procfile) == {"release", "web", "worker"}, "Heroku runs the release phase from the Procfile"


def test_every_variable_in_app_json_is_one_the_service_reads():
    documented = _configuration_names()
    assert set(MANIFEST["env"]) <= documented, set(MANIFEST["env"]) - documented
