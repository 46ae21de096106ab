"""The configuration model: a TOML file validated by pydantic-settings.

Lookup order (first hit wins): ``--config PATH``, ``$STATEHUB_CONFIG``, ``./statehub.toml``,
``/etc/statehub/statehub.toml``, ``config/statehub.toml`` beside the checkout
(:func:`locate_config` says which and why). Every key can be overridden by
``STATEHUB_<SECTION>__<KEY>``; any other ``STATEHUB_*`` variable is named by
:func:`environment_warnings` with the closest key. Relative paths in the file are relative to
the file's folder. Any problem is a :class:`ConfigError` naming file, key and reason;
:mod:`statehub.configread` reads the file and the environment so that every expected
mistake is one (issue 12). Every number has a range and every list at most
:data:`MAX_LIST_ITEMS` entries, checked at load.
"""

from __future__ import annotations

import contextvars
import ipaddress
import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from annotated_types import MaxLen
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from statehub.baseline import load as load_baseline
from statehub.checks import DEFAULT_LOCKFILES, DEFAULT_README_NAMES, EffectiveChecks
from statehub.configread import (
    MAX_CONFIG_BYTES,
    MAX_TOKEN_BYTES,
    check_file_types,
    describe,
    find_nul,
    parse_toml,
    prepare_environment,
    read_regular_file,
    unknown_variables,
)
from statehub.contract import SOURCE_CLUSTER, SOURCE_DAEMON, SOURCE_FALLBACK, SOURCE_TIMER
from statehub.errors import ConfigError
from statehub.fleetscan import MAX_DEPTH
from statehub.logs import LEVEL_VARIABLE

ENV_CONFIG = "STATEHUB_CONFIG"
ENV_PREFIX = "STATEHUB_"
LOCAL_CONFIG = Path("statehub.toml")  # in the current folder
SYSTEM_CONFIG = Path("/etc/statehub/statehub.toml")
CHECKOUT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "statehub.toml"

CHECK_IDS = tuple(f"C-{n:02d}" for n in range(24))  # C-00 .. C-23
_CHECK_ID = re.compile(r"^C-(0\d|1\d|2[0-3])$")
# A source (detail.source): who asked for a sweep. Shared by the config, the CLI and the API.
SOURCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_SOURCE_NAME = re.compile(SOURCE_PATTERN)

MAX_LIST_ITEMS = 10_000
"""Every list of the configuration holds at most this many entries (and overrides as many
repos): generous for a fleet, small enough that a runaway file cannot stall a load."""
Capped = MaxLen(MAX_LIST_ITEMS)
MIN_TOKEN_CHARS = 32
"""An API token shorter than this is a configuration error (78)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_ids(value: list[str]) -> list[str]:
    for check_id in value:
        if not _CHECK_ID.match(check_id):
            raise ValueError(f"{check_id!r} is not a check id (C-00 .. C-23)")
    return value


def _exclude_paths(value: dict[str, list[str]]) -> dict[str, list[str]]:
    _check_ids(list(value))
    for patterns in value.values():
        if any(not pattern.strip() for pattern in patterns):
            raise ValueError("an exclude pattern may not be empty")
    return value


def _readme_names(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("name at least one file (the default is README.md, README.rst, ...)")
    for name in value:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"{name!r} is not a file name at the root of a repo")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from exc
    return value


class HubSettings(_Section):
    database: Path = Path("var/statehub.db")
    retention_days: int = Field(90, ge=1, le=36500)
    retired_sources: Annotated[list[str], Capped] = [SOURCE_TIMER]
    name: str = Field("", max_length=64)  # empty: the host name (effective_name)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value and (value != value.strip() or not value.isprintable()):
            raise ValueError("a hub name is printable text without leading or trailing spaces")
        return value

    @property
    def effective_name(self) -> str:
        """This hub's name on every surface: ``[hub] name``, else the host name."""
        return self.name or socket.gethostname()


class RepoOverride(_Section):
    """Per-repo settings: any key of ``[checks]``, and ``require_workplans``."""

    disable: Annotated[list[str], Capped] | None = None
    workplan_id_pattern: str | None = None
    workplan_statuses: Annotated[list[str], Capped] | None = None
    max_file_kb: int | None = Field(None, ge=1, le=1_048_576)
    readme_names: Annotated[list[str], Capped] | None = None
    exclude_paths: Annotated[dict[str, Annotated[list[str], Capped]], Capped] | None = None
    require_workplans: bool | None = None

    _ids = field_validator("disable")(lambda v: None if v is None else _check_ids(v))
    _readmes = field_validator("readme_names")(lambda v: None if v is None else _readme_names(v))
    _excludes = field_validator("exclude_paths")(lambda v: None if v is None else _exclude_paths(v))
    _pattern = field_validator("workplan_id_pattern")(lambda v: None if v is None else _regex(v))


