"""A shipped unit's commands run the way systemd would run them, without systemd.

``unshare`` (as root) gives each command a private mount and PID namespace, in which a
shell script rebuilds the unit's view of the machine from its own settings, then drops to
the unit's user and runs the command with the unit's environment only:

- ``ExecStart=/opt/statehub/bin/...``: this checkout's virtualenv is mounted at
  ``/opt/statehub``; the unit's ``Environment=`` is used verbatim, so the config lives at
  ``/etc/statehub/statehub.toml`` (an overlay on ``/etc``) and the database in
  ``/var/lib/statehub``;
- ``ReadOnlyPaths=``/``ReadWritePaths=`` (the fleet is mounted at ``/srv/repos``),
  ``ProtectSystem=strict`` (every other mount read-only), ``StateDirectory=`` (writable,
  owned by the user, ``StateDirectoryMode=``), ``PrivateTmp=``, ``ProtectHome=tmpfs``,
  ``PrivateDevices=`` (a ``/dev`` of the pseudo devices), ``ProtectProc=invisible`` and
  ``ProcSubset=pid`` (a ``/proc`` mounted with ``hidepid=invisible,subset=pid`` in the new
  PID namespace), ``IPAddressDeny=any`` with only ``localhost`` allowed (a network
  namespace with loopback only, for a unit run as a oneshot), ``UMask=``,
  ``NoNewPrivileges=`` and an empty ``CapabilityBoundingSet=`` (``setpriv``),
  ``DynamicUser=`` (a UID from systemd's dynamic range that owns nothing else).

Not emulated: the system-call filter (``tests/test_unit_syscalls.py`` checks it against a
traced sweep), ``MemoryDenyWriteExecute=`` and ``PrivateUsers=``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

UNSHARE = shutil.which("unshare")
SETPRIV = shutil.which("setpriv")
# systemd's environment for a system service (before the unit's Environment=).
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The first UID of systemd's DynamicUser= range.
DYNAMIC_UID = 61184
INSTALL = "/opt/statehub"
CHECKOUT = Path(__file__).resolve().parents[1]  # this repository
FLEET = "/srv/repos"
PSEUDO_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def can_emulate() -> bool:
    """True where this process may build namespaces (root, with unshare and setpriv)."""
    return os.geteuid() == 0 and UNSHARE is not None and SETPRIV is not None


@dataclass
class UnitView:
    """What the sandbox maps into the unit's paths, and the settings it reads from the unit."""

    settings: dict[tuple[str, str], list[str]]
    fleet: Path
    state: Path
    config: Path
    uid: int = DYNAMIC_UID
    # Inside the namespace only (a tmpfs over the host's /mnt): the pieces mounted elsewhere.
    scratch: Path = field(default_factory=lambda: Path("/mnt"))

    def service(self, key: str) -> list[str]:
        """Every value of ``[Service] key``, split on whitespace, in order."""
        return [word for line in self.settings.get(("Service", key), []) for word in line.split()]

    def last(self, key: str, default: str = "") -> str:
        values = self.settings.get(("Service", key), [])
        return values[-1] if values else default

    def environment(self) -> dict[str, str]:
        """systemd's base environment for a service, then the unit's ``Environment=``."""
        env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", "USER": "statehub", "LOGNAME": "statehub"}
        for assignment in self.service("Environment"):
            key, _, value = assignment.partition("=")
            env[key] = value
        return env

    def loopback_only(self) -> bool:
        """``IPAddressDeny=any`` with nothing but ``localhost`` allowed."""
        return self.service("IPAddressDeny")[-1:] == ["any"] and set(
            self.service("IPAddressAllow")
        ) <= {"localhost", "127.0.0.0/8", "::1/128"}


def _path_entries(view: UnitView, key: str) -> list[str]:
    """``ReadOnlyPaths=``-like entries under the fleet, '-' dropped (missing is no error)."""
    entries = []
    for word in view.service(key):
        path = word.lstrip("-+")
        if path == FLEET or path.startswith(FLEET + "/"):
            entries.append(path)
    return entries


