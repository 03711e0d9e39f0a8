"""The stager refuses to start on an invalid journey and says why, in the marketer's words."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.processes import ROOT


def test_stager_refuses_to_start_on_an_invalid_journey(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(
        "id: broken\nversion: 1\nlabels: {fi: Rikki, en: Broken}\n"
        "stages:\n  - {id: aware, labels: {fi: Tietoisuus, en: Awareness}}\n"
        "rules:\n  - id: to-nowhere\n    to: qualifed\n    when: {event: Demo Requested}\n"
    )
    env = dict(os.environ, POLKU_JOURNEYS_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "services.cli", "stager"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "broken.yaml:8" in done.stderr
    assert "stage 'qualifed'" in done.stderr and "aware" in done.stderr
    assert "Traceback" not in done.stderr
