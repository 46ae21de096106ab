"""Which configuration is read and what it holds, said to the user (issue 23).

The lookup finds ./statehub.toml; a command says on stderr which file it read when it was
not named; `config show --origin` says where each value came from; a misspelt STATEHUB_*
variable is a warning naming the key meant; `config check` lists every error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clirun import statehub
from gitfleet import write_config
from statehub.settings import LOCAL_CONFIG, environment_warnings, locate_config


def test_local_file_comes_before_the_system_and_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """./statehub.toml is found after $STATEHUB_CONFIG and before the other files."""
    monkeypatch.delenv("STATEHUB_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    LOCAL_CONFIG.write_text("")
    location = locate_config()
    assert location.path == tmp_path / "statehub.toml"
    assert location.found_by == "./statehub.toml"
    monkeypatch.setenv("STATEHUB_CONFIG", str(tmp_path / "other.toml"))
    assert locate_config().found_by == "$STATEHUB_CONFIG"


def test_a_command_says_once_which_file_it_found(tmp_path: Path) -> None:
    """`status` in a folder with statehub.toml reads it and says so in one stderr line."""
    write_config(tmp_path, roots=[tmp_path / "src"])
    result = statehub("status", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    expected = (
        f"statehub: configuration: {tmp_path / 'statehub.toml'} (found in the current folder)"
    )
    assert lines.count(expected) == 1


def test_a_file_from_the_environment_is_announced_too(tmp_path: Path) -> None:
    """Only --config is silent: a file named by $STATEHUB_CONFIG is said on stderr."""
    config = write_config(tmp_path, roots=[tmp_path / "src"])
    result = statehub("runs", env={"STATEHUB_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"statehub: configuration: {config} (from $STATEHUB_CONFIG)\n"


@pytest.mark.parametrize("args", [("status", "--json"), ("events", "--json")])
def test_json_and_explicit_configs_are_not_announced(tmp_path: Path, args: tuple[str, ...]) -> None:
    """With --json, or with --config, nothing is said about the configuration on stderr."""
    config = write_config(tmp_path, roots=[tmp_path / "src"])
    found = statehub(*args, cwd=tmp_path)
    named = statehub(args[0], config=config)
    assert found.returncode == named.returncode == 0
    assert "configuration:" not in found.stderr
    assert "configuration:" not in named.stderr
    json.loads(found.stdout)


def test_misspelt_variable_is_a_warning_naming_the_key() -> None:
    """One underscore where two belong: the warning names the variable and the key meant."""
    warnings = environment_warnings(
        {
            "STATEHUB_SWEEP_MAX_SECONDS": "60",
            "STATEHUB_CONFIG": "x",
            "STATEHUB_LOG_LEVEL": "debug",
            "STATEHUB_SWEEP__WORKERS": "2",
        }
    )
    assert warnings == [
        "$STATEHUB_SWEEP_MAX_SECONDS is not a setting and is ignored; "
        "did you mean $STATEHUB_SWEEP__MAX_SECONDS (sweep.max_seconds)?"
    ]


def test_misspelt_variable_is_warned_on_stderr(tmp_path: Path) -> None:
    """A command run with a misspelt variable says so on stderr, with --json too."""
    config = write_config(tmp_path, roots=[tmp_path / "src"])
    result = statehub("events", "--json", config=config, env={"STATEHUB_REPOS_ROOTS": '["/srv"]'})
    assert result.returncode == 0
    assert result.stderr == (
        "statehub: warning: $STATEHUB_REPOS_ROOTS is not a setting and is ignored; "
        "did you mean $STATEHUB_REPOS__ROOTS (repos.roots)?\n"
    )


def test_config_show_origin_names_file_environment_and_default(tmp_path: Path) -> None:
    """`config show --origin` says, per key, file, environment (which variable) or default."""
    config = write_config(tmp_path, roots=[tmp_path], sweep="max_seconds = 100")
    env = {"STATEHUB_SWEEP__WORKERS": "2"}
    text = statehub("config", "show", "--origin", config=config, env=env)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert f"sweep.max_seconds = 100    # file {config.resolve()}" in lines
    assert "sweep.workers = 2    # environment $STATEHUB_SWEEP__WORKERS" in lines
    assert "sweep.repo_timeout_seconds = 60    # default" in lines
    rows = json.loads(
        statehub("config", "show", "--origin", "--json", config=config, env=env).stdout
    )
    by_key = {row["key"]: row for row in rows}
    assert by_key["sweep.workers"] == {
        "key": "sweep.workers",
        "value": 2,
        "origin": "environment",
        "from": "$STATEHUB_SWEEP__WORKERS",
    }
    assert by_key["api.port"]["origin"] == "default"


def test_config_check_reports_every_error(tmp_path: Path) -> None:
    """Three wrong values in the file and one in the environment: four lines, exit 78."""
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[sweep]\nmax_seconds = 0\nworkers = "x"\n[api]\nport = 99999\n', encoding="utf-8"
    )
    result = statehub("config", "check", config=bad, env={"STATEHUB_HUB__RETENTION_DAYS": "0"})
    assert result.returncode == 78
    lines = result.stderr.splitlines()
    assert [line.split(": ")[3] for line in lines] == [
        "sweep.max_seconds",
        "sweep.workers",
        "api.port",
        "hub.retention_days",
    ]
    assert all(line.startswith(f"statehub: configuration error: {bad}: ") for line in lines)
    assert lines[-1].endswith("(from $STATEHUB_HUB__RETENTION_DAYS)")


def test_a_second_init_in_one_folder_gets_its_own_database(tmp_path: Path) -> None:
    """Two configurations written by init in one folder name two databases."""
    for name in ("statehub.toml", "work.toml"):
        result = statehub("init", str(tmp_path), config=tmp_path / name)
        assert result.returncode == 0, result.stderr
    first = statehub("config", "show", "--json", config=tmp_path / "statehub.toml")
    second = statehub("config", "show", "--json", config=tmp_path / "work.toml")
    assert json.loads(first.stdout)["hub"]["database"] == "var/statehub.db"
    assert json.loads(second.stdout)["hub"]["database"] == "var/work.db"
