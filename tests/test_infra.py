"""The systemd units, the emergency timer, the Kubernetes CronJob and the unit installer.

The systemd tests run the real ``systemd-analyze`` offline (no running systemd needed) and
are skipped where it is not installed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from gitfleet import loopback_http
from statehub.errors import UsageError
from statehub.install import DEFAULT_SOURCE_DIR, install_units, main
from unitfile import unit_settings

REPO = Path(__file__).resolve().parents[1]
SYSTEMD = REPO / "infra" / "systemd"
API_UNIT = SYSTEMD / "statehub-api.service"
SWEEPD_UNIT = SYSTEMD / "statehub-sweepd.service"
WORKER_UNIT = SYSTEMD / "statehub-temporal-worker.service"
SYNC_SERVICE = SYSTEMD / "archived" / "custodian-sync.service"
SYNC_TIMER = SYSTEMD / "archived" / "custodian-sync.timer"
SERVICES = [API_UNIT, SWEEPD_UNIT, WORKER_UNIT]
ALL_UNITS = [API_UNIT, SWEEPD_UNIT, WORKER_UNIT, SYNC_SERVICE, SYNC_TIMER]
CRONJOB = REPO / "infra" / "k8s" / "statehub-sweep-cronjob.yaml"

# Kubernetes version whose schemas the CronJob is validated against (timeZone is GA
# since 1.27); kubernetes-validate ships schemas for it.
K8S_VERSION = "1.30.0"
MAX_EXPOSURE = 1.5

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze not found on PATH (Debian/Ubuntu: apt-get install systemd)",
)


# -- reading unit files --------------------------------------------------------------


def unit_value(unit_path: Path, section: str, key: str) -> str:
    """The last value of ``key`` in ``section``; fails the test when there is none."""
    values = unit_settings(unit_path).get((section, key), [])
    assert values, f"{unit_path.name}: no {key}= in [{section}]"
    return values[-1]


def unit_exec_start(unit_path: Path) -> list[str]:
    """The argv of the unit's ``ExecStart=`` (shell-split, systemd's ``-@:+!`` prefixes removed)."""
    argv = shlex.split(unit_value(unit_path, "Service", "ExecStart"))
    argv[0] = argv[0].lstrip("-@:+!")
    return argv


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    env = {**os.environ, "TZ": "UTC", "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""}
    return subprocess.run(
        [SYSTEMD_ANALYZE, "--no-pager", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


# -- systemd-analyze verify ----------------------------------------------------------


def _stub_root(root: Path, *, with_statehub: bool = True) -> Path:
    """A throwaway root holding every unit and an executable stub for each command they run.

    ``verify --root`` checks that the commands of ExecStart=, ExecReload= etc. exist
    below the root (not on this machine), and finds the units there too.
    """
    commands = ["/bin/kill", "/bin/sh", "/usr/bin/git"]
    if with_statehub:
        commands.append("/opt/statehub/bin/statehub")
    for command in commands:
        stub = root / command.lstrip("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
        stub.chmod(0o755)
    unit_dir = root / "etc" / "systemd" / "system"
    unit_dir.mkdir(parents=True)
    for unit in ALL_UNITS:
        shutil.copyfile(unit, unit_dir / unit.name)
    return unit_dir


@needs_systemd_analyze
@pytest.mark.parametrize("unit", ALL_UNITS, ids=lambda unit: unit.name)
def test_unit_verifies(unit: Path, tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit, with its commands present in a stub root."""
    unit_dir = _stub_root(tmp_path)
    result = _analyze(
        "verify", "--man=no", "--recursive-errors=no", f"--root={tmp_path}",
        str(unit_dir / unit.name),
    )  # fmt: skip
    ours = [unit.name for unit in ALL_UNITS]
    complaints = [
        line for line in (result.stdout + result.stderr).splitlines()
        if any(name in line for name in ours)
    ]  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert complaints == []


@needs_systemd_analyze
def test_verify_checks_commands_inside_the_stub_root(tmp_path: Path) -> None:
    """Without the stub binary, verify reports the missing ExecStart command (the root counts)."""
    unit_dir = _stub_root(tmp_path, with_statehub=False)
    result = _analyze(
        "verify", "--man=no", "--recursive-errors=no", f"--root={tmp_path}",
        str(unit_dir / SWEEPD_UNIT.name),
    )  # fmt: skip
    assert result.returncode != 0
    assert "/opt/statehub/bin/statehub is not executable" in result.stderr