def setup_script(view: UnitView) -> str:
    """The shell commands (run as root in the new namespaces) that build the unit's view."""
    q = shlex.quote
    venv = Path(sys.prefix)
    base = Path(sys.base_prefix)
    state_dir = view.last("StateDirectory")
    assert state_dir, "the unit has no StateDirectory="
    state_target = f"/var/lib/{state_dir}"
    config_target = view.environment()["STATEHUB_CONFIG"]
    assert config_target.startswith("/etc/"), config_target
    scratch = view.scratch
    upper = scratch / "etc-upper"
    config_in_upper = upper / Path(config_target).relative_to("/etc")
    lines = [
        "set -eu",
        # Nothing mounted here leaks to the host.
        "mount --make-rprivate /",
        f"mount -t tmpfs -o mode=0755 sandbox {q(str(scratch))}",
        # /etc as the host has it, plus the config at the unit's STATEHUB_CONFIG.
        f"mkdir -p {q(str(config_in_upper.parent))} {q(str(scratch / 'etc-work'))}",
        f"cp {q(str(view.config))} {q(str(config_in_upper))}",
        f"chmod -R a+rX {q(str(scratch / 'etc-upper'))}",
        f"mount -t overlay overlay -o lowerdir=/etc,upperdir={q(str(scratch / 'etc-upper'))},"
        f"workdir={q(str(scratch / 'etc-work'))} /etc",
        # A handle on this checkout, in case PrivateTmp= hides it below (a clone under
        # /tmp): its virtualenv's scripts and editable install name it by path.
        f"mkdir -p {q(str(scratch / 'checkout'))}",
        f"mount --bind {q(str(CHECKOUT))} {q(str(scratch / 'checkout'))}",
        # ExecStart=/opt/statehub/bin/statehub: this checkout's virtualenv.
        "mount -t tmpfs -o mode=0755 opt /opt",
        f"mkdir -p {INSTALL}",
        f"mount --bind {q(str(venv))} {INSTALL}",
        # The fleet where the unit expects the repos.
        "mount -t tmpfs -o mode=0755 srv /srv",
        f"mkdir -p {FLEET}",
        f"mount --bind {q(str(view.fleet))} {FLEET}",
        # StateDirectory=: owned by the unit's user, StateDirectoryMode=.
        "mount -t tmpfs -o mode=0755 varlib /var/lib",
        f"mkdir -p {state_target}",
        f"chown {view.uid}:{view.uid} {q(str(view.state))}",
        f"chmod {view.last('StateDirectoryMode', '0755')} {q(str(view.state))}",
        f"mount --bind {q(str(view.state))} {state_target}",
    ]
    for path in _path_entries(view, "ReadWritePaths"):
        lines.append(f"if [ -e {q(path)} ]; then mount --bind {q(path)} {q(path)}; fi")
    if view.last("PrivateDevices") == "yes":
        # A /dev of the pseudo devices only, built now (the scratch turns read-only below).
        lines += [
            f"mkdir -p {q(str(scratch / 'dev' / 'shm'))}",
            *(
                f"touch {q(str(scratch / 'dev' / name))} && mount --bind /dev/{name}"
                f" {q(str(scratch / 'dev' / name))}"
                for name in PSEUDO_DEVICES
            ),
            f"ln -s /proc/self/fd {q(str(scratch / 'dev' / 'fd'))}",
        ]
    if view.last("ProtectSystem") == "strict":
        # Every mount read-only but the API file systems; writable ones are made so below.
        lines.append(
            "awk '{print $5}' /proc/self/mountinfo | grep -vE '^/(proc|sys|dev)(/|$)' |"
            ' while read -r m; do mount -o remount,bind,ro "$m" 2>/dev/null || true; done'
        )
    for path in _path_entries(view, "ReadOnlyPaths"):
        lines.append(f"if [ -e {q(path)} ]; then mount -o remount,bind,ro {q(path)}; fi")
    for path in _path_entries(view, "ReadWritePaths"):
        lines.append(f"if [ -e {q(path)} ]; then mount -o remount,bind,rw {q(path)}; fi")
    lines.append(f"mount -o remount,bind,rw {state_target}")
    if view.last("PrivateTmp") == "yes":
        lines += [
            "mount -t tmpfs -o mode=1777 tmp /tmp",
            "mount -t tmpfs -o mode=1777 vartmp /var/tmp",
        ]
        if str(CHECKOUT).startswith(("/tmp/", "/var/tmp/")):
            lines += [
                f"mkdir -p {q(str(CHECKOUT))}",
                f"mount --bind {q(str(scratch / 'checkout'))} {q(str(CHECKOUT))}",
            ]
    if view.last("ProtectHome") == "tmpfs":
        for home in ("/home", "/root", "/run/user"):
            lines.append(f"if [ -d {home} ]; then mount -t tmpfs -o mode=0755 home {home}; fi")
        # The interpreter a real install finds under /usr; here it may live below /root.
        if str(base).startswith(("/home/", "/root/")):
            lines += [
                f"mkdir -p {q(str(base))}",
                f"mount --bind {q(str(scratch / 'base'))} {q(str(base))}",
            ]
    if view.last("PrivateDevices") == "yes":
        lines += [
            "mount --rbind " + q(str(scratch / "dev")) + " /dev",
            "mount -t tmpfs -o mode=1777 shm /dev/shm",
        ]
    proc_options = ["nosuid", "nodev", "noexec"]
    if view.last("ProtectProc") == "invisible":
        proc_options.append("hidepid=invisible")
    if view.last("ProcSubset") == "pid":
        proc_options.append("subset=pid")
    lines.append(f"mount -t proc -o {','.join(proc_options)} proc /proc")
    lines.append("ip link set lo up 2>/dev/null || true")
    return "\n".join(lines)