class RepoSettings(_Section):
    roots: Annotated[list[Path], Capped] = [Path("~/src")]
    paths: Annotated[list[Path], Capped] = []
    exclude: Annotated[list[str], Capped] = []
    # How many levels below a root repos are looked for: 1 is ~/src/repo, 2 ~/src/org/repo.
    depth: int = Field(1, ge=1, le=MAX_DEPTH)
    default_branch: str = Field("main", min_length=1)
    require_workplans: bool = True
    overrides: Annotated[dict[str, RepoOverride], Capped] = {}


class CheckSettings(_Section):
    disable: Annotated[list[str], Capped] = []
    workplan_id_pattern: str = r"^[A-Z][A-Z0-9]*-WP-[0-9]{4}$"
    workplan_statuses: Annotated[list[str], Capped] = [
        "draft",
        "active",
        "blocked",
        "finished",
        "abandoned",
    ]
    max_file_kb: int = Field(500, ge=1, le=1_048_576)  # up to 1 GiB
    readme_names: Annotated[list[str], Capped] = list(DEFAULT_README_NAMES)
    exclude_paths: Annotated[dict[str, Annotated[list[str], Capped]], Capped] = {}
    # C-22 leaves these file names alone (dependency lock files; [] judges them too).
    lockfiles: Annotated[list[str], Capped] = list(DEFAULT_LOCKFILES)
    # The findings accepted by `statehub accept` (statehub.baseline), relative to the
    # configuration file's folder; a file that does not exist accepts nothing.
    baseline: Path = Path("statehub-baseline.toml")

    _ids = field_validator("disable")(_check_ids)
    _readmes = field_validator("readme_names")(_readme_names)
    _excludes = field_validator("exclude_paths")(_exclude_paths)
    _pattern = field_validator("workplan_id_pattern")(_regex)


class SweepSettings(_Section):
    max_seconds: int = Field(300, ge=1, le=3600)
    fetch_timeout_seconds: int = Field(20, ge=1, le=600)
    # Repos are read in worker processes, each bounded (contract section 4).
    workers: int = Field(0, ge=0, le=64)  # 0: one per usable core
    repo_timeout_seconds: int = Field(60, ge=1, le=3600)
    repo_memory_mb: int = Field(1024, ge=128, le=1 << 20)


