"""`make run` says what it is doing, one line per step, so a first run's quiet install never looks hung."""
from __future__ import annotations

import os
import subprocess

import requests

from simulate.redis_server import free_port
from tests.conftest import ROOT
from tests.support import processes
from tests.support.waiting import wait_for


def newcomer_env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "BROKER_", "REDIS_", "ENTITLE_", "PORT", "PUBLIC_", "MAKE"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'entitle.db'}", **extra)
    return env


def steps(output: str) -> list[str]:
    return [line[4:] for line in output.splitlines() if line.startswith("==> ")]


def test_a_fresh_virtual_environment_is_announced_before_each_step(tmp_path):
    # pip itself is left out (PIP=true): its minute is what the announcement is for, not what is tested.
    made = subprocess.run(["make", "install", f"VENV={tmp_path / 'venv'}", "PIP=true"], cwd=ROOT, env=newcomer_env(tmp_path),
                          capture_output=True, text=True, timeout=120)

    assert made.returncode == 0, made.stdout + made.stderr
    assert [s.split(" ")[0] for s in steps(made.stdout)] == ["creating", "upgrading", "installing"]
    assert "about a minute the first time" in steps(made.stdout)[2]
    assert [line for line in made.stdout.splitlines() if not line.startswith("==> ")] == [], "only the step lines are printed"


def test_make_run_says_each_step_then_serves_on_port(tmp_path):
    port = free_port()
    venv = tmp_path / "venv"
    venv.mkdir()
    proc = processes.start(["make", "run", f"VENV={venv}", f"BIN={ROOT / '.venv' / 'bin'}", "PIP=true"], cwd=ROOT,
                           env=newcomer_env(tmp_path, PORT=str(port)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def up():
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stdout.read()
                return False

        wait_for(up, timeout=60, message="make run to serve")
    finally:
        out = processes.end(proc)
    said = steps(out)
    assert [s.split(" ")[0] for s in said] == ["installing", "migrating", "starting"], out
    assert out.index("==> migrating") < out.index("applied 0001") < out.index("==> starting") < out.index("entitle listening on")