# -- systemd-analyze security --------------------------------------------------------


@needs_systemd_analyze
@pytest.mark.parametrize("unit", [*SERVICES, SYNC_SERVICE], ids=lambda unit: unit.name)
def test_service_exposure_is_low(unit: Path) -> None:
    """`systemd-analyze security --offline` passes threshold 15 and rates the unit at most 1.5."""
    result = _analyze("security", "--offline=true", "--threshold=15", str(unit))
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(
        rf"Overall exposure level for {re.escape(unit.name)}: (\d+\.\d+)", result.stdout
    )
    assert found, result.stdout
    assert float(found.group(1)) <= MAX_EXPOSURE


# -- the timer -----------------------------------------------------------------------


@needs_systemd_analyze
def test_timer_calendar_fires_every_quarter_hour_utc() -> None:
    """The timer's OnCalendar= is valid, normalized as written, and fires at :00/:15/:30/:45 UTC."""
    spec = unit_value(SYNC_TIMER, "Timer", "OnCalendar")
    result = _analyze("calendar", "--iterations=4", "--base-time=2026-01-01 00:07:00 UTC", spec)
    assert result.returncode == 0, result.stderr
    normalized = re.search(r"Normalized form: (.+)", result.stdout)
    assert normalized, result.stdout
    assert normalized[1].strip() == spec
    fires = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", result.stdout)
    assert fires == [
        "2026-01-01 00:15:00",
        "2026-01-01 00:30:00",
        "2026-01-01 00:45:00",
        "2026-01-01 01:00:00",
    ]


def test_timer_fires_on_the_slot_without_catch_up() -> None:
    """The emergency timer: no jitter, 1 s accuracy, no catch-up burst, starts the sync service."""
    assert unit_value(SYNC_TIMER, "Timer", "OnCalendar") == "*-*-* *:00/15:00 UTC"
    assert unit_value(SYNC_TIMER, "Timer", "AccuracySec") == "1s"
    assert unit_value(SYNC_TIMER, "Timer", "Persistent") == "false"
    assert unit_value(SYNC_TIMER, "Timer", "RandomizedDelaySec") == "0"
    assert unit_value(SYNC_TIMER, "Timer", "Unit") == SYNC_SERVICE.name


# -- what the units run --------------------------------------------------------------


def test_units_run_the_contract_commands() -> None:
    """ExecStart= of each service is the statehub command the contract names."""
    statehub = "/opt/statehub/bin/statehub"
    assert unit_exec_start(API_UNIT) == [statehub, "serve"]
    assert unit_exec_start(SWEEPD_UNIT) == [statehub, "daemon"]
    assert unit_exec_start(WORKER_UNIT) == [statehub, "temporal", "worker"]
    # Reads without fetching, like the daemon's default [schedule] remote = false; each run
    # is a run of the schedule, recorded in activity_runs (--scheduled).
    assert unit_exec_start(SYNC_SERVICE) == [
        statehub,
        "sweep",
        "--all",
        "--scheduled",
        "--source",
        "local-timer",
    ]
    assert unit_value(SYNC_SERVICE, "Service", "Type") == "oneshot"


def test_api_unit_has_room_for_many_connections() -> None:
    """The API unit lifts the open-files limit past systemd's 1,024 (issue 12)."""
    assert int(unit_value(API_UNIT, "Service", "LimitNOFILE")) >= 65536


@pytest.mark.parametrize("unit", [SWEEPD_UNIT, WORKER_UNIT], ids=lambda unit: unit.name)
def test_long_running_units_notify_with_watchdog(unit: Path) -> None:
    """The daemon and the worker: notify from main, watchdog, no restart loop on 78."""
    assert unit_value(unit, "Service", "Type") == "notify"
    assert unit_value(unit, "Service", "NotifyAccess") == "main"
    assert unit_value(unit, "Service", "WatchdogSec") == "60s"
    assert unit_value(unit, "Service", "Restart") == "on-failure"
    assert unit_value(unit, "Service", "RestartPreventExitStatus") == "78"
    stop = unit_value(unit, "Service", "TimeoutStopSec")
    assert stop.endswith("s")
    assert int(stop.removesuffix("s")) >= 10


