"""Hostile repo configs and attributes run nothing: not in a sweep, not in a --remote fetch.

Each case arms a repo so that plain git, doing its ordinary work (a status, a diff, a
fetch), runs a payload that creates a marker file; ``test_the_case_is_armed`` proves that
with real git. Then statehub sweeps the repo and assesses it with ``--remote``: the marker
must never appear, and C-13 reports every command-running key the case sets.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from gitfleet import (
    commit_all,
    fleet_settings,
    git,
    git_env,
    loopback_http,
    make_repo,
    write,
)
from statehub.assess import assess_target
from statehub.outcome import Target
from statehub.sweep import run_sweep

HOOKS = (
    "reference-transaction",
    "post-checkout",
    "pre-auto-gc",
    "post-index-change",
    "post-merge",
    "fsmonitor-watchman",
)
TRIGGER_TIMEOUT = 60  # seconds for plain git to run an armed case
FETCH_TIMEOUT = 10  # seconds for statehub's own fetch of a case


@dataclass(frozen=True, kw_only=True)
class Scene:
    """Where a case is built: its fleet, the marker its payload creates, the payload."""

    fleet: Path
    marker: Path
    payload: Path  # an executable script that creates the marker
    http_url: str  # a loopback HTTP server that answers every request 401


@dataclass(frozen=True, kw_only=True)
class Hostile:
    root: Path
    keys: tuple[str, ...]  # what C-13 must report, lower-cased
    trigger: tuple[str, ...] | None  # plain git arguments that run the payload


class _Unauthorized(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="statehub-test"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    """An HTTP server on loopback that asks for credentials (401) on every request."""
    with loopback_http(_Unauthorized) as url:
        yield url


def scene(tmp_path: Path, http_url: str, label: str) -> Scene:
    folder = tmp_path / label
    fleet = folder / "fleet"
    fleet.mkdir(parents=True)
    marker = folder / "MARKER"
    payload = folder / "payload.sh"
    payload.write_text(f"#!/bin/sh\ntouch '{marker}'\n")
    payload.chmod(0o755)
    return Scene(fleet=fleet, marker=marker, payload=payload, http_url=http_url)


def victim(at: Scene) -> Path:
    return make_repo(at.fleet, "victim", {"README.md": "# victim\n", "f.txt": "base\n"})


def origin_of(root: Path) -> Path:
    return root.parent / ".origins" / f"{root.name}.git"


def push_from_elsewhere(root: Path) -> None:
    """A new commit in the origin, so a fetch has something to negotiate."""
    other = root.parent / ".clones" / root.name
    git(root.parent, "clone", "-q", str(origin_of(root)), str(other))
    write(other, {"g.txt": "theirs\n"})
    commit_all(other, "from elsewhere")
    git(other, "push", "-q", "origin", "HEAD")


def stat_dirty(root: Path) -> None:
    """Same size, new content: a status must read the file, through any filter."""
    (root / "f.txt").write_text("BASE\n")


# -- the cases ---------------------------------------------------------------------------


def fsmonitor(at: Scene) -> Hostile:
    root = victim(at)
    git(root, "config", "core.fsmonitor", str(at.payload))
    return Hostile(root=root, keys=("core.fsmonitor",), trigger=("status",))


def _hooks(folder: Path, payload: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for hook in HOOKS:
        shutil.copy(payload, folder / hook)


def hooks_path(at: Scene) -> Hostile:
    root = victim(at)
    _hooks(at.fleet.parent / "hooks", at.payload)
    git(root, "config", "core.hooksPath", str(at.fleet.parent / "hooks"))
    git(root, "config", "gc.auto", "1")  # so that any auto gc would run pre-auto-gc
    push_from_elsewhere(root)
    return Hostile(root=root, keys=("core.hookspath",), trigger=("update-ref", "refs/x", "HEAD"))


def default_hooks(at: Scene) -> Hostile:
    root = victim(at)
    _hooks(root / ".git" / "hooks", at.payload)
    git(root, "config", "gc.auto", "1")
    push_from_elsewhere(root)
    return Hostile(root=root, keys=(), trigger=("update-ref", "refs/x", "HEAD"))


def filter_clean_smudge(at: Scene) -> Hostile:
    root = victim(at)
    write(root, {".gitattributes": "* filter=x\n"})
    commit_all(root, "attributes")
    git(root, "push", "-q")
    git(root, "config", "filter.x.clean", str(at.payload))
    git(root, "config", "filter.x.smudge", str(at.payload))
    stat_dirty(root)
    return Hostile(root=root, keys=("filter.x.clean", "filter.x.smudge"), trigger=("status",))


def filter_process(at: Scene) -> Hostile:
    root = victim(at)
    write(root, {".gitattributes": "* filter=x\n"})
    commit_all(root, "attributes")
    git(root, "push", "-q")
    git(root, "config", "filter.x.process", str(at.payload))
    stat_dirty(root)
    return Hostile(root=root, keys=("filter.x.process",), trigger=("status",))


def textconv(at: Scene) -> Hostile:
    root = victim(at)
    write(root, {".gitattributes": "*.txt diff=x\n"})
    commit_all(root, "attributes")
    git(root, "push", "-q")
    git(root, "config", "diff.x.textconv", str(at.payload))
    stat_dirty(root)
    return Hostile(root=root, keys=("diff.x.textconv",), trigger=("diff",))


def diff_command(at: Scene) -> Hostile:
    root = victim(at)
    write(root, {".gitattributes": "*.txt diff=x\n"})
    commit_all(root, "attributes")
    git(root, "push", "-q")
    git(root, "config", "diff.x.command", str(at.payload))
    stat_dirty(root)
    return Hostile(root=root, keys=("diff.x.command",), trigger=("diff",))


def ssh_command(at: Scene) -> Hostile:
    root = victim(at)
    git(root, "remote", "set-url", "origin", "ssh://127.0.0.1:1/x.git")
    git(root, "config", "core.sshCommand", str(at.payload))
    return Hostile(root=root, keys=("core.sshcommand",), trigger=("fetch",))


def git_proxy(at: Scene) -> Hostile:
    root = victim(at)
    git(root, "remote", "set-url", "origin", "git://127.0.0.1:1/x.git")
    git(root, "config", "core.gitProxy", str(at.payload))
    return Hostile(root=root, keys=("core.gitproxy",), trigger=("fetch",))


def ext_url(at: Scene) -> Hostile:
    root = victim(at)
    git(root, "remote", "set-url", "origin", f"ext::sh -c touch% {at.marker}")
    git(root, "config", "protocol.ext.allow", "always")
    return Hostile(root=root, keys=("protocol.ext.allow",), trigger=("fetch",))


def insteadof_ext(at: Scene) -> Hostile:
    root = victim(at)
    git(root, "config", f"url.ext::sh -c touch% {at.marker}% #.insteadOf", str(origin_of(root)))
    git(root, "config", "protocol.allow", "always")
    return Hostile(root=root, keys=("protocol.allow",), trigger=("fetch",))


def upload_pack(at: Scene) -> Hostile:
    root = victim(at)
    git(root, "config", "remote.origin.uploadpack", str(at.payload))
    return Hostile(root=root, keys=("remote.origin.uploadpack",), trigger=("fetch",))


def include_fsmonitor(at: Scene) -> Hostile:
    root = victim(at)
    write(root, {".git/hostile.inc": f"[core]\n\tfsmonitor = {at.payload}\n"})
    git(root, "config", "include.path", "hostile.inc")
    return Hostile(root=root, keys=("include.path", "core.fsmonitor"), trigger=("status",))


def include_if_fsmonitor(at: Scene) -> Hostile:
    root = victim(at)
    included = at.fleet.parent / "hostile.inc"
    included.write_text(f"[core]\n\tfsmonitor = {at.payload}\n")
    git(root, "config", f"includeIf.gitdir:{root}/.git.path", str(included))
    key = f"includeif.gitdir:{root}/.git.path".lower()
    return Hostile(root=root, keys=(key, "core.fsmonitor"), trigger=("status",))


def credential_helper(at: Scene) -> Hostile:
    root = victim(at)
    git(root, "remote", "set-url", "origin", f"{at.http_url}/x.git")
    git(root, "config", "credential.helper", str(at.payload))
    return Hostile(root=root, keys=("credential.helper",), trigger=("fetch",))


def credential_url_helper(at: Scene) -> Hostile:
    root = victim(at)
    git(root, "remote", "set-url", "origin", f"{at.http_url}/x.git")
    git(root, "config", f"credential.{at.http_url}.helper", str(at.payload))
    return Hostile(root=root, keys=(f"credential.{at.http_url}.helper",), trigger=("fetch",))


def ask_pass(at: Scene) -> Hostile:
    root = victim(at)
    git(root, "remote", "set-url", "origin", f"{at.http_url}/x.git")
    git(root, "config", "core.askPass", str(at.payload))
    return Hostile(root=root, keys=("core.askpass",), trigger=("fetch",))


def alternate_refs_command(at: Scene) -> Hostile:
    root = victim(at)
    shared = at.fleet.parent / "shared.git"
    git(at.fleet, "clone", "-q", "--bare", str(origin_of(root)), str(shared))
    (root / ".git" / "objects" / "info" / "alternates").write_text(f"{shared}/objects\n")
    git(root, "config", "core.alternateRefsCommand", str(at.payload))
    push_from_elsewhere(root)
    return Hostile(root=root, keys=("core.alternaterefscommand",), trigger=("fetch",))


def remote_vcs(at: Scene) -> Hostile:
    """remote.<name>.vcs names a helper git runs as 'git-remote-<vcs>', a path if it has '/'."""
    root = victim(at)
    helper = root / "git-remote-" / "h" / "x"
    helper.parent.mkdir(parents=True)
    shutil.copy(at.payload, helper)
    git(root, "config", "remote.origin.vcs", "/h/x")
    return Hostile(root=root, keys=("remote.origin.vcs",), trigger=("fetch",))


def option_as_remote_name(at: Scene) -> Hostile:
    """A remote named like an option, so that a careless 'git fetch NAME' runs the payload."""
    root = victim(at)
    name = f"--upload-pack={at.payload}"
    git(root, "config", f"remote.{name}.url", str(origin_of(root)))
    with (root / ".git" / "config").open("a") as config:
        config.write(f'[branch "main"]\n\tremote = "{name}"\n')
    return Hostile(root=root, keys=(), trigger=None)  # plain git needs no '--' here


def user_action_keys(at: Scene) -> Hostile:
    """Keys git runs only on a user's command (an editor, a pager, a diff): reported, and
    never run by a sweep."""
    root = victim(at)
    keys = ("core.editor", "sequence.editor", "core.pager", "gpg.program", "diff.external")
    for key in keys:
        git(root, "config", key, str(at.payload))
    git(root, "config", "merge.x.driver", str(at.payload))
    git(root, "config", "alias.up", f"!{at.payload}")
    stat_dirty(root)
    return Hostile(root=root, keys=(*keys, "merge.x.driver", "alias.up"), trigger=("diff",))


CASES: dict[str, Callable[[Scene], Hostile]] = {
    case.__name__.replace("_", "-"): case
    for case in (
        fsmonitor,
        hooks_path,
        default_hooks,
        filter_clean_smudge,
        filter_process,
        textconv,
        diff_command,
        ssh_command,
        git_proxy,
        ext_url,
        insteadof_ext,
        upload_pack,
        include_fsmonitor,
        include_if_fsmonitor,
        credential_helper,
        credential_url_helper,
        ask_pass,
        alternate_refs_command,
        remote_vcs,
        option_as_remote_name,
        user_action_keys,
    )
}
ARMED = [name for name in CASES if name != "option-as-remote-name"]


# -- the tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", ARMED)
def test_the_case_is_armed(tmp_path: Path, http_url: str, case: str) -> None:
    """Plain git, doing its ordinary work in the armed repo, does run the payload."""
    at = scene(tmp_path, http_url, "armed")
    hostile = CASES[case](at)
    assert hostile.trigger is not None
    subprocess.run(
        ["git", *hostile.trigger],
        cwd=hostile.root,
        env=git_env(),
        capture_output=True,
        timeout=TRIGGER_TIMEOUT,
        check=False,
    )
    assert at.marker.exists()


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_repo_runs_nothing(tmp_path: Path, http_url: str, case: str) -> None:
    """Neither a sweep nor a --remote assessment runs the payload; C-13 reports the keys."""
    at = scene(tmp_path, http_url, "victim")
    hostile = CASES[case](at)
    settings = fleet_settings(tmp_path, roots=[at.fleet])

    detail = run_sweep(settings).detail
    assert not at.marker.exists(), "a sweep ran the payload"
    target = Target(name="victim", path=hostile.root)
    checks = settings.checks_for("victim")
    assess_target(target, checks, remote=True, fetch_timeout=FETCH_TIMEOUT)
    assert not at.marker.exists(), "a --remote assessment ran the payload"

    (item,) = detail["repos_processed"]
    reported = {
        match.group(1).lower()
        for finding in item["findings"]
        if finding["check"] == "C-13"
        and (match := re.search(r" sets (\S+?)(?: = '|, )", finding["message"]))
    }
    assert reported == set(hostile.keys)
