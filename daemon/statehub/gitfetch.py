"""``--remote``: ``git fetch`` of one repo in a hardened environment, bounded in time.

The only place that runs git as a program. It runs in a sweep's worker process, like every
other read of a repo (:mod:`statehub.worker`).
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
from pathlib import Path

from statehub.deathsig import die_with_parent
from statehub.errors import FetchError, FetchTimeout, GitReadError
from statehub.gitlayout import os_reason
from statehub.gitstate import PYGIT2_ERRORS, clean_message, open_repo

# Every key through which a repo's config could make `git fetch` run a command is pinned on
# the command line, which wins over every config file (includes too) for these keys.
# Three need other means: remote.<name>.uploadpack keeps its FIRST value (git 2.39: "more
# than one uploadpack given, using the first"), so fetch gets --upload-pack; core.gitProxy
# is ignored once $GIT_PROXY_COMMAND is set, so the environment sets it empty; and
# remote.<name>.vcs (a helper run by path) is refused by allowing only the plain transports.
_FETCH_OVERRIDES = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.sshCommand=ssh -o BatchMode=yes -o StrictHostKeyChecking=yes",
    "core.askPass=",
    "core.alternateRefsCommand=true",  # a no-op: alternates advertise no tips
    "credential.helper=",  # an empty value clears every helper read before it
    "protocol.allow=never",
    "protocol.file.allow=always",
    "protocol.git.allow=always",
    "protocol.ssh.allow=always",
    "protocol.http.allow=always",
    "protocol.https.allow=always",
    "protocol.ext.allow=never",
    "http.saveCookies=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "fetch.recurseSubmodules=false",
    "submodule.recurse=false",
    "diff.external=",
    "core.pager=cat",
)


def fetch_env() -> dict[str, str]:
    """The environment of a fetch: no prompt, no askpass, no inherited git overrides."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GIT_", "SSH_ASKPASS"))
        or key.startswith(("GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
    }
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="/bin/false",
        GIT_PROXY_COMMAND="",
        SSH_ASKPASS="/bin/false",
        GIT_OPTIONAL_LOCKS="0",
        LC_ALL="C",
    )
    return env


def remote_to_fetch(root: Path) -> str | None:
    """The remote a fetch should update: the current branch's, else ``origin``, else none."""
    repo = open_repo(root)
    try:
        names = list(repo.remotes.names())
        if not repo.head_is_detached and not repo.head_is_unborn:
            branch = repo.head.shorthand
            try:
                remote = str(repo.config[f"branch.{branch}.remote"])
            except KeyError:
                remote = ""
            if remote in names:
                return remote
        return "origin" if "origin" in names else (names[0] if names else None)
    except PYGIT2_ERRORS as exc:
        raise GitReadError(clean_message(exc)) from exc
    finally:
        repo.free()


def fetch(root: Path, *, timeout: float) -> str | None:
    """``git fetch`` the repo's remote in a hardened environment; returns the remote fetched.

    Raises FetchError on failure or when ``timeout`` seconds pass (the process group is
    killed), GitReadError when the repo cannot be read. A repo with no remote is not
    fetched and returns None.
    """
    remote = remote_to_fetch(root)
    if remote is None:
        return None
    command = ["git"]
    for override in _FETCH_OVERRIDES:
        command += ["-c", override]
    command += [
        "-C",
        str(root),
        "fetch",
        "--quiet",
        "--no-recurse-submodules",
        "--prune",
        "--upload-pack=git-upload-pack",
        "--",
        remote,
    ]
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=fetch_env(),
            start_new_session=True,  # so a timeout can kill ssh and helpers with it
            # Killed with the worker (its bound, a stopped server): no orphan fetch. A hook
            # between fork and exec is safe here, the worker runs no other thread.
            preexec_fn=functools.partial(die_with_parent, os.getpid()),  # noqa: PLW1509
        )
    except OSError as exc:
        raise FetchError(f"cannot run git: {os_reason(exc)}") from exc
    except subprocess.SubprocessError as exc:  # the hook above failed in the child
        raise FetchError(f"cannot run git: {exc}") from exc
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise FetchTimeout(f"git fetch {remote} timed out after {timeout:g} s") from None
    if process.returncode != 0:
        reason = _fetch_reason(stderr.decode("utf-8", "replace"), process.returncode)
        raise FetchError(f"git fetch {remote} failed: {reason}")
    return remote


def _fetch_reason(stderr: str, returncode: int) -> str:
    """The first 'fatal:' or 'error:' line of git's stderr, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        for prefix in ("fatal: ", "error: "):
            if line.startswith(prefix):
                return line.removeprefix(prefix)
    return lines[-1] if lines else f"exit status {returncode}"
