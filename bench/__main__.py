"""`python -m bench` (`make bench`): every benchmark, its tables on stdout, raw figures in bench/results/.

With BENCH_WRITE_DOCS=1 the tables also replace the generated sections of docs/BENCHMARKS.md.
BENCH_ONLY=initdata,statements,ingest,e2e,scale,reconcile,door,scaling picks benchmarks (scaling, for
docs/SCALING.md, runs only when named); BENCH_FULL=1 runs the issue's full sizes.
"""
from __future__ import annotations

import os
import sys
import time

from bench import config, door, e2e, ingest, initdata_bench, reconcile_bench, report, scale, scaling, statements
from bench.services import Stack

DOC = config.ROOT / "docs" / "BENCHMARKS.md"
SCALING_DOC = config.ROOT / "docs" / "SCALING.md"


def _emit(marker: str, title: str, text: str, write: bool, doc=DOC) -> None:
    print(f"\n## {title}\n\n{text}\n", flush=True)
    if write:
        report.write_section(doc, marker, text)


def main() -> int:
    """Run the chosen benchmarks against PostgreSQL + Redis with gunicorn and Dramatiq as separate processes."""
    only = set(filter(None, os.environ.get("BENCH_ONLY", "initdata,statements,ingest,door,e2e,scale").split(",")))
    write = os.environ.get("BENCH_WRITE_DOCS") == "1"
    started = time.monotonic()
    info = report.machine()
    print(report.machine_line(info), flush=True)
    print(f"sizes: {'full (BENCH_FULL=1)' if config.FULL else 'default'}; runs {config.RUNS}; "
          f"concurrency {config.CONCURRENCY}; {config.RUN_SECONDS:g} s per measurement", flush=True)
    results: dict = {"machine": info, "full": config.FULL, "runs": config.RUNS}
    if "initdata" in only:
        results["initdata"] = initdata_bench.run()
        _emit("initdata", "initData verification", initdata_bench.render(results["initdata"]), write)
    if "statements" in only:
        results["statements"] = statements.run()
        _emit("statements", "Statements per webhook and per payment", statements.render(results["statements"]), write)
    if "reconcile" in only:
        results["reconcile"] = reconcile_bench.run()
        _emit("reconcile", "Reconciliation with the Star ledger", reconcile_bench.render(results["reconcile"]), write)
    if "door" in only:
        results["door"] = door.run()
        _emit("door", "The chat door: answers Telegram waits for", door.render(results["door"]), write)
    if not only & {"ingest", "e2e", "scale", "scaling"}:
        return _finish(results, info, started, write, name="-".join(sorted(only)))
    stack = Stack(config.DATABASE)
    try:
        stack.start(app="bench.bench_app:create_app()", workers=False)
        if "ingest" in only:
            results["ingest"] = ingest.run(stack)
            _emit("ingest", "Webhook ingest and session exchange", ingest.render(results["ingest"]), write)
        if "e2e" in only:
            providers = tuple(p for p, name in (("telegram", "telegram webhook"), ("stripe", "stripe webhook"))
                              if ingest.available(stack.url, ingest.SCENARIOS[name][0]))
            results["e2e"] = e2e.run(stack, providers)
            _emit("e2e", "End to end", e2e.render(results["e2e"]), write)
            _emit("cpu", "CPU per unit of work", e2e.render_cpu(results["e2e"], results.get("ingest")), write)
        if "scaling" in only:
            results["scaling"] = scaling.run(stack)
            _emit("scaling", "Scaling 1→2→4 processes", f"{report.machine_line(info)}\n\n{scaling.render(results['scaling'])}",
                  write, doc=SCALING_DOC)
        if "scale" in only:
            results["scale"] = scale.run(stack)
            _emit("scale", "Scale", scale.render(results["scale"]), write)
    finally:
        stack.stop()
    return _finish(results, info, started, write)


def _finish(results: dict, info: dict, started: float, write: bool, name: str = "bench") -> int:
    elapsed = time.monotonic() - started
    results["elapsed_s"] = elapsed
    if write and name == "bench":  # a partial run leaves the whole run's machine line alone
        report.write_section(DOC, "machine", report.machine_line(info) + f" Whole run: {elapsed / 60:.1f} min.")
    path = report.save(name, results)
    print(f"\nraw figures: {path.relative_to(config.ROOT)}; {elapsed / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
