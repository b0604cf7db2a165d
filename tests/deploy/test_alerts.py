"""The alert rules ship valid, each fires on the trouble it names, and each runbook names a real `entitle` command."""
from __future__ import annotations

import re
import subprocess

import yaml

from tests.support.prometheus import PROMETHEUS_DIR, tool

ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules():
    checked = subprocess.run([tool("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_promtool_unit_tests_pass():
    tested = subprocess.run([tool("promtool"), "test", "rules", str(ALERTS_TEST)], cwd=PROMETHEUS_DIR, capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout + tested.stderr


def test_every_alert_has_a_firing_unit_test():
    fired = {
        case["alertname"]
        for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in rules()} <= fired


def test_every_runbook_names_an_entitle_command_that_exists(cli):
    for rule in rules():
        commands = re.findall(r"`(entitle [^`]+)`", rule["annotations"]["runbook"])
        assert commands, f"{rule['alert']}'s runbook names no entitle command"
        for command in commands:
            words = [w for w in command.split()[1:] if re.fullmatch(r"[a-z][a-z-]*", w)]
            shown = cli(*words, "--help")
            assert shown.exit_code == 0, f"{rule['alert']}: `{command}` is not a command: {shown.output}"


def test_every_metric_the_rules_read_is_served(client):
    served = {line.split()[2] for line in client.get("/metrics").get_data(as_text=True).splitlines() if line.startswith("# TYPE ")}
    for rule in rules():
        read = re.findall(r"\b(up|[a-z_]+(?:_total|_seconds|_up|_alive))\b", rule["expr"])
        assert read, f"{rule['alert']} reads no metric"
        missing = set(read) - served - {"up"}  # `up` is Prometheus's own
        assert not missing, f"{rule['alert']} reads {missing}, which /metrics does not serve"