class ScheduleSettings(_Section):
    id: str = Field("7c4e9a12-8f3b-4d5e-9c6a-1b2d3e4f5a6b", min_length=1)
    name: str = "State Hub Consistency Sweep"
    trigger: str = "*/15 * * * *"
    timezone: str = "UTC"
    misfire_policy: Literal["skip", "run_once"] = "skip"
    misfire_grace_seconds: int = Field(30, ge=1, le=3600)
    enabled: bool = True
    mode: Literal["standby", "active"] = "standby"
    primary_sources: Annotated[list[str], Capped] = [SOURCE_CLUSTER]
    # Whole minutes in practice; a fraction is accepted (tests shorten the grace to seconds).
    primary_grace_minutes: int | float = Field(35, gt=0, le=10_080)  # up to a week
    remote: bool = False
    trigger_via: Literal["inprocess", "http"] = "inprocess"
    # Empty: this host's API as [api] host and port give it (issue 15: a port set only
    # under [api] used to be ignored here).
    api_url: str = ""
    source: str = SOURCE_DAEMON
    fallback_source: str = SOURCE_FALLBACK
    # Standby: how long after its slot a fallback waits before it sweeps, and stands down if
    # the returning primary's sweep of the slot is recorded or under way by then (issue 20:
    # at a hand-back no slot is swept by both). Seconds; a fraction is accepted for tests.
    handback_delay_seconds: int | float = Field(60, ge=0, le=600)

    @field_validator("trigger")
    @classmethod
    def _cron(cls, value: str) -> str:
        # The daemon's own reading of cron (0 and 7 are Sunday; either day field may match).
        from statehub.cron import (  # APScheduler: only here
            cron_trigger,
            expand_shortcut,
            next_fire_times,
        )

        # A shortcut is kept as its five fields: every surface shows what fires.
        value = expand_shortcut(value)
        if len(value.split()) != 5:
            raise ValueError(f"{value!r} is not a five-field cron expression (or @hourly, ...)")
        try:
            trigger = cron_trigger(value, ZoneInfo("UTC"))
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a valid cron expression: {exc}") from exc
        # A day that never comes (0 0 31 2 *) would leave the daemon idle forever.
        now = datetime.now(UTC)
        upcoming = next_fire_times(trigger, 1, now=now)
        if not upcoming or upcoming[0] - now > timedelta(days=5 * 366):
            raise ValueError(f"{value!r} never fires in the next five years")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("source", "fallback_source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value == "canary":
            raise ValueError("'canary' is the source of `schedule run-now --force`")
        if not _SOURCE_NAME.match(value):
            raise ValueError("a source is a short name: letters, digits, '.', '_', '-'")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    token_file: str = ""
    header_timeout_seconds: int = Field(10, ge=1, le=300)
    # An answer the client leaves unread this long closes its connection (statehub.serving).
    write_timeout_seconds: int = Field(10, ge=1, le=300)
    # Proxies (addresses or networks) whose X-Forwarded-For/-Proto are believed.
    trusted_proxies: Annotated[list[str], Capped] = []
    # Wrong tokens (bearer or login) a client may send in a minute; then 429 (webauth).
    auth_failures_per_minute: int = Field(10, ge=1, le=100_000)
    # Open connections at most; 0: the open-files limit less a reserve. The idlest goes.
    max_connections: int = Field(0, ge=0, le=1_000_000)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an address or a network") from None
        return value


class NotifySettings(_Section):
    """``[notify]``: pings of a dead man's switch and a webhook for changes (statehub.alerts)."""

    ping_url: str = ""
    webhook_url: str = ""
    alert_checks: Annotated[list[str], Capped] = ["C-13", "C-21", "C-23"]
    # Issue 26: a workplan entering one of these statuses is posted, once.
    workplan_statuses: Annotated[list[str], Capped] = []
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    webhook_attempts: int = Field(3, ge=1, le=5)

    _ids = field_validator("alert_checks")(_check_ids)

    @field_validator("ping_url", "webhook_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("an http:// or https:// URL, or empty for none")
        return value.rstrip("/")


class TemporalSettings(_Section):
    """The cluster scheduler: a Temporal Schedule and this host's worker (docs/temporal.md)."""

    address: str = Field("127.0.0.1:7233", min_length=1)
    namespace: str = Field("default", min_length=1)
    task_queue: str = ""  # empty: derived from the hub's name and definition id
    schedule_id: str = ""  # empty: derived from the hub's name and definition id
    source: str = SOURCE_CLUSTER
    tls: bool = False
    tls_cert_file: str = ""
    tls_key_file: str = ""
    api_key_file: str = ""

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not _SOURCE_NAME.match(value):
            raise ValueError("a source is a short name: letters, digits, '.', '_', '-'")
        return value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        host, colon, port = value.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("an address is host:port, e.g. 127.0.0.1:7233")
        return value

    @model_validator(mode="after")
    def _cert_pair(self) -> TemporalSettings:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together: set both or neither")
        return self

    @property
    def uses_tls(self) -> bool:
        """TLS is on when asked for, or implied by a client certificate or an API key."""
        return self.tls or bool(self.tls_cert_file) or bool(self.api_key_file)


_toml_data: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("_toml_data")


class _TomlSource(PydanticBaseSettingsSource):
    """Feeds the already-parsed TOML file to pydantic-settings, below the environment.

    Not the library's ``TomlConfigSettingsSource`` (as of pydantic-settings 2.16), which
    reads the file itself: a path that is not a regular file (a FIFO, a folder) gives it an
    empty document, so every setting would silently keep its default; it reads a file of any
    size whole; and a byte that is not UTF-8 escapes as a bare ``UnicodeDecodeError`` giving
    a byte offset, not the file, line or column. :mod:`statehub.configread` reads the file
    once with those guards (each mistake one line naming the file and the key), and this
    source only hands its result to pydantic.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return _toml_data.get({}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_toml_data.get({}))


class _EnvSource(EnvSettingsSource):
    """The environment, each JSON value checked first: a bad one is a ConfigError naming
    the variable, and a plain path is taken for a list of paths.

    The checked variables replace the source's public ``env_vars`` (the mapping every
    field is read from) once it is built, rather than overriding its private loader.
    ``test_plain_path_is_taken_for_a_list_of_paths`` fails if pydantic-settings stops
    reading ``env_vars``; its version range is capped below 3 in pyproject.toml.
    """

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        prepared = prepare_environment(Settings, os.environ, prefix=ENV_PREFIX)
        self.env_vars = {name.lower(): value for name, value in prepared.items()}


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    hub: HubSettings = HubSettings()
    repos: RepoSettings = RepoSettings()
    checks: CheckSettings = CheckSettings()
    sweep: SweepSettings = SweepSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    api: ApiSettings = ApiSettings()
    temporal: TemporalSettings = TemporalSettings()
    notify: NotifySettings = NotifySettings()

    # Where the configuration came from; not a key of the file.
    config_file: Path | None = Field(None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _EnvSource(settings_cls), _TomlSource(settings_cls))

    @property
    def base_dir(self) -> Path:
        """The folder relative paths are resolved against: the config file's folder."""
        return self.config_file.parent if self.config_file else Path.cwd()

    def resolve(self, path: Path) -> Path:
        """A configured path made absolute: ``~`` expanded, relative to :attr:`base_dir`."""
        expanded = path.expanduser()
        return expanded if expanded.is_absolute() else self.base_dir / expanded

    @property
    def database_path(self) -> Path:
        return self.resolve(self.hub.database)

    @property
    def baseline_path(self) -> Path:
        """The baseline file of ``statehub accept``: ``[checks] baseline``, resolved."""
        return self.resolve(self.checks.baseline)

    @property
    def token_path(self) -> Path | None:
        return self.resolve(Path(self.api.token_file)) if self.api.token_file else None

    @property
    def schedule_api_url(self) -> str:
        """Where ``trigger_via = "http"`` posts: ``[schedule] api_url``, else ``[api]``'s."""
        if self.schedule.api_url:
            return self.schedule.api_url.rstrip("/")
        host = self.api.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 (read, not bound: reach it on loopback)
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.api.port}"

    @property
    def hub_name(self) -> str:
        """This hub's name on every surface: ``[hub] name``, else the host name."""
        return self.hub.effective_name

    @property
    def temporal_schedule_id(self) -> str:
        """The Temporal Schedule's id: ``[temporal] schedule_id``, else
        ``statehub-<hub>-<definition id>``, so two hubs on one namespace never share one."""
        return self.temporal.schedule_id or f"statehub-{_id_part(self.hub_name)}-{self.schedule.id}"

    @property
    def temporal_task_queue(self) -> str:
        """The queue this hub's worker polls: ``[temporal] task_queue``, else
        ``statehub-<hub>-<first 8 of the definition id>``."""
        return self.temporal.task_queue or (
            f"statehub-{_id_part(self.hub_name)}-{_id_part(self.schedule.id)[:8]}"
        )

    def checks_for(self, repo: str) -> EffectiveChecks:
        """The effective check settings of one repo: fleet-wide, then its override, and its
        entries of the baseline file (ConfigError when that file is malformed)."""
        return self.checks_for_each([repo])[repo]

    def checks_for_each(self, repos: Iterable[str]) -> dict[str, EffectiveChecks]:
        """:meth:`checks_for` of each repo, for a sweep: the baseline file is read once, and
        the repos with neither an override nor a baseline entry share one object."""
        baseline = load_baseline(self.baseline_path)
        shared: EffectiveChecks | None = None
        each: dict[str, EffectiveChecks] = {}
        for repo in repos:
            accepted = baseline.for_repo(repo)
            if accepted or repo in self.repos.overrides:
                each[repo] = self._effective_checks(repo, accepted)
            else:
                shared = shared or self._effective_checks(repo, ())
                each[repo] = shared
        return each

    def _effective_checks(
        self, repo: str, accepted: tuple[tuple[str, str | None, tuple[str, ...]], ...]
    ) -> EffectiveChecks:
        override = self.repos.overrides.get(repo, RepoOverride())
        disabled = set(self.checks.disable) | set(override.disable or ())
        # Excludes add up: the fleet's patterns of a check, then the repo's own.
        excludes: dict[str, tuple[str, ...]] = {}
        for table in (self.checks.exclude_paths, override.exclude_paths or {}):
            for check, patterns in table.items():
                excludes[check] = excludes.get(check, ()) + tuple(patterns)
        return EffectiveChecks(
            disabled=frozenset(disabled),
            workplan_id_pattern=override.workplan_id_pattern or self.checks.workplan_id_pattern,
            workplan_statuses=tuple(override.workplan_statuses or self.checks.workplan_statuses),
            max_file_kb=override.max_file_kb or self.checks.max_file_kb,
            require_workplans=(
                self.repos.require_workplans
                if override.require_workplans is None
                else override.require_workplans
            ),
            default_branch=self.repos.default_branch,
            readme_names=tuple(override.readme_names or self.checks.readme_names),
            exclude_paths=excludes,
            lockfiles=tuple(self.checks.lockfiles),
            baseline=accepted,
        )


