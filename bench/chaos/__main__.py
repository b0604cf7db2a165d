"""`python -m bench.chaos` (`make chaos`): every fault scenario and the bad-input run, then their tally.

The broker is a Redis of its own on a free port (so stopping it never touches the machine's);
the database is `entitle_chaos` on the machine's PostgreSQL, which the restart scenario restarts.
CHAOS_ONLY=duplicates,kill,redis,postgres,storm,freeze,badinput,receivers picks scenarios; BENCH_WRITE_DOCS=1 updates
docs/RELIABILITY.md. Exits 1 when anything was lost, doubled, or answered wrongly.
"""
from __future__ import annotations

import os
import sys
import time

from bench import config, report
from bench import storm
from bench.chaos import badinput, freeze, receivers, scenarios
from bench.services import Stack
from simulate.redis_server import RedisServer

DOC = config.ROOT / "docs" / "RELIABILITY.md"

# Short sweeps and backoffs, so recovery shows within the run (production defaults: 30 s / 60 s / 1–300 s).
CHAOS_ENV = {
    "SWEEP_INTERVAL": "1", "SWEEP_AFTER": "3", "EVENT_MIN_BACKOFF_MS": "100", "EVENT_MAX_BACKOFF_MS": "2000",
    "EVENT_MAX_RETRIES": "20",
}


def render(results: list[dict]) -> str:
    """The tally table, one row per scenario."""
    rows = []
    for r in results:
        t = r["tally"]
        note = []
        if "kills" in r:
            note.append(f"{r['kills']} kills")
        if "answers_5xx" in r:
            note.append(f"{r['answers_5xx']} answers 5xx/refused, retried; down {r['postgres_down_s']:.1f} s")
        if r["not_json_errors"]:
            note.append(f"{r['not_json_errors']} errors not JSON!")
        rows.append([r["scenario"], t["events_accepted"], t["grants_expected"], t["grants_present"], t["grants_doubled"],
                     t["events_lost"], t["accepted_without_row"], f"{r['seconds']:.0f}", "; ".join(note) or "—",
                     "pass" if t["ok"] else "FAIL"])
    return report.table(["scenario", "events accepted", "grants expected", "grants present", "grants doubled",
                         "events lost", "200 without row", "s", "notes", "verdict"], rows)


def render_timing(results: list[dict]) -> str:
    """The latency targets of the scenarios that have one: payments' acceptance→grant p99, pre-checkout answers."""
    rows = []
    for r in results:
        if "p99" in r:
            ok = r["p99"] is not None and r["p99"] < 1 and r["removals_done"] == r["removals"]
            rows.append([r["scenario"], f"acceptance→grant p50 {r['p50']:.2f} s, p99 {r['p99']:.2f} s; "
                         f"{r['removals_done']} of {r['removals']} removals done {r['removals_after_storm_s']:.0f} s after the 429s stopped",
                         "p99 < 1 s; every removal done", "pass" if ok else "FAIL"])
        if "pre_checkout" in r:
            ok = r["pre_checkout_late"] == 0 and r["pre_checkout_refused"] == 0
            rows.append([r["scenario"], f"{r['pre_checkout']} pre-checkout answers, slowest {r['pre_checkout_slowest_s']:.2f} s, "
                         f"{r['pre_checkout_late']} later than 10 s, {r['pre_checkout_refused']} not approved",
                         "every answer within 10 s", "pass" if ok else "FAIL"])
    return report.table(["scenario", "measured", "target", "verdict"], rows) if rows else ""


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items())


def _bad_row(name: str, f: dict) -> list:
    fives = sum(n for s, n in f["statuses"].items() if int(s) >= 500)
    statuses = ", ".join(f"{s}×{n}" for s, n in sorted(f["statuses"].items()))
    if f["kind"] == "rejected":
        rows = sum(f["rows_created"].values())
        rows_cell = str(rows) if not rows else _counts(f["rows_created"])
        grants_cell, ended = "—", "—"
        ok = not f["violations"] and not rows
    elif f["kind"] == "stored":  # stored rows must all reach their handlers' own checks
        rows_cell, grants_cell = f"{f['unreadable']} a handler cannot read", f.get("grants", "—")
        ended = ", ".join(f"{s}×{n}" for s, n in sorted(f["outcomes"].items())) or "none"
        ok = not f["violations"]
    else:
        rows_cell, grants_cell = "—", f["grants"]
        ended = ", ".join(f"{s}×{n}" for s, n in sorted(f["outcomes"].items())) or "none"
        ok = not f["violations"]
    return [name, f["sent"], statuses, fives, rows_cell, grants_cell, ended, len(f["violations"]), "pass" if ok else "FAIL"]


