"""The README's "try it locally" commands, copied from the README itself and run as a newcomer runs them."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess

import pytest
import requests

from tests.conftest import ROOT
from simulate.redis_server import free_port
from tests.support import processes
from tests.support.waiting import wait_for

README = (ROOT / "README.md").read_text()


def _section(start: str) -> str:
    """The README's text from the paragraph starting with `start` to the next heading."""
    at = README.index(start)
    end = README.find("\n## ", at)
    return README[at:end if end != -1 else None]


def _blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


TELEGRAM = _blocks(_section("Try it locally without Telegram"))
STRIPE = _blocks(_section("Try it without a Stripe account"))
DOOR = _blocks(_section("Try the paywall locally"))
WAYS_IN = _blocks(_section("Try them locally, with the sandbox"))
SUBSCRIPTIONS = _blocks(_section("Try a cancel and a resume locally"))
MISSED = _blocks(_section("Try a missed webhook locally"))


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _shell(script: str, cwd, env, **kwargs):
    return processes.start(["bash", "-c", script], cwd=cwd, env=env, text=True, **kwargs)


@pytest.fixture
def newcomer_dir(tmp_path):
    """A working directory like the repository's: `.venv` and the example plans.toml, nothing else."""
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "plans.toml").write_text((ROOT / "plans.toml").read_text())
    return tmp_path


@pytest.fixture
def newcomer_env():
    """A newcomer's shell: none of the suite's settings, and the ports the README's commands honour set to free ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "BROKER_", "REDIS_", "ENTITLE_", "PORT", "PUBLIC_", "SANDBOX_"))}
    env.update(PORT=str(free_port()), SANDBOX_PORT=str(free_port()))
    return env


@pytest.fixture
def default_ports_taken():
    """Ports 8000 and 8001 held, as `make run` and `entitle sandbox` hold them in another shell (or already held)."""
    held = []
    for port in (8000, 8001):
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
            held.append(sock)
        except OSError:  # something already listens there: just as well
            sock.close()
    yield
    for sock in held:
        sock.close()


def test_the_readme_try_it_locally_commands_work_as_written(newcomer_dir, newcomer_env, default_ports_taken):
    assert len(TELEGRAM) == 3 and len(STRIPE) == 1, "the README's try-it-locally sections changed shape"
    env = newcomer_env
    port, sandbox_port = int(env["PORT"]), int(env["SANDBOX_PORT"])
    sandbox_shell, service_shell = TELEGRAM[0], TELEGRAM[1]
    exports = "\n".join(line for line in service_shell.splitlines() if line.startswith("export "))
    sandbox = _shell(sandbox_shell, newcomer_dir, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    service = None
    try:
        wait_for(lambda: _listening(sandbox_port), timeout=30, message="the sandbox")
        service = _shell(service_shell, newcomer_dir, env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def up():
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                assert service.poll() is None, service.stdout.read()
                return False

        wait_for(up, timeout=60, message="the service the README starts")

        stars = subprocess.run(["bash", "-e", "-c", f"{exports}\n{TELEGRAM[2]}"], cwd=newcomer_dir, env=env,
                               capture_output=True, text=True, timeout=120)
        assert stars.returncode == 0, stars.stdout + stars.stderr
        said = " ".join(stars.stdout.split())
        assert "refunded" in said and "refund" in said and "revoked" in said
        assert '"access_token"' in stars.stdout and '"entitlement":"premium"' in stars.stdout.replace(" ", ""), "sign-in in the sandbox"
        assert f"http://127.0.0.1:{port}/app#tgWebAppData=" in stars.stdout, "the signed-in Mini App's address"

        card = subprocess.run(["bash", "-e", "-c", f"{exports}\n{STRIPE[0]}"], cwd=newcomer_dir, env=env,
                              capture_output=True, text=True, timeout=120)
        assert card.returncode == 0, card.stdout + card.stderr
        said = " ".join(card.stdout.split())
        assert "pi_" in said and "refund" in said and "revoked" in said

        door = subprocess.run(["bash", "-e", "-c", f"{exports}\n{DOOR[0]}"], cwd=newcomer_dir, env=env,
                              capture_output=True, text=True, timeout=120)
        assert door.returncode == 0, door.stdout + door.stderr
        said = " ".join(door.stdout.split())
        assert ": paywall" in said and "/app?join=" in said and ": approved" in said

        def approved_after_paying():
            shown = subprocess.run(["bash", "-e", "-c", f"{exports}\nentitle customer show 2"], cwd=newcomer_dir, env=env,
                                   capture_output=True, text=True, timeout=60)
            return "approved after the payment" in " ".join(shown.stdout.split())

        wait_for(approved_after_paying, timeout=60, message="the paywall's request approved once paid")

        ways = subprocess.run(["bash", "-e", "-c", f"{exports}\n{WAYS_IN[0]}"], cwd=newcomer_dir, env=env,
                              capture_output=True, text=True, timeout=180)
        assert ways.returncode == 0, ways.stdout + ways.stderr
        summaries = {}
        for user in (3, 5):
            shown = subprocess.run(["bash", "-e", "-c", f"{exports}\nentitle customer show {user} --json"], cwd=newcomer_dir,
                                   env=env, capture_output=True, text=True, timeout=60)
            summaries[user] = " ".join(line["summary"] for line in json.loads(shown.stdout)["timeline"])
        assert "free trial of starter" in summaries[3] and "from promo code WELCOME" in summaries[3]
        assert "premium received as a gift" in summaries[5]

        subscribed = subprocess.run(["bash", "-e", "-c", f"{exports}\n{SUBSCRIPTIONS[0]}"], cwd=newcomer_dir, env=env,
                                    capture_output=True, text=True, timeout=120)
        assert subscribed.returncode == 0, subscribed.stdout + subscribed.stderr
        said = " ".join(subscribed.stdout.split())
        assert "will not renew" in said and "resumed" in said and "reported canceled" in said and "processed" in said
        assert said.count('"telegram_payment_charge_id"') == 2 and "canceled" in said.rsplit("reported canceled", 1)[1]

        missed = subprocess.run(["bash", "-e", "-c", f"{exports}\n{MISSED[0]}"], cwd=newcomer_dir, env=env,
                                capture_output=True, text=True, timeout=180)
        assert missed.returncode == 0, missed.stdout + missed.stderr
        said = " ".join(missed.stdout.split())
        # Before reconciling: nothing in the inbox, no access; then found, granted once, and known on the second run.
        assert said.count("no events") == 1 and said.count("no grants for user 7") == 1 and said.count("no grants for user 8") == 1
        assert said.index("no grants for user 7") < said.index("would be recorded") < said.index("granted premium to user 7 until")
        assert re.findall(r"(\d+) recorded,", said) == ["1", "0", "1"], said
        assert "granted premium to user 8 until" in said
        for user, source in ((7, "telegram"), (8, "stripe")):
            held = subprocess.run(["bash", "-e", "-c", f"{exports}\nentitle entitlements list --user {user} --json"], cwd=newcomer_dir,
                                  env=env, capture_output=True, text=True, timeout=60)
            assert [(g["source"], g["active"]) for g in json.loads(held.stdout)] == [(source, True)], held.stdout + held.stderr
    finally:
        for proc in (service, sandbox):
            if proc is not None:
                processes.end(proc)
    assert not _listening(port) and not _listening(sandbox_port), "a README process outlived its shell"