FoundBy = Literal["--config", "$STATEHUB_CONFIG", "./statehub.toml", "system", "checkout", ""]


@dataclass(frozen=True, kw_only=True)
class ConfigLocation:
    """The configuration file chosen by the lookup order, and how it was found."""

    path: Path | None
    found_by: FoundBy

    @property
    def explicit(self) -> bool:
        """Named on the command line (``--config``): the only case not announced."""
        return self.found_by == "--config"

    def describe(self) -> str:
        """One line for stderr: which configuration is read, and why that one."""
        if self.path is None:
            return "configuration: none found, built-in defaults (statehub init writes one)"
        why = {
            "$STATEHUB_CONFIG": "from $STATEHUB_CONFIG",
            "./statehub.toml": "found in the current folder",
            "system": "the system's",
            "checkout": "the checkout's shipped one; statehub init writes one of yours",
        }.get(self.found_by, self.found_by)
        return f"configuration: {self.path} ({why})"


def locate_config(explicit: str | os.PathLike[str] | None = None) -> ConfigLocation:
    """The configuration file to use, by the lookup order (path None: there is none)."""
    if explicit is not None:
        return ConfigLocation(path=Path(explicit), found_by="--config")
    from_env = os.environ.get(ENV_CONFIG)
    if from_env:
        return ConfigLocation(path=Path(from_env), found_by="$STATEHUB_CONFIG")
    candidates: tuple[tuple[Path, FoundBy], ...] = (
        (LOCAL_CONFIG.absolute(), "./statehub.toml"),
        (SYSTEM_CONFIG, "system"),
        (CHECKOUT_CONFIG, "checkout"),
    )
    for candidate, found_by in candidates:
        if candidate.is_file():
            return ConfigLocation(path=candidate, found_by=found_by)
    return ConfigLocation(path=None, found_by="")


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The configuration file to use, by the lookup order; None when there is none at all."""
    return locate_config(explicit).path


def _id_part(text: str) -> str:
    """``text`` as a piece of a Temporal id: letters, digits, '.', '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "hub"


