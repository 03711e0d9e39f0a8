"""Debian's Prometheus and promtool for the ops tests: `make prometheus` installs them
(deploy/local/prometheus.sh); nothing is downloaded here.

`running_prometheus` starts a real server on a free port with a scratch data directory, scraping
the given targets every second and evaluating the given rule files every second, and stops it
afterwards; `query` asks it through the HTTP API, as Grafana does.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.processes import free_port

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _require(binary: Path) -> None:
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `make prometheus` (Debian's prometheus package)")


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool; its exit status and output are the caller's to judge."""
    _require(PROMTOOL)
    return subprocess.run([str(PROMTOOL), *args], input=stdin.decode() if stdin else None,
                          capture_output=True, text=True, timeout=60, check=False)


@contextmanager
def running_prometheus(work: Path, targets: Mapping[str, Sequence[str]],
                       rule_files: Sequence[Path] = ()) -> Iterator[str]:
    """A Prometheus scraping `targets` (job name -> host:port list); yields its base URL."""
    _require(PROMETHEUS)
    work.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                   "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(hosts)}]}
                           for job, hosts in targets.items()],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (work / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={work / 'prometheus.yml'}",
         f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (work / "prometheus.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "Prometheus did not become ready in 30 s"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def query(url: str, expr: str) -> list[dict[str, Any]]:
    """An instant query's result vector (raises on an error answer, naming the expression)."""
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result
