"""The README's "try it locally" commands, copied from the README itself and run as a newcomer runs them."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time

import pytest
import requests

from tests.conftest import ROOT
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


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _shell(script: str, cwd, env, **kwargs):
    return subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, start_new_session=True, text=True, **kwargs)


@pytest.fixture
def newcomer_dir(tmp_path):
    """A working directory like the repository's: `.venv` and the example plans.toml, nothing else."""
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "plans.toml").write_text((ROOT / "plans.toml").read_text())
    return tmp_path


def test_the_readme_try_it_locally_commands_work_as_written(newcomer_dir):
    assert len(TELEGRAM) == 3 and len(STRIPE) == 1, "the README's try-it-locally sections changed shape"
    for port in (8000, 8001):
        assert _port_free(port), f"the README's commands use port {port}, which something else holds"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "BROKER_", "REDIS_", "ENTITLE_", "PORT", "PUBLIC_"))}
    sandbox_shell, service_shell = TELEGRAM[0], TELEGRAM[1]
    exports = "\n".join(line for line in service_shell.splitlines() if line.startswith("export "))
    sandbox = _shell(sandbox_shell, newcomer_dir, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    service = None
    try:
        wait_for(lambda: not _port_free(8001), timeout=30, message="the sandbox")
        service = _shell(service_shell, newcomer_dir, env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def up():
            try:
                return requests.get("http://127.0.0.1:8000/healthz", timeout=1).status_code == 200
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

        card = subprocess.run(["bash", "-e", "-c", f"{exports}\n{STRIPE[0]}"], cwd=newcomer_dir, env=env,
                              capture_output=True, text=True, timeout=120)
        assert card.returncode == 0, card.stdout + card.stderr
        said = " ".join(card.stdout.split())
        assert "pi_" in said and "refund" in said and "revoked" in said
    finally:
        for proc in (service, sandbox):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.2)
