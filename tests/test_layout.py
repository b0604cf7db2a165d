"""The package layout: the stand-ins are installed and live in simulate/, and the tests keep their fixtures in
conftest files and their shared helpers in tests/support/ (which imports go where: setup.cfg's import contracts).
"""
from __future__ import annotations

import ast
import configparser
from pathlib import Path

from tests.conftest import ROOT


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


# --- The tests' own layout -------------------------------------------------------------------

TESTS = ROOT / "tests"
THIS = Path(__file__).resolve()
# The handler tests: they deliver events only through `tests.support.delivery`.
HANDLER_TESTS = [
    "tests/app/telegram/test_handlers.py", "tests/app/telegram/test_commands.py",
    "tests/app/stripe/test_handlers.py", "tests/app/stripe/test_subscription_order.py", "tests/app/stripe/test_write_lock.py",
]


def _is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Attribute) and target.attr == "fixture"


def _kind(path) -> str:
    """What a file under tests/ is: a conftest, a test module, a package marker, a support module or a stray."""
    if path.name in ("conftest.py", "__init__.py"):
        return path.name
    if path.name.startswith("test_"):
        return "test"
    return "support" if path.parent == TESTS / "support" else "stray"


def test_fixtures_are_defined_in_conftest_files_or_in_the_test_module_that_uses_them():
    misplaced = [
        f"{path.relative_to(ROOT)}: {node.name}"
        for path in sorted(TESTS.rglob("*.py")) if _kind(path) not in ("conftest.py", "test")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and any(_is_fixture(d) for d in node.decorator_list)
    ]
    assert misplaced == []


def test_no_test_module_imports_fixtures_from_another_module():
    hidden = [str(p.relative_to(ROOT)) for p in sorted(TESTS.rglob("*.py")) if p != THIS and "noqa: F401" in p.read_text()]
    assert hidden == []


def test_shared_helpers_live_in_tests_support():
    assert [str(p.relative_to(ROOT)) for p in sorted(TESTS.rglob("*.py")) if _kind(p) == "stray"] == []


def test_the_app_is_served_over_http_only_by_the_live_server_fixture():
    serving = [str(p.relative_to(ROOT)) for p in sorted(TESTS.rglob("*.py")) if p != THIS and "make_server(" in p.read_text()]
    assert serving == ["tests/conftest.py"]


def test_handler_tests_deliver_events_one_way():
    shortcuts = ("inbox.process(", ".accept(", "run_inline(", "def deliver(", "def run(")
    found = [f"{name}: {s}" for name in HANDLER_TESTS for s in shortcuts if s in (ROOT / name).read_text()]
    assert found == []
    assert all("tests.support.delivery import deliver" in (ROOT / name).read_text() for name in HANDLER_TESTS)


def _documented_paths() -> dict[str, list[tuple[str, list[str]]]]:
    """The route-to-grant paths docs/ARCHITECTURE.md lists: by heading line, each step's file and the functions it names."""
    import re

    paths: dict[str, list[tuple[str, list[str]]]] = {}
    current = None
    for line in (ROOT / "docs" / "ARCHITECTURE.md").read_text().splitlines():
        if line.endswith("route to `Grant` row:"):
            current = paths.setdefault(line, [])
        elif current is not None and re.match(r"\d+\. `", line):
            file, _, rest = line.partition(" — ")
            current.append((file.split("`")[1], re.findall(r"`(?:\w+\.)?(\w+)\(", rest)))
        elif current and not line.strip():
            current = None
    return paths


def test_each_payment_goes_from_route_to_grant_in_six_files_the_architecture_page_names():
    paths = _documented_paths()
    assert len(paths) == 2 and all(2 <= len(steps) <= 6 for steps in paths.values()), paths
    for steps in paths.values():
        assert steps[-1][0] == "app/entitlements.py"
        for file, functions in steps:
            text = (ROOT / file).read_text()
            missing = [f for f in functions if f"{f}(" not in text]  # defined or called there
            assert missing == [], f"{file} neither defines nor calls {missing}"