def test_daemon_and_api_reload_on_sighup() -> None:
    """SIGHUP reloads the daemon and the API; the worker has no reload (it needs a restart)."""
    assert unit_value(SWEEPD_UNIT, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert unit_value(API_UNIT, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert ("Service", "ExecReload") not in unit_settings(WORKER_UNIT)


@pytest.mark.parametrize("unit", [*SERVICES, SYNC_SERVICE], ids=lambda unit: unit.name)
def test_services_share_config_database_and_user(unit: Path) -> None:
    """Every service reads /etc/statehub, writes /var/lib/statehub/statehub.db as user statehub."""
    environment = unit_settings(unit)[("Service", "Environment")]
    assert "STATEHUB_CONFIG=/etc/statehub/statehub.toml" in environment
    assert "STATEHUB_HUB__DATABASE=/var/lib/statehub/statehub.db" in environment
    assert "HOME=/var/lib/statehub" in environment
    assert unit_value(unit, "Service", "User") == "statehub"
    assert unit_value(unit, "Service", "StateDirectory") == "statehub"
    assert unit_value(unit, "Service", "ExecStartPre") == (
        "-/usr/bin/git config --global --replace-all safe.directory *"
    )


# -- the Kubernetes CronJob ----------------------------------------------------------


def _manifests() -> list[dict[str, Any]]:
    documents = yaml.safe_load_all(CRONJOB.read_text(encoding="utf-8"))
    return [document for document in documents if document]


def _cronjob() -> dict[str, Any]:
    (cronjob,) = [doc for doc in _manifests() if doc["kind"] == "CronJob"]
    return cronjob


def _container_script() -> str:
    (container,) = _cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/bin/sh", "-c"]
    (script,) = container["args"]
    return str(script)


def test_cronjob_manifests_validate() -> None:
    """Every document of the manifest is valid against the Kubernetes schemas (strict)."""
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate not installed (the 'test' extra)"
    )
    kinds = []
    for document in _manifests():
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
        kinds.append(document["kind"])
    assert sorted(kinds) == ["ConfigMap", "CronJob"]


def test_cronjob_validation_rejects_an_unknown_field() -> None:
    """The strict validation used above does catch a misspelt CronJob field."""
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate not installed (the 'test' extra)"
    )
    cronjob = _cronjob()
    cronjob["spec"]["concurencyPolicy"] = "Forbid"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(cronjob, K8S_VERSION, strict=True)


def test_cronjob_schedule_and_request() -> None:
    """The CronJob fires every 15 min UTC, never overlaps, and POSTs a scheduled activity-core."""
    cronjob = _cronjob()
    spec = cronjob["spec"]
    assert cronjob["apiVersion"] == "batch/v1"
    assert spec["schedule"] == "*/15 * * * *"
    assert spec["timeZone"] == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 300
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    assert 0 < job["activeDeadlineSeconds"] < 15 * 60
    script = _container_script()
    body = re.search(r"--data '([^']*)'", script)
    assert body, script
    assert json.loads(body[1]) == {"source": "activity-core", "scheduled": True}
    assert "/consistency/sweep/remote-all" in script
    assert "--fail-with-body" in script
    volumes = job["template"]["spec"]["volumes"]
    assert [volume["secret"]["secretName"] for volume in volumes] == ["statehub-api-token"]


def test_cronjob_container_is_locked_down() -> None:
    """The curl container runs non-root, read-only, without privileges, within limits."""
    pod = _cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("curlimages/curl:")
    assert pod["securityContext"]["runAsNonRoot"] is True
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    assert pod["automountServiceAccountToken"] is False


