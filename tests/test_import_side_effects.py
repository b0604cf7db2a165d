"""Importing any module of the project creates no file: not in the working directory, TMPDIR or HOME."""
from __future__ import annotations

import pkgutil
import subprocess
import sys

from tests.conftest import ROOT

PACKAGES = ("app", "workers", "webapp", "cli", "simulate")


def project_modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        names += [info.name for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}.")]
    return sorted(names)


def test_there_are_modules_to_import():
    assert {"workers.dramatiq_metrics", "app.metrics", "webapp.health", "cli.service"} <= set(project_modules())


def test_importing_every_module_creates_no_file(tmp_path):
    workdir, tmpdir = tmp_path / "cwd", tmp_path / "tmp"
    workdir.mkdir()
    tmpdir.mkdir()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TMPDIR": str(tmpdir), "HOME": str(tmp_path / "home"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\nprint('imported', len(sys.argv) - 1)"

    proc = subprocess.run([sys.executable, "-c", code, *project_modules()], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=120)

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"imported {len(project_modules())}"
    assert sorted(p.name for p in tmpdir.iterdir()) == [], "an import created a file in TMPDIR"
    assert sorted(p.name for p in workdir.iterdir()) == [], "an import created a file in the working directory"
    assert not (tmp_path / "home").exists(), "an import created a file in HOME"