def _env_name(loc: tuple[str | int, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def load_settings(explicit: str | os.PathLike[str] | None = None) -> Settings:
    """Find, read and validate the configuration.

    Raises ConfigError (exit status 78) naming the file (or the variable), the key and the
    reason: a file that is not a regular file, too large, not UTF-8 or not TOML; a value of
    the wrong type (strictly, in the file), out of range, or a key that does not exist.
    The first of :func:`settings_and_errors`'s errors is raised.
    """
    settings, errors = settings_and_errors(explicit)
    if errors:
        raise errors[0]
    assert settings is not None  # no error: the settings were built
    return settings


def settings_and_errors(
    explicit: str | os.PathLike[str] | None = None,
) -> tuple[Settings | None, list[ConfigError]]:
    """The configuration, or every error found in it (``config check`` shows them all).

    A file that cannot be read or parsed is one error. Otherwise every value of the file
    that is wrong is one error each, and so is every wrong environment variable (checked
    against the defaults when the file has errors, so that nothing is reported twice).
    """
    path = find_config_file(explicit)
    shown = str(path) if path else "(built-in defaults)"
    errors, data = _file_errors(path, shown)
    if data is None:
        return None, errors
    settings: Settings | None = None
    token = _toml_data.set(data)
    try:
        settings = Settings(config_file=path.resolve() if path else None)
    except ValidationError as exc:
        for error in exc.errors():
            key, reason = describe(Settings, error)
            env = _env_name(tuple(error["loc"]))
            if env in os.environ:
                reason = f"{reason} (from ${env})"
            errors.append(ConfigError(shown, key, reason))
    except ConfigError as exc:  # an environment variable that is not the JSON it must be
        errors.append(exc)
    finally:
        _toml_data.reset(token)
    if settings is not None and not errors:
        try:
            _check_api_exposure(settings, shown)
        except ConfigError as exc:
            errors.append(exc)
    return (None if errors else settings), errors


def _file_errors(path: Path | None, shown: str) -> tuple[list[ConfigError], dict[str, Any] | None]:
    """The file's errors, and the data to validate the environment with.

    The data is None when the file cannot be read or parsed (nothing more can be checked),
    empty when its values have errors (the environment is then checked on the defaults).
    """
    if path is None:
        return [], {}
    try:
        data = _read_config_file(path, shown)
        check_file_types(Settings, data)
    except ConfigError as exc:
        return [exc], None
    except ValidationError as exc:
        return [ConfigError(shown, *describe(Settings, error)) for error in exc.errors()], {}
    except RecursionError:
        return [ConfigError(shown, "", "nested too deeply")], None
    return [], data


def _read_config_file(path: Path, shown: str) -> dict[str, Any]:
    """The file's TOML document; ConfigError when it cannot be read, parsed, or holds NUL."""
    raw = read_regular_file(path, shown=shown, key="", limit=MAX_CONFIG_BYTES)
    data = parse_toml(raw, shown=shown)
    nul = find_nul(data)
    if nul is not None:
        raise ConfigError(shown, ".".join(map(str, nul)), "holds a NUL byte")
    return data


PRIVATE_ENV_PREFIXES = ("STATEHUB_TEST_",)
"""Variables of the test suite, never the user's: not warned about as unknown."""


def environment_warnings(environ: Mapping[str, str] | None = None) -> list[str]:
    """One warning per ``STATEHUB_*`` variable that sets nothing, naming the closest key."""
    return unknown_variables(
        Settings,
        os.environ if environ is None else environ,
        prefix=ENV_PREFIX,
        known=(ENV_CONFIG, LEVEL_VARIABLE),  # $STATEHUB_LOG_LEVEL: read by statehub.logs
        private=PRIVATE_ENV_PREFIXES,
    )


Origin = Literal["file", "environment", "default"]


def config_origins(settings: Settings) -> dict[str, tuple[Origin, str]]:
    """For each ``section.key`` of :func:`public_dict`: where its value came from.

    ``("environment", "$NAME")``, ``("file", path)`` or ``("default", "")``. The file is
    read again (a loaded configuration keeps only the merged values).
    """
    path = settings.config_file
    data = _read_config_file(path, str(path)) if path is not None else {}
    variables = {name.upper(): name for name in os.environ}
    origins: dict[str, tuple[Origin, str]] = {}
    for section, values in public_dict(settings).items():
        for key in values:
            env = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
            named = [
                name for name in (f"{ENV_PREFIX}{section.upper()}", env) if name in variables
            ] or [name for name in variables if name.startswith(env + "__")]
            if named:
                origins[f"{section}.{key}"] = ("environment", "$" + variables[named[-1]])
            elif isinstance(data.get(section), dict) and key in data[section]:
                origins[f"{section}.{key}"] = ("file", str(path))
            else:
                origins[f"{section}.{key}"] = ("default", "")
    return origins


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and a literal loopback address (127.0.0.0/8, ``::1``).

    Parsed, not matched: ``127.evil.example`` is a name, not an address, and is not loopback.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_api_exposure(settings: Settings, shown: str) -> None:
    """Off loopback the API needs a token: a config that exposes it without one is refused."""
    if is_loopback(settings.api.host):
        return
    token_path = settings.token_path
    if token_path is None:
        raise ConfigError(shown, "api.token_file", "required when api.host is not loopback")


def read_token(settings: Settings) -> str | None:
    """The API bearer token, or None when no token file is configured.

    Raises ConfigError when a configured token file is missing, unreadable, not a regular
    file, larger than 64 KiB, not UTF-8 or empty.
    """
    token_path = settings.token_path
    if token_path is None:
        return None
    shown = str(settings.config_file or "(built-in defaults)")
    raw = read_regular_file(token_path, shown=shown, key="api.token_file", limit=MAX_TOKEN_BYTES)
    try:
        token = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(shown, "api.token_file", f"{token_path} is not UTF-8") from None
    if not token:
        raise ConfigError(shown, "api.token_file", f"{token_path} is empty")
    if len(token) < MIN_TOKEN_CHARS:  # guessable: the API answers thousands a second
        raise ConfigError(
            shown,
            "api.token_file",
            f"{token_path} holds {len(token)} characters, fewer than {MIN_TOKEN_CHARS}"
            " (make one: head -c 32 /dev/urandom | base64)",
        )
    return token


def public_dict(settings: Settings) -> dict[str, Any]:
    """The effective configuration as a plain dict (for ``config show``); never the token."""
    return settings.model_dump(mode="json", exclude={"config_file"})