class _Recorder(BaseHTTPRequestHandler):
    """Answers every POST with the status named by the first path segment (else 200)."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length).decode()
        first = self.path.split("/")[1]
        status = int(first) if first.isdigit() else 200
        self.requests.append(
            {"path": self.path, "auth": self.headers["Authorization"], "body": body}
        )
        # /c00/...: the event of a sweep with an automation error (as the API sends it).
        detail = {"source": "activity-core", "exit_code": 0, "automation_error": False}
        if first == "c00":
            detail.update(exit_code=1, automation_error=True)
        answer = json.dumps({"id": 1, "detail": detail}, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def fake_api() -> Iterator[str]:
    """An HTTP server on loopback recording the requests; yields its base URL."""
    _Recorder.requests = []
    with loopback_http(_Recorder) as url:
        yield url


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not found on PATH")
@pytest.mark.parametrize(
    ("status", "succeeds"), [(200, True), (202, False), (401, False), (500, False)]
)
def test_cronjob_script_fails_unless_http_200(
    fake_api: str, tmp_path: Path, status: int, succeeds: bool
) -> None:
    """The container's script sends the bearer token and exits 0 only on an HTTP 200."""
    token = tmp_path / "token"
    token.write_text("s3cret-token-0123456789abcdefghijklmnop\n", encoding="utf-8")
    script = _container_script().replace("/var/run/secrets/statehub/token", str(token))
    prefix = "" if status == 200 else f"/{status}"
    result = subprocess.run(
        ["/bin/sh", "-c", script],
        env={"PATH": os.environ["PATH"], "STATEHUB_API_URL": fake_api + prefix},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode == 0) is succeeds, result.stdout + result.stderr
    assert f"answered HTTP {status}" in result.stdout
    (request,) = _Recorder.requests
    assert request["path"] == f"{prefix}/consistency/sweep/remote-all"
    assert request["auth"] == "Bearer s3cret-token-0123456789abcdefghijklmnop"
    assert json.loads(request["body"]) == {"source": "activity-core", "scheduled": True}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not found on PATH")
def test_cronjob_script_fails_on_an_automation_error(fake_api: str, tmp_path: Path) -> None:
    """A 200 whose event has automation_error true fails the Job, and says why."""
    token = tmp_path / "token"
    token.write_text("s3cret-token-0123456789abcdefghijklmnop\n", encoding="utf-8")
    script = _container_script().replace("/var/run/secrets/statehub/token", str(token))
    result = subprocess.run(
        ["/bin/sh", "-c", script],
        env={"PATH": os.environ["PATH"], "STATEHUB_API_URL": fake_api + "/c00"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "answered HTTP 200" in result.stdout
    assert "automation error (C-00)" in result.stdout
    assert '"automation_error":true' in result.stderr  # the event is logged


# -- the installer -------------------------------------------------------------------


def _installed(prefix: Path) -> dict[str, bytes]:
    unit_dir = prefix / "etc" / "systemd" / "system"
    if not unit_dir.exists():
        return {}
    return {path.name: path.read_bytes() for path in sorted(unit_dir.iterdir())}


def test_installer_finds_the_checkout_units() -> None:
    """Without an explicit source, the installer uses infra/systemd of this checkout."""
    assert DEFAULT_SOURCE_DIR == SYSTEMD


def test_dry_run_lists_actions_and_writes_nothing(tmp_path: Path) -> None:
    """--dry-run prints one 'would install' line per unit and creates no file or folder."""
    lines = install_units(SYSTEMD, tmp_path, dry_run=True)
    target = tmp_path / "etc" / "systemd" / "system"
    assert lines == [
        f"would install infra/systemd/statehub-api.service -> {target}/statehub-api.service",
        f"would install infra/systemd/statehub-sweepd.service -> {target}/statehub-sweepd.service",
        f"would install infra/systemd/statehub-temporal-worker.service -> "
        f"{target}/statehub-temporal-worker.service",
        "dry run: nothing written (a real run ends with: systemctl daemon-reload)",
    ]
    assert list(tmp_path.iterdir()) == []


def test_install_copies_units_byte_identical(tmp_path: Path) -> None:
    """A real install copies each unit unchanged, mode 0644, and ends with the reload hint."""
    lines = install_units(SYSTEMD, tmp_path, dry_run=False)
    assert _installed(tmp_path) == {unit.name: unit.read_bytes() for unit in SERVICES}
    for path in (tmp_path / "etc" / "systemd" / "system").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [line.split()[0] for line in lines[:-1]] == ["install"] * len(SERVICES)
    assert lines[-1] == "next: systemctl daemon-reload"


def test_second_install_is_a_no_op(tmp_path: Path) -> None:
    """Installing again changes nothing and says 'unchanged' for every unit."""
    install_units(SYSTEMD, tmp_path, dry_run=False)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "etc/systemd/system").iterdir()}
    lines = install_units(SYSTEMD, tmp_path, dry_run=False)
    assert [line.split()[0] for line in lines[:-1]] == ["unchanged"] * len(SERVICES)
    assert lines[-1] == "nothing changed: no daemon-reload needed"
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "etc/systemd/system").iterdir()}
    assert after == before