def render_bad(result: dict, machine_line: str) -> str:
    """The bad-input table, one row per family, with the machine it ran on."""
    rows = [_bad_row(name, f) for name, f in result["families"].items()]
    text = machine_line + "\n\n" + report.table(
        ["family", "requests", "answers", "5xx", "rows created by rejected input", "grants from mismatched payments or odd codes",
         "events ended", "violations", "verdict"], rows)
    text += (f"\n\nRows created by all the rejected input, 2 s after its last request: {_counts(result['rows_created'])}. "
             f"Grants in the database after the whole run: {result['grants_total']}.")
    violations = [v for f in result["families"].values() for v in f["violations"]]
    if violations:
        text += "\n\nViolations:\n" + "\n".join(f"- `{v}`" for v in violations[:20])
    return text


def render_receivers(result: dict, machine_line: str) -> str:
    """The hostile-receivers table, with the machine it ran on."""
    return machine_line + "\n\n" + receivers.render(result)


def main() -> int:
    """Run the scenarios; print and (optionally) write the tables."""
    only = set(filter(None, os.environ.get("CHAOS_ONLY", "duplicates,kill,redis,postgres,storm,freeze,badinput,receivers").split(",")))
    write = os.environ.get("BENCH_WRITE_DOCS") == "1"
    started = time.monotonic()
    info = report.machine()
    print(report.machine_line(info), flush=True)
    redis_server = RedisServer().start()
    stack = Stack("entitle_chaos", broker_url=redis_server.url, **CHAOS_ENV)
    results: list[dict] = []
    bad = hostile = None
    try:
        stack.start(workers=False)
        user = 20_000_000
        plan = [("duplicates", lambda u: scenarios.duplicates(stack, u)),
                ("kill", lambda u: scenarios.worker_kills(stack, u)),
                ("redis", lambda u: scenarios.redis_outage(stack, redis_server, u)),
                ("postgres", lambda u: scenarios.postgres_restart(stack, u)),
                ("storm", lambda u: storm.chaos_scenario(stack, u)),
                ("freeze", lambda u: freeze.frozen_redis(stack, redis_server, u))]
        for key, scenario in plan:
            if key in only:
                result = scenario(user)
                user += 1_000_000
                results.append(result)
                print(f"{result['scenario']}: {result['tally']}", flush=True)
        if "badinput" in only:
            began = time.monotonic()
            bad = badinput.run(stack)
            bad["seconds"] = time.monotonic() - began
        if "receivers" in only:
            hostile = receivers.run(stack, 90_000_000)
    finally:
        stack.stop()
        redis_server.stop()
    elapsed = time.monotonic() - started
    # The fault table is written whole or not at all: a run of some scenarios leaves the others' rows as measured.
    whole = {"duplicates", "kill", "redis", "postgres", "storm", "freeze"} <= only
    if results:
        text = render(results)
        print("\n## Faults\n\n" + text, flush=True)
        if write and whole:
            report.write_section(DOC, "faults", text)
    timed = render_timing(results)
    if timed:
        print("\n## Answers and payments under load\n\n" + timed, flush=True)
        if write:
            report.write_section(DOC, "timing", timed)
    if bad is not None:
        text = render_bad(bad, report.machine_line(info) + f" Bad-input run: {bad['seconds']:.0f} s.")
        print("\n## Bad input\n\n" + text, flush=True)
        if write:
            report.write_section(DOC, "badinput", text)
    if hostile is not None:
        text = render_receivers(hostile, report.machine_line(info))
        print("\n## Hostile webhook receivers\n\n" + text, flush=True)
        if write:
            report.write_section(DOC, "receivers", text)
    if write and results and whole:
        # The line above the fault table; a bad-input-only run leaves it (and that table) as measured.
        report.write_section(DOC, "machine", report.machine_line(info) + f" Whole run: {elapsed / 60:.1f} min.")
    report.save("chaos", {"machine": info, "scenarios": results, "badinput": bad, "receivers": hostile, "elapsed_s": elapsed})
    print(f"\n{elapsed / 60:.1f} min", flush=True)
    ok = all(r["tally"]["ok"] for r in results) and (bad is None or bad["ok"]) and (hostile is None or hostile["ok"])
    ok = ok and "FAIL" not in timed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
