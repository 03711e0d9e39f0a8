"""Renders the kustomize base in deploy/k8s and checks what it renders, with no cluster.

Rendering: kustomize, built from the Go module proxy by deploy/local/kustomize.sh (`make
kustomize`, which `make test` runs first; the tests never build or download it). Checking:
every object against the Kubernetes JSON schemas that the PyPI package kubernetes-validate ships
(generated from Kubernetes' OpenAPI, one set per minor version), in strict mode, where a field
the schema does not know is an error: a typo such as `livenessprobe` would otherwise be dropped
by the API server without a word.

A kind with no schema in that set (a custom resource such as the Prometheus Operator's
ServiceMonitor) fails the check unless it is listed in NOT_IN_THE_STANDARD_SCHEMAS with the
reason it is not checked; the base has none (it asks Prometheus to scrape by pod annotations).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s"

# The oldest Kubernetes the base is written for (autoscaling/v2, policy/v1 and a Job's
# ttlSecondsAfterFinished are all older), and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())

# kind -> why it is not checked against a schema. Empty: every kind of the base is standard.
NOT_IN_THE_STANDARD_SCHEMAS: dict[str, str] = {}


class RenderFailed(Exception):
    pass


def kustomize() -> Path:
    """The pinned kustomize, as `make kustomize` built it."""
    done = subprocess.run(["bash", str(ROOT / "deploy" / "local" / "kustomize.sh"), "path"],
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RenderFailed(f"kustomize.sh path failed: {done.stderr.strip()}")
    return Path(done.stdout.strip().splitlines()[-1])


def render(directory: Path = BASE) -> list[dict[str, Any]]:
    """`kustomize build directory`, as objects."""
    done = subprocess.run([str(kustomize()), "build", str(directory)], capture_output=True,
                          text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RenderFailed(done.stderr.strip())
    return [found for found in yaml.safe_load_all(done.stdout) if found]


def schema_problems(objects: list[dict[str, Any]],
                    versions: tuple[str, ...] = KUBERNETES_VERSIONS) -> list[str]:
    """What is wrong with each object by the schemas of each Kubernetes version; [] if none."""
    problems = []
    for found in objects:
        kind = found.get("kind", "?")
        name = f"{kind}/{found.get('metadata', {}).get('name', '?')}"
        if kind in NOT_IN_THE_STANDARD_SCHEMAS:
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(found, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(part) for part in exc.path) or "(top)"
                problems.append(f"{name} (Kubernetes {version}): {where}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(f"{name}: {exc.message}; list the kind in "
                                "NOT_IN_THE_STANDARD_SCHEMAS with the reason, or drop it")
            except (KeyError, TypeError) as exc:  # no apiVersion or kind
                problems.append(f"{name}: not a Kubernetes object ({type(exc).__name__}: {exc})")
    return problems
