"""Configuration: lookup order, environment overrides, one-line errors with exit 78."""

from __future__ import annotations

from pathlib import Path

import pytest

from clirun import statehub
from statehub.errors import ConfigError
from statehub.settings import CHECKOUT_CONFIG, find_config_file, load_settings, read_token


def test_shipped_config_is_valid_and_has_every_key() -> None:
    """config/statehub.toml loads, and names every key of every section of the model."""
    import tomllib

    settings = load_settings(CHECKOUT_CONFIG)
    data = tomllib.loads(CHECKOUT_CONFIG.read_text())
    for section, model in settings.model_dump(exclude={"config_file"}).items():
        assert set(model) <= set(data[section]) | {"overrides"}, section
    assert settings.database_path == CHECKOUT_CONFIG.parent / "var" / "statehub.db"


def test_lookup_order_explicit_then_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config wins over $STATEHUB_CONFIG, which wins over the files on disk."""
    from_env = tmp_path / "env.toml"
    from_env.write_text("")
    monkeypatch.setenv("STATEHUB_CONFIG", str(from_env))

    assert find_config_file(tmp_path / "explicit.toml") == tmp_path / "explicit.toml"
    assert find_config_file() == from_env
    monkeypatch.delenv("STATEHUB_CONFIG")
    assert find_config_file() in (Path("/etc/statehub/statehub.toml"), CHECKOUT_CONFIG)


def test_environment_overrides_file_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """STATEHUB_SECTION__KEY overrides the file; lists are JSON."""
    config = tmp_path / "c.toml"
    config.write_text('[sweep]\nmax_seconds = 100\n[repos]\nroots = ["a"]\n')
    monkeypatch.setenv("STATEHUB_SWEEP__MAX_SECONDS", "60")
    monkeypatch.setenv("STATEHUB_REPOS__EXCLUDE", '["tmp-*"]')

    settings = load_settings(config)

    assert settings.sweep.max_seconds == 60
    assert settings.repos.exclude == ["tmp-*"]
    assert settings.repos.roots == [Path("a")]
    assert settings.resolve(Path("a")) == tmp_path / "a"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[sweep]\nmax_seconds = 0\n", "sweep.max_seconds", "must be at least 1, not 0"),
        ("[sweep]\nmax_seconds = 3601\n", "sweep.max_seconds", "must be at most 3600"),
        ("[sweep]\nmax_secnds = 3\n", "sweep.max_secnds", "unknown key"),
        ("[checks]\ndisable = ['C-99']\n", "checks.disable", "not a check id"),
        ("[checks]\nworkplan_id_pattern = '(['\n", "checks.workplan_id_pattern", "regular"),
        ("[schedule]\ntrigger = '*/15 * * *'\n", "schedule.trigger", "five-field"),
        ("[schedule]\ntrigger = '99 * * * *'\n", "schedule.trigger", "cron"),
        ("[schedule]\ntrigger = '0 0 31 2 *'\n", "schedule.trigger", "never fires in the next"),
        ("[schedule]\ntrigger = '0 0 30 2 *'\n", "schedule.trigger", "never fires in the next"),
        ("[schedule]\ntimezone = 'Mars/Base'\n", "schedule.timezone", "unknown time zone"),
        ("[schedule]\nmode = 'primary'\n", "schedule.mode", "'standby' or 'active'"),
        ("[api]\nhost = '0.0.0.0'\n", "api.token_file", "required when api.host"),
        ("[repos.overrides.x]\ndisable = ['C-2']\n", "repos.overrides.x.disable", "check id"),
        ("[sweep\n", "", "not valid TOML"),
        ("[temporal]\naddress = 'localhost'\n", "temporal.address", "host:port"),
        ("[temporal]\nsource = 'activity core'\n", "temporal.source", "short name"),
        ("[temporal]\ntls_cert_file = 'c.pem'\n", "temporal", "set both or neither"),
        (
            "[schedule]\nprimary_grace_minutes = 0\n",
            "schedule.primary_grace_minutes",
            "more than 0",
        ),
    ],
)
def test_bad_values_name_file_key_and_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    """Each bad file or value is one ConfigError naming the file, the key and the reason."""
    config = tmp_path / "bad.toml"
    config.write_text(text)

    with pytest.raises(ConfigError) as caught:
        load_settings(config)

    assert caught.value.file == str(config)
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_bad_config_exits_78_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    """The CLI refuses a bad config with one stderr line, exit 78, and no database file."""
    config = tmp_path / "bad.toml"
    config.write_text('[hub]\ndatabase = "db.sqlite"\n[sweep]\nmax_seconds = -1\n')

    result = statehub("sweep", "--all", config=config)

    assert result.returncode == 78
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(config) in lines[0] and "sweep.max_seconds" in lines[0]
    assert not (tmp_path / "db.sqlite").exists()


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    """A bad override from the environment says which variable it came from."""
    config = tmp_path / "c.toml"
    config.write_text("")

    result = statehub("config", "check", config=config, env={"STATEHUB_SWEEP__MAX_SECONDS": "x"})

    assert result.returncode == 78
    assert "$STATEHUB_SWEEP__MAX_SECONDS" in result.stderr


def test_missing_config_file_is_exit_78(tmp_path: Path) -> None:
    """--config naming no file is a configuration error, not a traceback."""
    result = statehub("config", "check", config=tmp_path / "nope.toml")

    assert result.returncode == 78
    assert "file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_token_file_must_hold_32_characters(tmp_path: Path) -> None:
    """A token file empty or shorter than 32 characters is refused; a long one is read, stripped."""
    token = tmp_path / "token"
    token.write_text("\n")
    config = tmp_path / "c.toml"
    config.write_text('[api]\nhost = "0.0.0.0"\ntoken_file = "token"\n')
    settings = load_settings(config)

    with pytest.raises(ConfigError, match="empty"):
        read_token(settings)
    token.write_text("s3cret\n")
    with pytest.raises(ConfigError, match="6 characters, fewer than 32"):
        read_token(settings)
    token.write_text("s3cret" * 6 + "\n")
    assert read_token(settings) == "s3cret" * 6


def test_per_repo_override_merges_with_fleet_settings(tmp_path: Path) -> None:
    """An override adds disabled checks and replaces the keys it sets, for that repo only."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[checks]\ndisable = ["C-15"]\nmax_file_kb = 100\n'
        '[repos.overrides."legacy"]\ndisable = ["C-02"]\nrequire_workplans = false\n'
        "max_file_kb = 2000\n"
    )
    settings = load_settings(config)

    legacy, other = settings.checks_for("legacy"), settings.checks_for("other")

    assert legacy.disabled == {"C-02", "C-15"}
    assert other.disabled == {"C-15"}
    assert (legacy.max_file_kb, other.max_file_kb) == (2000, 100)
    assert (legacy.require_workplans, other.require_workplans) == (False, True)
    assert legacy.digest() != other.digest()


