"""`polku dev --reset` deletes only a stopped Polku's data directory.

A live `polku dev` process holds events it has acknowledged in its data directory: a reset run
beside it must refuse, not wipe them. A directory that is not a Polku data directory (the
variable pointed at the wrong place) is refused too. A stopped instance's directory is reset,
and the next start is empty.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

from tests.deployments import Deployment, deploy, issue_write_key
from tests.processes import ROOT, ServiceProcess

TRIAL = ROOT / "tests" / "journeys"


def run_reset(polku: Deployment, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """`polku dev --reset` with the instance's environment, up to the point it would serve."""
    return subprocess.run([sys.executable, "-m", "services.cli", "dev", "--reset"],
                          env=polku.api.env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout_s)


async def acknowledge_one_event(polku: Deployment) -> str:
    contact = f"reset-{uuid.uuid4().hex[:8]}"
    async with polku.client() as http:
        answer = await http.post("/v1/track", json={"userId": contact, "event": "Order Completed",
                                                    "messageId": f"{contact}-order"})
    assert answer.status_code == 200, answer.text
    return contact


async def applied(polku: Deployment, contact: str) -> bool:
    for _ in range(100):
        if await polku.stage(contact, "trial") == "customer":
            return True
        await asyncio.sleep(0.1)
    return False


async def test_reset_beside_a_live_instance_refuses_and_keeps_its_data(tmp_path: Path) -> None:
    polku = deploy("embedded", TRIAL, tmp_path, None, None)
    try:
        polku.start()
        polku.write_key = await issue_write_key(polku)
        contact = await acknowledge_one_event(polku)
        assert await applied(polku, contact)

        reset = run_reset(polku)

        assert reset.returncode == 1, reset.stderr
        assert "another polku process is using" in reset.stderr
        assert "its data is kept" in reset.stderr
        assert "Traceback" not in reset.stderr
        # The data on disk survives, not only the live process's open file: start it again.
        polku.kill()
        polku.start()
        assert await polku.stage(contact, "trial") == "customer"
    finally:
        polku.kill()


def test_reset_of_a_directory_polku_did_not_write_refuses_and_deletes_nothing(
    tmp_path: Path,
) -> None:
    polku = deploy("embedded", TRIAL, tmp_path, None, None)
    assert polku.data_dir is not None
    polku.data_dir.mkdir()
    thesis = polku.data_dir / "thesis.tex"
    thesis.write_text("six years of work\n")
    (polku.data_dir / "polku.db").write_text("not ours either\n")

    reset = run_reset(polku)

    assert reset.returncode == 1, reset.stderr
    assert "does not look like a Polku data directory" in reset.stderr
    assert "thesis.tex" in reset.stderr
    assert "Traceback" not in reset.stderr
    assert thesis.read_text() == "six years of work\n"
    assert sorted(p.name for p in polku.data_dir.iterdir()) == ["polku.db", "thesis.tex"]


async def test_reset_of_a_stopped_instance_starts_empty(tmp_path: Path) -> None:
    polku = deploy("embedded", TRIAL, tmp_path, None, None)
    try:
        polku.start()
        polku.write_key = await issue_write_key(polku)
        contact = await acknowledge_one_event(polku)
        assert await applied(polku, contact)
        polku.api.terminate()

        # `polku dev --reset` resets, then serves: it is the next instance.
        polku.processes[0] = ServiceProcess("dev", polku.api.env, args=("--reset",))
        polku.start()

        assert await polku.contact(contact) is None
        assert await issue_write_key(polku) != polku.write_key  # a new dev source too
    finally:
        polku.kill()
