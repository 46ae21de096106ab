"""The command line as a subprocess: ``python -m statehub ARGS``, run to its end or started.

One runner for every test that calls the CLI. Its environment is the caller's without what
would change the configuration (``api_support.server_env``), plus the variables a test sets
and minus those it unsets; stdin is ``/dev/null`` (the CLI reads no input, so nothing waits on
a terminal). Every run is bounded by ``timeout``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal, overload

from api_support import server_env

STATEHUB = (sys.executable, "-m", "statehub")


def command(args: Iterable[str], config: Path | None) -> list[str]:
    """``python -m statehub ARGS``, with ``--config CONFIG`` last when a config is given."""
    return [*STATEHUB, *args, *(() if config is None else ("--config", str(config)))]


def environment(env: Mapping[str, str] | None, unset: Iterable[str]) -> dict[str, str]:
    """The caller's environment cleaned (``server_env``), ``unset`` removed, ``env`` added."""
    removed = set(unset)
    return {
        **{key: value for key, value in server_env().items() if key not in removed},
        **(env or {}),
    }


@overload
def statehub(
    *args: str,
    config: Path | None = None,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    unset: Iterable[str] = (),
    cwd: Path | None = None,
    text: Literal[True] = True,
) -> subprocess.CompletedProcess[str]: ...


@overload
def statehub(
    *args: str,
    config: Path | None = None,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    unset: Iterable[str] = (),
    cwd: Path | None = None,
    text: Literal[False],
) -> subprocess.CompletedProcess[bytes]: ...


def statehub(
    *args: str,
    config: Path | None = None,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    unset: Iterable[str] = (),
    cwd: Path | None = None,
    text: bool = True,
) -> subprocess.CompletedProcess[str] | subprocess.CompletedProcess[bytes]:
    """``statehub ARGS [--config CONFIG]`` to its end (``timeout`` seconds at most: a bound on
    a run that hangs, not a speed target).

    Output is captured, as text or (``text=False``) as bytes; the exit status is the
    caller's to check. ``env`` adds variables, ``unset`` removes them; ``cwd`` is where it
    runs (the caller's folder when None).
    """
    return subprocess.run(
        command(args, config),
        capture_output=True,
        text=text,
        timeout=timeout,
        check=False,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        env=environment(env, unset),
    )


def start_statehub(
    *args: str,
    config: Path | None = None,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``statehub ARGS [--config CONFIG]`` started; stdout and stderr appended to ``log``,
    or discarded when there is none. The caller stops and reaps it."""
    with (log or Path(os.devnull)).open("ab") as sink:
        return subprocess.Popen(
            command(args, config),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=environment(env, ()),
        )
