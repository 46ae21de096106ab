"""A newcomer's first command (issue 23): `./dev run` without a configuration of one's own.

`./dev run` runs in a checkout made of this one's `dev` and `pyproject.toml`, and this
checkout's `.venv` linked in (installed already: nothing is reinstalled), with ``HOME`` a
temporary folder, so that what it finds and writes is the test's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import clirun
from api_support import event_rows
from daemon_support import fire_every_env
from gitfleet import make_repo
from waiting import wait_for

CHECKOUT = Path(__file__).resolve().parents[1]
STAMP = CHECKOUT / ".venv" / ".statehub-installed"
REPOS = ("alpha", "beta", "pallets+click")


@pytest.fixture
def newcomer(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A checkout (``tmp_path/statehub``) and an empty ``HOME`` (``tmp_path/home``)."""
    if not STAMP.is_file():
        pytest.skip("needs the .venv that ./dev sets up (run the suite with ./dev test)")
    checkout = tmp_path / "statehub"
    checkout.mkdir()
    for name in ("dev", "pyproject.toml"):
        shutil.copy2(CHECKOUT / name, checkout / name)
    (checkout / ".venv").symlink_to(CHECKOUT / ".venv")
    installed = STAMP.stat().st_mtime - 60  # older than the install: ./dev does not reinstall
    os.utime(checkout / "pyproject.toml", (installed, installed))
    home = tmp_path / "home"
    home.mkdir()
    yield checkout, home


def dev_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a newcomer whose home is ``home``: nothing of statehub's set."""
    env = clirun.environment(None, ("XDG_CONFIG_HOME", "COLUMNS"))
    return {**env, "HOME": str(home), **extra}


@pytest.mark.long(12)
def test_dev_run_with_repos_in_src_shows_findings_and_its_daemon_sweeps(
    newcomer: tuple[Path, Path], tmp_path: Path
) -> None:
    """With three repos in ~/src, `./dev run` writes a config, shows their findings, and its
    daemon sweeps them at its next fire."""
    checkout, home = newcomer
    for name in REPOS:
        make_repo(home / "src", name, with_origin=False)  # no upstream: C-18 for each
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    config = home / ".config" / "statehub" / "statehub.toml"
    database = config.parent / "var" / "statehub.db"
    # The suite's trigger (every 5 s): the next fire comes at once, not at the quarter hour.
    env = dev_env(home, **fire_every_env(5))
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            ["./dev", "run"],
            cwd=checkout,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own group: the daemon it became goes with it
        )
    try:
        wait_for(lambda: "status page" in err.read_text(), 120, "the first sweep")

        written = tomllib.loads(config.read_text(encoding="utf-8"))
        assert written["repos"]["roots"] == [str((home / "src").resolve())]
        assert written["schedule"]["mode"] == "active"
        table = out.read_text()
        assert all(name in table for name in REPOS)
        assert "C-18" in table
        assert "serve --config" in err.read_text()

        def daemon_sweep() -> list[dict[str, object]]:
            rows = event_rows(database)
            return [row for row in rows if row["detail"]["source"] == "local-daemon"]

        (fired, *_) = wait_for(daemon_sweep, 60, "the daemon's sweep at its next fire", 0.5)
        assert fired["detail"]["repos_total"] == 3
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_dev_run_with_no_repos_starts_nothing_and_says_what_to_run(
    newcomer: tuple[Path, Path],
) -> None:
    """With an empty HOME and no repo beside the checkout, `./dev run` exits non-zero,
    writes nothing, and its last line says what to run."""
    checkout, home = newcomer
    result = subprocess.run(
        ["./dev", "run"],
        cwd=checkout,
        env=dev_env(home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    last = result.stderr.splitlines()[-1]
    assert "init FOLDER" in last
    assert "./dev run --config PATH" in last
    assert str(home / "src") in last
    assert not (home / ".config").exists()
    assert result.stdout == ""


def test_discover_takes_the_repos_beside_the_checkout(tmp_path: Path) -> None:
    """Without ~/src, `init --discover` takes the folder holding the checkout when it holds
    other repos, not the checkout itself."""
    home = tmp_path / "home"
    home.mkdir()
    code = tmp_path / "code"
    checkout = make_repo(code, "statehub", with_origin=False)
    make_repo(code, "neighbour", with_origin=False)
    config = tmp_path / "mine.toml"
    result = clirun.statehub(
        "init", "--discover", config=config, env={"HOME": str(home)}, cwd=checkout
    )
    assert result.returncode == 0, result.stderr
    assert tomllib.loads(config.read_text())["repos"]["roots"] == [str(code.resolve())]


def test_discover_alone_beside_nothing_is_refused(tmp_path: Path) -> None:
    """A checkout with no other repo beside it is not a fleet: exit 2, nothing written."""
    home = tmp_path / "home"
    home.mkdir()
    checkout = make_repo(tmp_path / "code", "statehub", with_origin=False)
    config = tmp_path / "mine.toml"
    result = clirun.statehub(
        "init", "--discover", config=config, env={"HOME": str(home)}, cwd=checkout
    )
    assert result.returncode == 2
    assert "no git repos under" in result.stderr
    assert not config.exists()


def test_discover_sets_the_depth_of_nested_repos(tmp_path: Path) -> None:
    """Repos at ~/src/org/repo give `depth = 2`, and a sweep of that config finds them."""
    home = tmp_path / "home"
    for org, name in (("org", "one"), ("other", "two")):
        make_repo(home / "src" / org, name, with_origin=False)
    config = tmp_path / "mine.toml"
    written = clirun.statehub(
        "init", "--discover", config=config, env={"HOME": str(home)}, cwd=tmp_path
    )
    assert written.returncode == 0, written.stderr
    assert tomllib.loads(config.read_text())["repos"]["depth"] == 2
    sweep = clirun.statehub("sweep", "--json", config=config)
    assert json.loads(sweep.stdout)["detail"]["repos_total"] == 2
