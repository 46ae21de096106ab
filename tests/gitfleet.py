"""Builders of real git repositories in temporary folders, shared by the tests and bench/.

Every repo is made with the real ``git`` binary and a hermetic environment (no global or
system config), so tests see what an operator's repos would look like.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statehub.settings import Settings

GOOD_README = (
    "# {name}\n\nSee [the agents guide](AGENTS.md) and [the plans](workplans/README.md).\n"
)
GOOD_AGENTS = "# Agents\n\nRun the tests with `pytest`.\n"


def git_env(home: Path | None = None) -> dict[str, str]:
    """A hermetic environment for git: no global/system config, fixed identity and dates."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_NAME="Test",
        GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="Test",
        GIT_COMMITTER_EMAIL="test@example.invalid",
        GIT_TERMINAL_PROMPT="0",
    )
    if home is not None:
        env["HOME"] = str(home)
    return env


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run real git in ``cwd``; raises on failure unless ``check`` is False."""
    return subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(), check=check, capture_output=True, text=True
    )


def workplan(wp_id: str, title: str = "A plan", status: str = "active", body: str = "") -> str:
    return f"---\nid: {wp_id}\ntitle: {title}\nstatus: {status}\n---\n\n# {title}\n{body}"


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")


def good_files(name: str, prefix: str = "DEMO", plans: int = 2) -> dict[str, str | bytes]:
    """The files of a repo that passes C-01..C-11 and C-21..C-23."""
    ids = [f"{prefix}-WP-{n:04d}" for n in range(1, plans + 1)]
    index = "# Workplans\n\n" + "".join(f"- [{i}]({i}-plan.md)\n" for i in ids)
    files: dict[str, str | bytes] = {
        "README.md": GOOD_README.format(name=name),
        "AGENTS.md": GOOD_AGENTS,
        "workplans/README.md": index,
    }
    for wp_id in ids:
        files[f"workplans/{wp_id}-plan.md"] = workplan(wp_id)
    return files


def make_repo(
    parent: Path,
    name: str,
    files: dict[str, str | bytes] | None = None,
    *,
    branch: str = "main",
    with_origin: bool = True,
    origin_url: str | None = None,
) -> Path:
    """A work tree at ``parent/name`` with one commit of ``files`` (default: a good repo).

    With ``with_origin`` a bare origin is made beside it (``parent/.origins/name.git``),
    pushed to, its HEAD set, and the branch tracks ``origin/<branch>``: C-14..C-20 clean.
    ``origin_url`` names the origin instead (nothing pushed): a server that never answers
    makes a ``--remote`` fetch of the repo last its whole timeout.
    """
    root = parent / name
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", branch)
    write(root, good_files(name) if files is None else files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", "initial")
    if origin_url is not None:
        git(root, "remote", "add", "origin", origin_url)
    elif with_origin:
        origin = parent / ".origins" / f"{name}.git"
        origin.parent.mkdir(parents=True, exist_ok=True)
        git(parent, "init", "-q", "--bare", "-b", branch, str(origin))
        git(root, "remote", "add", "origin", str(origin))
        git(root, "push", "-q", "-u", "origin", branch)
        git(root, "remote", "set-head", "origin", branch)
    return root


def commit_all(root: Path, message: str = "change") -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def write_config(folder: Path, *, roots: list[Path], extra: str = "", **sections: str) -> Path:
    """A statehub.toml in ``folder`` with the given roots, a database in ``folder``.

    ``extra`` is appended verbatim (more sections); keyword arguments add lines to the
    named section (``sweep='max_seconds = 5'``).
    """
    body = {
        "hub": 'database = "statehub.db"',
        "repos": "roots = [" + ", ".join(f'"{root}"' for root in roots) + "]",
        # No hand-back pause after a slot: a standby's fallback sweeps at once in tests
        # (tests of the hand-back set their own).
        "schedule": "handback_delay_seconds = 0",
        "sweep": "",
    }
    if "handback_delay_seconds" in sections.get("schedule", ""):
        body["schedule"] = ""
    for section, lines in sections.items():
        body[section] = (body.get(section, "") + "\n" + lines).strip()
    text = "".join(f"[{section}]\n{lines}\n\n" for section, lines in body.items())
    path = folder / "statehub.toml"
    path.write_text(text + extra, encoding="utf-8")
    return path


def fleet_settings(
    folder: Path, *, roots: list[Path], extra: str = "", **sections: str
) -> Settings:
    """The :class:`statehub.settings.Settings` of :func:`write_config`'s file, loaded as the
    program loads it: the suite's one builder of settings."""
    from statehub.settings import load_settings

    return load_settings(write_config(folder, roots=roots, extra=extra, **sections))


@contextmanager
def loopback_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 answering with ``handler``; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class HangingServer:
    """A TCP server on loopback that accepts connections and never answers.

    Use as a context manager; ``url`` is a ``git://`` URL whose fetch hangs until its
    timeout. Every accepted socket is closed on exit.
    """

    def __init__(self) -> None:
        import socket
        import threading

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self._socket.settimeout(0.2)
        self._accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = int(self._socket.getsockname()[1])
        self.url = f"git://127.0.0.1:{self.port}/never.git"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                continue
            self._accepted.append(connection)

    def __enter__(self) -> HangingServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for connection in self._accepted:
            connection.close()
        self._socket.close()
