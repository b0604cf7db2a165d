"""Debian's `prometheus` package (promtool, prometheus): `.ci/run` installs it; elsewhere the tests that need it say so."""
from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import ROOT

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"


def tool(name: str) -> str:
    """The path of `promtool` or `prometheus`; a skip outside CI when it is missing, a failure in CI."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian's `prometheus` package; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
