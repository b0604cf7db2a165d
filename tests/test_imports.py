"""The import contracts in setup.cfg hold for the code as it is, and catch an upward or circular import planted in a copy."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("app", "workers", "webapp", "cli", "simulate", "bench", "tests")
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
    )


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of the project's packages and setup.cfg, to plant imports in."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "results", "*.png"))
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    return tmp_path


def plant(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_contracts_hold_for_the_project():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


def test_a_planted_copy_with_nothing_planted_passes(tree):
    assert lint_imports(tree).returncode == 0


def test_the_core_importing_the_workers_breaks_the_layers(tree):
    plant(tree / "app" / "plans.py", "from workers import broker")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "The layers import downward only: cli, webapp, workers, app BROKEN" in result.stdout
    assert "app.plans -> workers.broker" in result.stdout


def test_the_entitlements_service_importing_what_hangs_off_it_breaks_the_composition(tree):
    plant(tree / "app" / "entitlements.py", "from app.access import transitions")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "One place composes the payment's transaction" in result.stdout
    assert "BROKEN" in result.stdout


def test_a_circle_between_two_modules_breaks_the_no_cycles_contract(tree):
    plant(tree / "app" / "stripe" / "objects.py", "from app.stripe import customers")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "No module imports another in a circle, at any depth of a package BROKEN" in result.stdout
    assert "app.stripe" in result.stdout


def test_the_core_importing_a_stand_in_breaks_its_contract(tree):
    plant(tree / "app" / "users.py", "import simulate.telegram_api")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "The domain core uses no web, queue or CLI framework and no stand-in BROKEN" in result.stdout