def test_differing_unit_is_replaced_and_kept_as_bak(tmp_path: Path) -> None:
    """An edited installed unit is replaced, its old content kept as .bak, and the line says so."""
    install_units(SYSTEMD, tmp_path, dry_run=False)
    installed = tmp_path / "etc" / "systemd" / "system" / "statehub-api.service"
    installed.write_text("[Service]\nExecStart=/bin/true\n", encoding="utf-8")
    dry = install_units(SYSTEMD, tmp_path, dry_run=True)
    assert dry[0].startswith("would replace infra/systemd/statehub-api.service")
    assert installed.read_text(encoding="utf-8") == "[Service]\nExecStart=/bin/true\n"
    lines = install_units(SYSTEMD, tmp_path, dry_run=False)
    backup = installed.with_name("statehub-api.service.bak")
    assert lines[0] == (
        f"replace infra/systemd/statehub-api.service -> {installed} (old copy kept as {backup})"
    )
    assert installed.read_bytes() == API_UNIT.read_bytes()
    assert backup.read_text(encoding="utf-8") == "[Service]\nExecStart=/bin/true\n"
    assert lines[-2:] == [
        "next: systemctl daemon-reload",
        "then: systemctl try-restart statehub-api.service",
    ]


def test_masked_unit_is_left_alone(tmp_path: Path) -> None:
    """A unit masked with a symlink to /dev/null is not replaced (that would unmask it)."""
    unit_dir = tmp_path / "etc" / "systemd" / "system"
    unit_dir.mkdir(parents=True)
    (unit_dir / "statehub-sweepd.service").symlink_to(os.devnull)
    lines = install_units(SYSTEMD, tmp_path, dry_run=False)
    assert lines[1].startswith("skip infra/systemd/statehub-sweepd.service")
    assert os.readlink(unit_dir / "statehub-sweepd.service") == os.devnull


def test_archived_pair_only_on_request(tmp_path: Path) -> None:
    """include_archived adds the emergency service and timer; without it they stay out."""
    install_units(SYSTEMD, tmp_path, dry_run=False)
    assert "custodian-sync.timer" not in _installed(tmp_path)
    lines = install_units(SYSTEMD, tmp_path, dry_run=False, include_archived=True)
    assert _installed(tmp_path) == {unit.name: unit.read_bytes() for unit in ALL_UNITS}
    assert (
        f"install infra/systemd/archived/custodian-sync.timer -> "
        f"{tmp_path}/etc/systemd/system/custodian-sync.timer"
    ) in lines


def test_explicit_source_dir(tmp_path: Path) -> None:
    """An explicit source folder is used as given and shown by its full path."""
    source = tmp_path / "units"
    source.mkdir()
    (source / "x.service").write_text("[Service]\nExecStart=/bin/true\n", encoding="utf-8")
    prefix = tmp_path / "root"
    lines = install_units(source, prefix, dry_run=False)
    assert lines[0] == f"install {source}/x.service -> {prefix}/etc/systemd/system/x.service"
    assert _installed(prefix) == {"x.service": b"[Service]\nExecStart=/bin/true\n"}


def test_source_without_units_is_a_usage_error(tmp_path: Path) -> None:
    """A source folder with no unit file is refused, and nothing is written."""
    with pytest.raises(UsageError, match="no systemd unit files"):
        install_units(tmp_path, tmp_path / "root", dry_run=False)
    assert not (tmp_path / "root").exists()


def test_main_parses_the_cli_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """main() takes --prefix, --dry-run and --archived, prints the lines and returns 0."""
    status = main(["--prefix", str(tmp_path), "--dry-run", "--archived"])
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert len(out) == len(ALL_UNITS) + 1
    assert all(line.startswith("would install ") for line in out[:-1])
    assert list(tmp_path.iterdir()) == []


def test_main_rejects_unknown_options(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown option is a usage error: exit status 2 and argparse's message."""
    assert main(["--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_install_refuses_a_target_that_is_a_named_pipe(tmp_path: Path) -> None:
    """A unit's target that is a FIFO: one line, exit 1, at once (never a read that waits)."""
    from clirun import statehub

    target_dir = tmp_path / "etc" / "systemd" / "system"
    target_dir.mkdir(parents=True)
    os.mkfifo(target_dir / SERVICES[0].name)
    done = statehub("install-units", "--prefix", str(tmp_path), timeout=30)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert f"{target_dir / SERVICES[0].name} is not a regular file" in done.stderr
