"""The alert rules (deploy/prometheus/alerts.yml) are code: promtool accepts them, each has unit
tests that see it fire and stay quiet, each tells the on-call person what to do and links its
runbook section, and neither they nor the Grafana dashboard name a metric Polku does not have."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

import services.actions.metrics
import services.ingest.metrics
import services.stager.metrics
import shared.ops
from tests.prometheus import DEPLOY, promtool

RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "polku.json"
OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
# Kept importable: these modules define the metrics the registry is checked against.
METRIC_MODULES = (services.actions.metrics, services.ingest.metrics, services.stager.metrics,
                  shared.ops)


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules_and_the_example_scrape_configs() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in checked.stdout
    config = promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


def test_promtool_accepts_the_kubernetes_scrape_config(tmp_path: Path) -> None:
    # Debian's Prometheus is built without Kubernetes discovery, so its promtool rejects the
    # kubernetes_sd_configs block itself; everything else (the relabelling that names the jobs
    # polku-*) is checked as written, with file discovery in the block's place.
    example = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-kubernetes.yml").read_text())
    (job,) = example["scrape_configs"]
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
    job["file_sd_configs"] = [{"files": [str(tmp_path / "targets.json")]}]
    example["rule_files"] = [str(DEPLOY / "prometheus" / "alerts.yml")]
    checked_file = tmp_path / "prometheus.yml"
    checked_file.write_text(yaml.safe_dump(example))
    config = promtool("check", "config", str(checked_file))
    assert config.returncode == 0, config.stdout + config.stderr


def test_every_alert_passes_its_promtool_unit_tests() -> None:
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_is_tested_both_firing_and_not_firing() -> None:
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
             for case in test.get("alert_rule_test", [])]
    for alert in _alerts():
        name = alert["alert"]
        own = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in own), f"{name} is never seen firing"
        assert any(not case["exp_alerts"] for case in own), f"{name} is never seen quiet"


def test_every_alert_waits_has_a_severity_says_what_to_do_and_links_its_runbook() -> None:
    runbook = OPERATIONS.read_text()
    assert "## Alerts runbook" in runbook
    sections = runbook.split("## Alerts runbook", 1)[1]
    for alert in _alerts():
        name = alert["alert"]
        assert alert.get("for"), f"{name} has no `for:`"
        assert alert["labels"]["severity"] in {"warning", "critical"}, name
        annotations = alert["annotations"]
        assert annotations["summary"] and annotations["description"], name
        assert annotations["runbook_url"] == f"docs/operations.md#{name.lower()}", name
        assert f"\n### {name}\n" in sections, f"docs/operations.md has no runbook for {name}"


def test_every_counter_an_alert_watches_with_increase_exists_before_its_first_event() -> None:
    # increase() sees nothing in a series whose first sample is already 1: an endpoint's first
    # 410 would never alert if its counter only appeared then. The services create these at 0
    # (an endpoint's as soon as the worker has loaded the journeys that name it).
    fresh = "ep_0000000000000000"
    services.actions.metrics.count_from_zero([fresh])
    watched = re.findall(r"increase\((polku_[a-z_]+)(?:\{([^}]*)\})?\[", RULES.read_text())
    assert len(watched) >= 4
    samples = [s for family in REGISTRY.collect() for s in family.samples]
    for name, matchers in watched:
        wanted = dict(re.findall(r'(\w+)="([^"]*)"', matchers or ""))
        found = [s for s in samples if s.name == name and wanted.items() <= s.labels.items()
                 and s.labels.get("endpoint", fresh) == fresh]
        assert found, f"{name}{{{matchers or ''}}} has no series until it first counts"
        if "endpoint" in found[0].labels:
            assert found[0].value == 0


def _registered_names() -> set[str]:
    """Every series name the services' metrics can expose (histograms with their parts)."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
    return names


def _metric_names(text: str) -> set[str]:
    return set(re.findall(r"\b(polku_[a-z_]+)\b", text))


def test_the_rules_and_the_dashboard_name_only_metrics_polku_exposes() -> None:
    known = _registered_names()
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = "\n".join(target["expr"] for panel in dashboard["panels"]
                      for target in panel.get("targets", []))
    for source, text in (("alerts.yml", RULES.read_text()), ("polku.json", exprs)):
        unknown = _metric_names(text) - known
        assert not unknown, f"{source} names metrics no service has: {sorted(unknown)}"
    assert len(_metric_names(exprs)) > 25  # the check saw the dashboard's queries
