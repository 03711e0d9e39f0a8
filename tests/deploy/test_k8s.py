"""The Kubernetes base (deploy/k8s), rendered by kustomize and checked against the Kubernetes
schemas (tests/deploy/manifests.py), and what an operator relies on in it: probes on the
services' ops endpoints, the wait for the migration, each token for its own service only,
stagers no more than partitions, a disruption budget for every Deployment."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from services.actions.settings import ActionsSettings
from services.ingest.settings import IngestSettings
from services.stager.settings import StagerSettings
from shared.journey import load_journeys
from shared.settings import DatabaseSettings, KafkaSettings, ServiceSettings
from tests.deploy.manifests import BASE, ROOT, RenderFailed, render, schema_problems

PORTS = {"ingest": ServiceSettings().ingest_port, "stager": ServiceSettings().stager_port,
         "actions": ServiceSettings().actions_port}
TOKENS = {"ingest": {"POLKU_INGEST_READ_TOKEN", "POLKU_INGEST_ADMIN_TOKEN"},
          "stager": set(), "actions": {"POLKU_ACTIONS_ADMIN_TOKEN"}}


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return render()


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def deployment(objects: list[dict[str, Any]], service: str) -> dict[str, Any]:
    return of_kind(objects, "Deployment")[f"polku-{service}"]


def container(objects: list[dict[str, Any]], service: str) -> dict[str, Any]:
    [polku] = deployment(objects, service)["spec"]["template"]["spec"]["containers"]
    return dict(polku)


def config(objects: list[dict[str, Any]]) -> dict[str, str]:
    [found] = [o for n, o in of_kind(objects, "ConfigMap").items() if n.startswith("polku-config")]
    return dict(found["data"])


def test_every_rendered_object_matches_the_kubernetes_schemas(
        rendered: list[dict[str, Any]]) -> None:
    assert schema_problems(rendered) == []
    kinds = {o["kind"] for o in rendered}
    assert kinds == {"ConfigMap", "Secret", "Job", "Deployment", "Service",
                     "HorizontalPodAutoscaler", "PodDisruptionBudget"}


def test_a_broken_manifest_fails_the_check(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [broken.yaml]\n")
    (tmp_path / "broken.yaml").write_text("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: miscounted}
spec:
  replicas: three
  selector: {matchLabels: {app: miscounted}}
  template:
    metadata: {labels: {app: miscounted}}
    spec:
      containers: [{name: polku, image: polku}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: misspelt}
spec:
  selector: {matchLabels: {app: misspelt}}
  template:
    metadata: {labels: {app: misspelt}}
    spec:
      containers:
        - name: polku
          image: polku
          livenessprobe: {httpGet: {path: /healthz, port: 8000}}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: polku}
spec: {endpoints: [{port: http}]}
""")
    problems = "\n".join(schema_problems(render(tmp_path)))
    # A string where an integer belongs.
    assert "Deployment/miscounted (Kubernetes 1.30): spec.replicas:" in problems
    # Strict: a field the schema does not know is an error, not dropped.
    assert "Deployment/misspelt (Kubernetes 1.30): spec.template.spec.containers.0:" in problems
    assert "'livenessprobe' was unexpected" in problems
    assert "ServiceMonitor/polku" in problems  # a kind without a schema is not waved through


