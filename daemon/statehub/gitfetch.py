"""``--remote``: ``git fetch`` of one repo in a hardened environment, bounded in time.

The only place that runs git as a program. It runs in a sweep's worker process, like every
other read of a repo (:mod:`statehub.worker`).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
from pathlib import Path

from statehub.deathsig import die_with_parent
from statehub.errors import FetchError, FetchTimeout, GitReadError
from statehub.gitlayout import os_reason
from statehub.gitstate import PYGIT2_ERRORS, clean_message, open_repo
from statehub.safetext import visible

log = logging.getLogger(__name__)

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
        text = stderr.decode("utf-8", "replace")
        # git's own words stay in this host's log: a repo can make git quote a file it
        # points at (an include, an alternates symlink), a token say (issue 25).
        for line in text.splitlines()[:_LOGGED_LINES]:
            if line.strip():
                log.debug("git fetch %s in %s: %s", remote, visible(str(root)), visible(line))
        raise FetchError(f"git fetch {remote} failed: {fetch_reason(text, process.returncode)}")
    return remote


_LOGGED_LINES = 20

# What a failed fetch says, in statehub's words only: the first vocabulary entry one of
# git's lines matches (git runs with LC_ALL=C), else git's exit status. A repo's broken
# config or alternates come first: git reports them before the failure they cause.
_VOCABULARY = (
    (
        "the repo's git configuration is invalid",
        (
            "bad config",
            "key does not contain a section",
            "invalid key",
            "invalid section",
            "config value",
            "missing value for",
            "invalid config",
            "unable to parse",
        ),
    ),
    ("its alternates are invalid", ("alternate",)),
    ("the repo is read-only", ("read-only file system",)),
    ("cannot write into the repo", ("cannot open", "unable to create", "unable to write")),
    (
        "authentication refused",
        (
            "authentication failed",
            "permission denied",
            "could not read username",
            "could not read password",
            "terminal prompts disabled",
            "host key verification failed",
            "access denied",
            "the requested url returned error: 401",
            "the requested url returned error: 403",
        ),
    ),
    (
        "remote not found",
        (
            "does not appear to be a git repository",
            "not found",
            "the requested url returned error: 404",
            "no such remote",
        ),
    ),
    (
        "could not connect",
        (
            "could not resolve",
            "connection refused",
            "failed to connect",
            "unable to connect",
            "connection timed out",
            "network is unreachable",
            "no route to host",
            "connection reset",
            "unable to access",
            "could not read from remote repository",
        ),
    ),
)


def fetch_reason(stderr: str, returncode: int) -> str:
    """Why a fetch failed, in a fixed vocabulary: nothing of git's text is copied."""
    lines = [line.lower() for line in stderr.splitlines() if line.strip()]
    for reason, needles in _VOCABULARY:
        if any(needle in line for line in lines for needle in needles):
            return reason
    return f"git exited {returncode}"