def sandboxed(
    view: UnitView, argv: list[str], *, as_unit_user: bool = True, network: bool | None = None
) -> list[str]:
    """The argv that runs ``argv`` inside the unit's emulated sandbox.

    ``network``: a private network namespace (loopback only); default: when the unit
    allows loopback only. ``as_unit_user=False`` runs it as root in the same view (a ``+``
    command of the unit runs outside the sandbox altogether: do not use this for one).
    """
    assert UNSHARE is not None and SETPRIV is not None
    private_net = view.loopback_only() if network is None else network
    base = Path(sys.base_prefix)
    script = setup_script(view)
    if str(base).startswith(("/home/", "/root/")):
        # Keep a handle on the interpreter before /root is hidden.
        script = script.replace(
            "mount -t tmpfs -o mode=0755 opt /opt",
            f"mkdir -p {shlex.quote(str(view.scratch / 'base'))}\n"
            f"mount --bind {shlex.quote(str(base))} {shlex.quote(str(view.scratch / 'base'))}\n"
            "mount -t tmpfs -o mode=0755 opt /opt",
        )
    umask = view.last("UMask", "0022")
    env = ["env", "-i", *(f"{k}={v}" for k, v in view.environment().items())]
    run = [*env, *argv]
    if as_unit_user:
        drop = [SETPRIV, f"--reuid={view.uid}", f"--regid={view.uid}", "--clear-groups"]
        if view.last("NoNewPrivileges") == "yes":
            drop.append("--no-new-privs")
        if ("Service", "CapabilityBoundingSet") in view.settings and not view.service(
            "CapabilityBoundingSet"
        ):
            drop += ["--bounding-set=-all", "--inh-caps=-all"]
        run = [*drop, *run]
    body = script + f"\ncd /\numask {umask}\nexec " + shlex.join(run)
    flags = ["--mount", "--pid", "--fork", "--kill-child"]
    if private_net:
        flags.append("--net")
    return [
        "sh",
        "-c",
        "exec " + shlex.join([UNSHARE, *flags, "sh", "-c", body]),
    ]


def stop_unit(process: subprocess.Popen[bytes], timeout: float = 20) -> int:
    """SIGTERM to the unit's main process (PID 1 of its namespace), as systemd sends it.

    ``unshare --fork`` ignores SIGTERM itself and exits with its child's status; after
    ``timeout`` the whole namespace is killed and AssertionError raised.
    """
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    with contextlib.suppress(OSError):
        for pid in children.read_text().split():
            os.kill(int(pid), signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()  # unshare dies; --kill-child takes the namespace with it
        process.wait(timeout=10)
        raise AssertionError(f"the unit's process did not stop within {timeout} s") from None


def run_in_unit(
    view: UnitView, argv: list[str], *, timeout: float, network: bool | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in the unit's sandbox as its user; output captured, bounded by ``timeout``."""
    return subprocess.run(
        sandboxed(view, argv, network=network),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
