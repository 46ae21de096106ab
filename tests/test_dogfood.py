"""statehub passes its own checks: the project's checkout, assessed by `statehub check`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gitfleet import write_config

REPO_ROOT = Path(__file__).resolve().parents[1]
# C-14..C-20 read the git state (dirty tree, untracked files, branch, upstream), which
# depends on how and where this checkout was made, not on what the project holds.
PROJECT_CHECKS = {f"C-{n:02d}" for n in [*range(1, 14), 21, 22, 23]}
CHECK_TIMEOUT_SECONDS = 120


def test_project_passes_its_own_content_checks(tmp_path: Path) -> None:
    """`statehub check` of this checkout has no C-00 and no C-01..C-13 or C-21..C-23 finding."""
    config = write_config(tmp_path, roots=[])
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "statehub"),
            "check",
            str(REPO_ROOT),
            "--config",
            str(config),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    findings = [
        f"{finding['check']} {finding['path'] or ''}: {finding['message']}"
        for finding in report["findings"]
        if finding["check"] in PROJECT_CHECKS or finding["check"] == "C-00"
    ]
    assert findings == []
