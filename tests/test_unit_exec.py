"""The daemon unit's own command line really starts the daemon and tells systemd it is ready."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from daemon_support import NotifySocket
from gitfleet import make_repo, write_config
from test_infra import SYSTEMD, unit_exec_start, unit_settings

INSTALLED_BINARY = "/opt/statehub/bin/statehub"


def unit_environment(unit: Path, replacements: dict[str, str]) -> dict[str, str]:
    """The unit's Environment= assignments, with the paths of this machine put in."""
    env: dict[str, str] = {}
    for line in unit_settings(unit).get(("Service", "Environment"), []):
        for assignment in line.split():
            key, _, value = assignment.partition("=")
            env[key] = replacements.get(key, value)
    return env


def test_sweepd_exec_start_reaches_ready(tmp_path: Path) -> None:
    """ExecStart of statehub-sweepd.service, config rewritten to a temp one, sends READY=1."""
    unit = SYSTEMD / "statehub-sweepd.service"
    argv = unit_exec_start(unit)
    assert argv[0] == INSTALLED_BINARY
    argv[0] = str(Path(sys.executable).parent / "statehub")  # this checkout's install

    fleet = tmp_path / "fleet"
    make_repo(fleet, "alpha", with_origin=False)
    config = write_config(tmp_path, roots=[fleet], schedule='mode = "active"')
    env = unit_environment(
        unit,
        {
            "STATEHUB_CONFIG": str(config),
            "STATEHUB_HUB__DATABASE": str(tmp_path / "state" / "statehub.db"),
            "HOME": str(tmp_path),
        },
    )
    assert set(env) >= {"STATEHUB_CONFIG", "STATEHUB_HUB__DATABASE"}
    notify = NotifySocket()
    process = subprocess.Popen(
        argv,
        env={**os.environ, **env, "NOTIFY_SOCKET": notify.path},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _, ready = notify.wait_field("READY", timeout=30)
        assert ready == "1"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert notify.fields("STOPPING")
        assert (tmp_path / "state" / "statehub.db").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
        notify.close()
