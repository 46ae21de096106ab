"""The whole exception tree of statehub.

    StatehubError                 base: catch this to catch anything statehub raises
    +-- ConfigError               bad configuration file or value (exit status 78)
    +-- UsageError                a request that names something that does not exist (exit 2)
    +-- StoreError                the SQLite store cannot be opened, read or written
    +-- RepoError                 one repository cannot be assessed (becomes C-00)
    |   +-- GitReadError          git data cannot be read (corrupt, dubious ownership, ...)
    |   +-- FetchError            a --remote fetch failed or timed out
    |       +-- FetchTimeout      the fetch did not end within its timeout
    +-- WorkerError               the sweep's worker processes cannot be started (C-00)
    +-- TriggerError              a sweep could not be triggered (daemon via HTTP)
    +-- ClusterError              the cluster scheduler (Temporal) cannot be reached or refused
    +-- ExtraMissingError         an optional part is not installed (``statehub[temporal]``; 78)
    +-- AlreadyRunning            a second daemon or Temporal worker on one database (78)

Errors of the libraries underneath (sqlite3, pygit2, APScheduler, httpx, temporalio) are mapped to
these at the edge with ``raise ... from exc``, so callers never need to know them.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_AUTOMATION_ERROR = 1
EXIT_USAGE = 2
EXIT_DRIFT = 3  # `statehub temporal show`: the server's schedule differs from [schedule]
EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h; systemd units use RestartPreventExitStatus=78


class StatehubError(Exception):
    """Base of every error statehub raises on purpose."""

    exit_status = EXIT_AUTOMATION_ERROR


class ConfigError(StatehubError):
    """The configuration cannot be used: names the file, the key and the reason."""

    exit_status = EXIT_CONFIG

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        super().__init__(f"{file}: {key}: {reason}" if key else f"{file}: {reason}")


class UsageError(StatehubError):
    """The request names something that does not exist (an unknown repo, a bad path)."""

    exit_status = EXIT_USAGE


class StoreError(StatehubError):
    """The SQLite store cannot be opened, read or written."""


class RepoError(StatehubError):
    """One repository cannot be assessed; the sweep records C-00 and goes on."""


class GitReadError(RepoError):
    """Git data cannot be read: corrupt, a gitdir pointing nowhere, no permission, ownership."""


class FetchError(RepoError):
    """A ``--remote`` fetch failed or timed out."""


class FetchTimeout(FetchError):
    """A ``--remote`` fetch did not end within its timeout (and was killed).

    Whose bound that was decides what it means: the repo's own (``fetch_timeout_seconds``)
    is a C-00, the sweep's budget cutting it short is ``skipped_budget`` (contract section 4).
    """


class WorkerError(StatehubError):
    """No worker process could assess repos (cannot start, or broke the protocol)."""


class TriggerError(StatehubError):
    """A sweep could not be triggered (for example the API did not answer)."""


class ClusterError(StatehubError):
    """The cluster scheduler (Temporal) cannot be reached, or refused a request."""


class ExtraMissingError(StatehubError):
    """An optional part of statehub is not installed, e.g. ``pip install 'statehub[temporal]'``.

    Exit status 78, like a bad configuration: restarting the service cannot fix it (the
    units stop retrying on 78).
    """

    exit_status = EXIT_CONFIG


class AlreadyRunning(StatehubError):  # a state the process refuses to start in
    """Another daemon (or Temporal worker) already runs on this database: names its pid.

    Exit status 78, like a bad configuration: two units pointed at one database is one,
    and systemd does not restart a unit that exited 78.
    """

    exit_status = EXIT_CONFIG

    def __init__(self, role: str, pid: int | None, path: object) -> None:
        self.role = role
        self.pid = pid
        holder = f"pid {pid}" if pid is not None else "another process"
        super().__init__(
            f"another {role} ({holder}) already runs on this database ({path}); "
            f"one {role} per database"
        )
