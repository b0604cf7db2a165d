"""CLI test setup: `entitle sandbox` as a real process, for the tests that drive the CLI against it."""
from __future__ import annotations

import json
import subprocess

import pytest

from simulate.redis_server import free_port
from tests.cli.test_service import clean_env, entitle
from tests.support import processes


@pytest.fixture
def sandbox(tmp_path):
    """`entitle sandbox --port N --json` running; yields the variables it printed."""
    port = free_port()
    proc = processes.start(entitle("sandbox", "--port", str(port), "--json"), cwd=tmp_path, env=clean_env(tmp_path),
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line, "entitle sandbox printed nothing"
        yield json.loads(line)
    finally:
        processes.end(proc)
        assert proc.returncode == 0
