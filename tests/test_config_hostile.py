"""Configuration mistakes a careless operator makes: one line, exit 78, nothing written.

Before issue 12 each of these gave a Python traceback and exit 1 (an environment list that
is not JSON, a file that is not UTF-8, a NUL byte in a path, TOML nested very deeply), hung
(a config or token file that is a FIFO), or passed unnoticed (a grace of 10**15 minutes,
``"300"`` for a number, a million exclude patterns). Each case runs the real command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from clirun import statehub
from statehub.settings import MAX_LIST_ITEMS

ROOTS = 'roots = ["fleet"]\n'


def config_with(folder: Path, body: bytes) -> Path:
    """A config file in ``folder`` holding ``body`` as it is."""
    (folder / "fleet").mkdir(exist_ok=True)
    path = folder / "statehub.toml"
    path.write_bytes(body)
    return path


def fleet_env(folder: Path) -> dict[str, str]:
    """Roots and database from the environment, so the file holds only the case."""
    return {
        "STATEHUB_REPOS__ROOTS": json.dumps([str(folder / "fleet")]),
        "STATEHUB_HUB__DATABASE": str(folder / "db" / "statehub.db"),
    }


def assert_refused(result: subprocess.CompletedProcess[str], *parts: str) -> str:
    """Exit 78, one stderr line holding every part, no traceback, nothing on stdout."""
    assert result.returncode == 78, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert "Value error" not in lines[0]
    return lines[0]


CASES = [
    pytest.param(b"[hub]\nretention_days = 0\n", "hub.retention_days", "at least 1", id="zero"),
    pytest.param(
        b"[schedule]\nprimary_grace_minutes = 1000000000000000\n",
        "schedule.primary_grace_minutes",
        "must be at most 10080, not 1000000000000000",
        id="grace-10e15",
    ),
    pytest.param(
        b"[checks]\nmax_file_kb = 99999999999\n", "checks.max_file_kb", "at most", id="huge-kb"
    ),
    pytest.param(
        b'[sweep]\nmax_seconds = "300"\n',
        "sweep.max_seconds",
        "must be a whole number, not the string '300'",
        id="string-number",
    ),
    pytest.param(
        b'[schedule]\nenabled = "yes"\n',
        "schedule.enabled",
        "must be true or false, not the string 'yes'",
        id="string-boolean",
    ),
    pytest.param(
        b"[api]\nport = 8000.0\n", "api.port", "must be a whole number, not 8000.0", id="float-port"
    ),
    pytest.param(
        b"[repos]\nroots = 1979-05-27\n", "repos.roots", "must be a list", id="date-for-list"
    ),
    pytest.param(
        b'[repos]\nroot = ["/srv"]\n',
        "repos.root",
        "unknown key; did you mean repos.roots?",
        id="did-you-mean",
    ),
    pytest.param(
        b"[shedule]\nenabled = false\n",
        "shedule",
        "unknown key; did you mean schedule?",
        id="did-you-mean-section",
    ),
    pytest.param(
        b'[schedule]\ntrigger = "61 * * * *"\n',
        "schedule.trigger",
        "'61 * * * *' is not a valid cron expression",
        id="bad-cron",
    ),
    pytest.param(
        b'[schedule]\ntrigger = "every day"\n',
        "schedule.trigger",
        "'every day' is not a five-field cron expression",
        id="cron-words",
    ),
    pytest.param(
        b'[hub]\ndatabase = "var/a\\u0000b.db"\n', "hub.database", "NUL byte", id="nul-in-path"
    ),
    pytest.param(
        b'[repos]\npaths = ["ok", "a\\u0000"]\n', "repos.paths.1", "NUL byte", id="nul-in-list"
    ),
    pytest.param(
        b"[repos]\nexclude = [" + b",".join([b'"x*"'] * (MAX_LIST_ITEMS + 1)) + b"]\n",
        "repos.exclude",
        f"at most {MAX_LIST_ITEMS} entries, not {MAX_LIST_ITEMS + 1}",
        id="list-cap",
    ),
    pytest.param(
        b'[hub]\ndatabase = "caf\xe9.db"\n',
        "",
        "not UTF-8: byte 0xe9 at line 2, column 16",
        id="latin-1",
    ),
    pytest.param(
        b"[sweep]\nmax_seconds = = 3\n",
        "",
        "not valid TOML: Invalid value (at line 2, column 15)",
        id="toml-line-column",
    ),
    pytest.param(
        b"x = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
        "",
        "nested too deeply",
        id="deep-array",
    ),
    pytest.param(
        b"x = " + b"{a = " * 5_000 + b"1" + b"}" * 5_000 + b"\n",
        "",
        "nested too deeply",
        id="deep-table",
    ),
]


@pytest.mark.parametrize(("body", "key", "reason"), CASES)
def test_bad_file_is_one_line_exit_78_and_nothing_written(
    tmp_path: Path, body: bytes, key: str, reason: str
) -> None:
    """`statehub sweep` refuses the file in one line naming file, key and reason."""
    config = config_with(tmp_path, body)
    result = statehub("sweep", "--all", config=config, env=fleet_env(tmp_path))
    line = assert_refused(result, str(config), reason)
    if key:
        assert f": {key}: " in line
    assert not (tmp_path / "db").exists()


def test_large_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    """A 16 MB config (a million and a half patterns) is refused at once for its size."""
    patterns = ",".join(f'"p{n}*"' for n in range(1_500_000))
    config = config_with(tmp_path, f"[repos]\n{ROOTS}exclude = [{patterns}]\n".encode())
    assert config.stat().st_size > 16_000_000
    started = time.monotonic()
    result = statehub("config", "check", config=config)
    assert time.monotonic() - started < 10
    assert_refused(result, str(config), "is larger than 4194304 bytes")


@pytest.mark.parametrize(
    ("special", "kind"),
    [("fifo", "a FIFO (named pipe)"), ("/dev/zero", "a character device"), ("dir", "a directory")],
)
def test_config_that_is_not_a_regular_file_is_refused_without_hanging(
    tmp_path: Path, special: str, kind: str
) -> None:
    """A FIFO, a device or a folder given as the config is refused at once."""
    path = Path(special) if special.startswith("/") else tmp_path / special
    if special == "fifo":
        os.mkfifo(path)
    elif special == "dir":
        path.mkdir()
    result = statehub("config", "check", config=path, timeout=30)
    assert_refused(result, str(path), f"is {kind}, not a regular file")


def test_token_file_that_is_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    """`statehub serve` with a FIFO as its token file exits 78 at once instead of hanging."""
    os.mkfifo(tmp_path / "token")
    config = config_with(tmp_path, f'[repos]\n{ROOTS}[api]\ntoken_file = "token"\n'.encode())
    result = statehub("serve", config=config, timeout=30)
    assert result.returncode == 78
    assert "api.token_file" in result.stderr
    assert "is a FIFO (named pipe), not a regular file" in result.stderr
    assert "Traceback" not in result.stderr


def test_plain_path_is_taken_for_a_list_of_paths(tmp_path: Path) -> None:
    """STATEHUB_REPOS__ROOTS=/srv/git means the one root /srv/git; JSON still works."""
    config = config_with(tmp_path, f"[repos]\n{ROOTS}".encode())
    plain = statehub(
        "config",
        "show",
        "--json",
        config=config,
        env={"STATEHUB_REPOS__ROOTS": "/srv/git"},
    )
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["repos"]["roots"] == ["/srv/git"]
    listed = statehub(
        "config",
        "show",
        "--json",
        config=config,
        env={"STATEHUB_REPOS__PATHS": '["/a", "/b"]'},
    )
    assert json.loads(listed.stdout)["repos"]["paths"] == ["/a", "/b"]


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("STATEHUB_REPOS__EXCLUDE", "tmp-*", "repos.exclude"),
        ("STATEHUB_CHECKS__DISABLE", "C-15", "checks.disable"),
        ("STATEHUB_REPOS__ROOTS", '["/srv/git"', "repos.roots"),
        ("STATEHUB_REPOS__OVERRIDES", "x", "repos.overrides"),
    ],
)
def test_environment_value_that_is_not_json_names_the_variable(
    tmp_path: Path, variable: str, value: str, key: str
) -> None:
    """A list or table override that is not JSON is one line naming the variable and how."""
    config = config_with(tmp_path, f"[repos]\n{ROOTS}".encode())
    env = {**fleet_env(tmp_path), variable: value}
    result = statehub("sweep", "--all", config=config, env=env)
    assert_refused(result, f"${variable}: {key}: not valid JSON")
    assert not (tmp_path / "db").exists()


def test_environment_keeps_text_conversions(tmp_path: Path) -> None:
    """The environment is text: `60` is a number and `false` a boolean there."""
    config = config_with(tmp_path, f"[repos]\n{ROOTS}".encode())
    result = statehub(
        "config",
        "show",
        "--json",
        config=config,
        env={"STATEHUB_SWEEP__MAX_SECONDS": "60", "STATEHUB_SCHEDULE__ENABLED": "false"},
    )
    document = json.loads(result.stdout)
    assert (document["sweep"]["max_seconds"], document["schedule"]["enabled"]) == (60, False)


def test_environment_unknown_key_says_what_was_meant(tmp_path: Path) -> None:
    """An override for a key that does not exist names the variable and the likely key."""
    config = config_with(tmp_path, f"[repos]\n{ROOTS}".encode())
    result = statehub("config", "check", config=config, env={"STATEHUB_REPOS__ROOT": "/srv"})
    assert_refused(
        result, "repos.root: unknown key; did you mean repos.roots?", "$STATEHUB_REPOS__ROOT"
    )


def test_database_folder_that_is_a_file_says_so(tmp_path: Path) -> None:
    """A database path under a file is one line saying which file is in the way (exit 1)."""
    (tmp_path / "afile").write_text("")
    config = config_with(tmp_path, f'[hub]\ndatabase = "afile/x.db"\n[repos]\n{ROOTS}'.encode())
    result = statehub("sweep", "--all", config=config)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"statehub: database error (C-00): {tmp_path}/afile/x.db: "
        f"{tmp_path}/afile is a file, not a folder"
    ]


def test_error_line_shows_control_characters_escaped(tmp_path: Path) -> None:
    """An unknown key holding an escape sequence is shown written out, not sent raw."""
    config = config_with(tmp_path, b'[sweep]\n"x\\u001b]0;pwned\\u0007" = 1\n')
    result = statehub("config", "check", config=config)
    line = assert_refused(result, "sweep.x\\x1b]0;pwned\\x07: unknown key")
    assert "\x1b" not in line and "\x07" not in line