def test_a_kustomization_that_does_not_render_fails(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(RenderFailed, match=r"missing\.yaml"):
        render(tmp_path)


@pytest.mark.parametrize("service", sorted(PORTS))
def test_each_service_is_probed_scraped_and_bounded_on_its_own_port(
        rendered: list[dict[str, Any]], service: str) -> None:
    polku = container(rendered, service)
    assert polku["args"] == [service]
    assert polku["ports"] == [{"name": "http", "containerPort": PORTS[service]}]
    assert polku["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert polku["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert polku["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    for bound in ("requests", "limits"):
        assert set(polku["resources"][bound]) == {"cpu", "memory"}
    annotations = deployment(rendered, service)["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics",
                           "prometheus.io/port": str(PORTS[service])}


@pytest.mark.parametrize("service", sorted(PORTS))
def test_each_service_waits_for_the_migration_the_job_runs(
        rendered: list[dict[str, Any]], service: str) -> None:
    pod = deployment(rendered, service)["spec"]["template"]["spec"]
    [wait] = pod["initContainers"]
    assert wait["args"][:2] == ["db", "wait"]
    assert wait["image"] == container(rendered, service)["image"]
    [job] = of_kind(rendered, "Job").values()
    [migrate] = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["db", "upgrade"]
    # Same image, same database: the schema the service waits for is the one the Job writes.
    assert migrate["image"] == wait["image"]
    assert migrate["envFrom"] == wait["envFrom"] == container(rendered, service)["envFrom"]


@pytest.mark.parametrize("service", sorted(PORTS))
def test_each_service_gets_its_own_tokens_only(
        rendered: list[dict[str, Any]], service: str) -> None:
    polku = container(rendered, service)
    given = {e["name"] for e in polku.get("env", [])}
    assert given == TOKENS[service]
    secrets = {e["secretRef"]["name"] for e in polku["envFrom"] if "secretRef" in e}
    assert secrets == {"polku-database"}
    volumes = deployment(rendered, service)["spec"]["template"]["spec"]["volumes"]
    webhook = [v for v in volumes if "secret" in v]
    assert bool(webhook) == (service == "actions")  # the signing secrets: actions only


def test_the_secrets_hold_placeholders_only(rendered: list[dict[str, Any]]) -> None:
    secrets = of_kind(rendered, "Secret")
    assert set(secrets) == {"polku-database", "polku-ingest-tokens", "polku-actions-token",
                            "polku-webhook-secrets"}
    for secret in secrets.values():
        assert "data" not in secret
        assert set(secret["stringData"].values()) == {"CHANGE-ME"}


def test_the_stagers_are_never_more_than_the_partitions(rendered: list[dict[str, Any]]) -> None:
    stager = deployment(rendered, "stager")["spec"]
    partitions = int(config(rendered)["POLKU_KAFKA_PARTITIONS"])
    assert 1 <= stager["replicas"] <= partitions
    assert stager["strategy"]["rollingUpdate"]["maxSurge"] == 0  # not even during a rollout
    autoscaled = {h["spec"]["scaleTargetRef"]["name"]
                  for h in of_kind(rendered, "HorizontalPodAutoscaler").values()}
    assert autoscaled == {"polku-ingest"}


def test_ingest_scales_on_cpu_and_leaves_its_count_to_the_autoscaler(
        rendered: list[dict[str, Any]]) -> None:
    [hpa] = of_kind(rendered, "HorizontalPodAutoscaler").values()
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert "replicas" not in deployment(rendered, "ingest")["spec"]


def test_every_deployment_has_a_disruption_budget(rendered: list[dict[str, Any]]) -> None:
    budgets = [b["spec"]["selector"]["matchLabels"]
               for b in of_kind(rendered, "PodDisruptionBudget").values()]
    for name, found in of_kind(rendered, "Deployment").items():
        labels = found["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if b.items() <= labels.items()]
        assert len(covering) == 1, name


def setting_names() -> set[str]:
    """Every environment variable Polku's settings classes read."""
    names = set()
    classes: list[type[BaseSettings]] = [ServiceSettings, KafkaSettings, DatabaseSettings,
                                         IngestSettings, StagerSettings, ActionsSettings]
    for settings in classes:
        prefix = str(settings.model_config.get("env_prefix", ""))
        for field, info in settings.model_fields.items():
            names.add(f"{prefix}{field}".upper())
            if isinstance(info.validation_alias, AliasChoices):
                names.update(str(c).upper() for c in info.validation_alias.choices)
    return names


def test_every_variable_the_base_sets_is_one_polku_reads(rendered: list[dict[str, Any]]) -> None:
    known = setting_names()
    given = set(config(rendered))
    for name, secret in of_kind(rendered, "Secret").items():
        if name != "polku-webhook-secrets":  # files, named by the journeys
            given |= set(secret["stringData"])
    for service in PORTS:
        given |= {e["name"] for e in container(rendered, service).get("env", [])}
    assert given - known == set()


def test_the_journeys_config_map_holds_valid_journeys_as_the_pods_see_them(
        rendered: list[dict[str, Any]], tmp_path: Path) -> None:
    [journeys] = [o for n, o in of_kind(rendered, "ConfigMap").items()
                  if n.startswith("polku-journeys")]
    # The kubelet's layout of a ConfigMap volume: the files in a timestamped directory,
    # `..data` pointing at it, and a link per key.
    version = tmp_path / "..2026_12_01_00_00_00.000000001"
    version.mkdir()
    for key, text in journeys["data"].items():
        (version / key).write_text(text)
        os.symlink(f"..data/{key}", tmp_path / key)
    os.symlink(version.name, tmp_path / "..data")
    loaded = load_journeys(tmp_path)
    assert [j.id for j in loaded] == ["sales-handoff"]
    mounted = {m["mountPath"] for m in container(rendered, "stager")["volumeMounts"]}
    assert config(rendered)["POLKU_JOURNEYS_DIR"] in mounted


def documented_overlay() -> str:
    """The production overlay docs/operations.md shows, as written there."""
    text = (ROOT / "docs" / "operations.md").read_text()
    start = text.index("```yaml\n# overlays/production/kustomization.yaml\n") + len("```yaml\n")
    return text[start:text.index("```", start)]


def test_the_overlay_the_operations_guide_shows_renders_and_validates(tmp_path: Path) -> None:
    overlay = tmp_path / "overlays" / "production"
    (overlay / "journeys").mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(documented_overlay())
    shutil.copy(ROOT / "journeys" / "b2b-cto.yaml", overlay / "journeys")
    (tmp_path / "deploy").mkdir()
    os.symlink(BASE, tmp_path / "deploy" / "k8s")  # the overlay's ../../deploy/k8s
    objects = render(overlay)
    assert schema_problems(objects) == []
    assert not of_kind(objects, "Secret")  # made by hand, as the guide says next
    assert {o["metadata"]["namespace"] for o in objects} == {"polku"}
    assert container(objects, "stager")["image"] == "registry.example.com/polku:0.1.0"
    assert config(objects)["POLKU_KAFKA_BOOTSTRAP"] == "kafka-bootstrap.kafka:9092"
    assert config(objects)["POLKU_KAFKA_PARTITIONS"] == "12"  # merged, not replaced
    [journeys] = [o for n, o in of_kind(objects, "ConfigMap").items()
                  if n.startswith("polku-journeys")]
    assert set(journeys["data"]) == {"b2b-cto.yaml"}


def test_the_rollback_patch_the_operations_guide_shows_drops_only_the_wait(
        tmp_path: Path) -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    start = text.index("```yaml\n", text.index("Roll back with the wait removed")) + 8
    overlay = tmp_path / "overlays" / "rollback"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(
        "resources: [../../deploy/k8s]\n" + text[start:text.index("```", start)])
    (tmp_path / "deploy").mkdir()
    os.symlink(BASE, tmp_path / "deploy" / "k8s")
    objects = render(overlay)
    assert schema_problems(objects) == []
    for service in PORTS:
        pod = deployment(objects, service)["spec"]["template"]["spec"]
        assert "initContainers" not in pod
        assert pod["containers"] == deployment(render(), service)["spec"]["template"]["spec"][
            "containers"]
