"""The package layout: the domain core imports no stand-ins, and benchmarks import nothing from the tests."""
from __future__ import annotations

import ast
import configparser

from tests.conftest import ROOT


def imported_modules(package: str) -> dict[str, set[str]]:
    """Every module each file of a top-level package imports, by file."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def offenders(package: str, *forbidden: str) -> list[str]:
    return sorted(
        f"{path} imports {name}"
        for path, names in imported_modules(package).items()
        for name in names
        if name.split(".")[0] in forbidden
    )


def test_the_domain_core_imports_neither_the_stand_ins_nor_the_tests():
    assert offenders("app", "simulate", "tests", "bench") == []


def test_the_benchmarks_import_nothing_from_the_tests():
    assert offenders("bench", "tests") == []


def test_the_stand_ins_need_no_test_framework():
    assert offenders("simulate", "pytest", "tests", "bench") == []


def test_the_simulate_package_is_installed_with_the_others():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    included = config["options.packages.find"]["include"].split()
    assert {"simulate", "simulate.*"} <= set(included)


def test_the_stand_ins_live_in_simulate_and_nowhere_else():
    assert not (ROOT / "tests" / "fakes").exists()
    assert not (ROOT / "app" / "stripe" / "events.py").exists()
    assert not (ROOT / "app" / "telegram" / "updates.py").exists()
    for name in ("stripe_api", "telegram_api", "stripe_events", "telegram_updates"):
        assert (ROOT / "simulate" / f"{name}.py").is_file(), name