def test_config_show_prints_effective_values(tmp_path: Path) -> None:
    """config show prints the effective configuration as TOML that loads back the same."""
    import tomllib

    config = tmp_path / "c.toml"
    config.write_text('[sweep]\nmax_seconds = 42\n[repos.overrides."x"]\ndisable = ["C-02"]\n')

    result = statehub("config", "show", config=config)

    assert result.returncode == 0, result.stderr
    shown = tomllib.loads(result.stdout)
    assert shown["sweep"]["max_seconds"] == 42
    assert shown["repos"]["overrides"]["x"]["disable"] == ["C-02"]
    reloaded = tmp_path / "shown.toml"
    reloaded.write_text(result.stdout)
    assert load_settings(reloaded).sweep.max_seconds == 42


def test_temporal_defaults_follow_the_hub_name_and_the_definition(tmp_path: Path) -> None:
    """Schedule id and task queue derive from [hub] name (default: host name) and [schedule] id."""
    import socket

    config = tmp_path / "c.toml"
    config.write_text('[schedule]\nid = "def-12345678-9"\n[temporal]\n')
    settings = load_settings(config)
    host = socket.gethostname()
    assert settings.hub_name == host
    assert settings.temporal_task_queue == f"statehub-{host}-def-1234"
    assert settings.temporal_schedule_id == f"statehub-{host}-def-12345678-9"
    config.write_text('[hub]\nname = "build box 2"\n[schedule]\nid = "d2"\n')
    settings = load_settings(config)
    assert settings.hub_name == "build box 2"
    assert settings.temporal_schedule_id == "statehub-build-box-2-d2"
    assert settings.temporal_task_queue == "statehub-build-box-2-d2"
    config.write_text('[hub]\nname = " padded"\n')
    with pytest.raises(ConfigError, match=r"hub\.name"):
        load_settings(config)
    assert settings.temporal.source == "activity-core"
    assert not settings.temporal.uses_tls
    config.write_text('[temporal]\nschedule_id = "s"\napi_key_file = "k"\n')
    settings = load_settings(config)
    assert settings.temporal_schedule_id == "s"
    assert settings.temporal.uses_tls
