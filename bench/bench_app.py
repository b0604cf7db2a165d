"""The application under gunicorn with one extra bare route: the ceiling of the web benchmarks."""
from __future__ import annotations

from flask import Flask


def create_app() -> Flask:
    """`webapp.create_app()` plus `POST|GET /bench/ok`, which answers `200 OK` and does nothing else."""
    from webapp import create_app as create_entitle_app

    app = create_entitle_app()

    def ok():
        return "OK"

    app.add_url_rule("/bench/ok", "bench_ok", ok, methods=["GET", "POST"])
    return app
