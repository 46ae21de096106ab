"""Text from a repository reaches a terminal or a log as text, never as markup or escapes.

Before issue 12 a file named ``x[/b]`` crashed ``statehub sweep`` and ``statehub check``
(rich read it as a closing tag), and a file name holding an escape sequence (a terminal
title, a clear screen) reached stdout raw. Here the real command line runs over such a
repo, through a pipe and with colours forced as on a terminal.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
from pathlib import Path

import pytest

import clirun
from gitfleet import good_files, make_repo, workplan, write, write_config
from statehub.logs import OneLineFormatter

TITLE = "\x1b]0;pwned\x07"  # OSC: set the terminal's title
CLEAR = "\x1b[2J"  # clear the screen
RLO = "\u202e"  # right-to-left override
MARKUP = "x[/b]"
CLOSING_TAG = "[/bold red]"


@pytest.fixture
def hostile(fleet: Path) -> Path:
    """A repo whose file names, workplan title and link target hold markup and escapes."""
    files = good_files("hostile")
    files["README.md"] = f"# hostile\n\nSee [it](gone{CLEAR}.md).\n"  # C-04 names the target
    files["workplans/DEMO-WP-0001-plan.md"] = workplan("DEMO-WP-0001", status=f"done{CLOSING_TAG}")
    files[f"{MARKUP}.md"] = "<<<<<<< ours\n=======\n>>>>>>> theirs\n"  # C-21 names the file
    root = make_repo(fleet, "hostile", files)
    write(root, {f"new{TITLE}{RLO}.txt": "x", f"{CLEAR}[bold]": "y", f"{MARKUP}/inner": "z"})
    return root


def statehub(*args: str, config: Path, colour: bool) -> subprocess.CompletedProcess[bytes]:
    """The CLI 250 columns wide, its output as bytes; ``colour`` makes rich write its styles
    as on a terminal, whatever NO_COLOR the caller has."""
    styles = {"FORCE_COLOR": "1"} if colour else {}
    return clirun.statehub(
        *args, config=config, env={"COLUMNS": "250", **styles}, unset=("NO_COLOR",), text=False
    )


def _assert_shown_escaped(stdout: bytes) -> None:
    text = stdout.decode("utf-8")
    assert TITLE not in text and CLEAR not in text and RLO not in text
    assert "\x07" not in text
    assert "\\x1b]0;pwned\\x07" in text
    assert "\\x1b[2J" in text
    assert "\\u202e" in text
    assert MARKUP in text


@pytest.mark.parametrize("colour", [False, True], ids=["pipe", "terminal"])
def test_check_prints_names_as_text_with_escapes_written_out(
    hostile: Path, tmp_path: Path, colour: bool
) -> None:
    """`statehub check` shows markup-like names as they are and control characters escaped."""
    config = write_config(tmp_path, roots=[hostile.parent])
    result = statehub("check", str(hostile), config=config, colour=colour)
    assert result.returncode == 0, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    _assert_shown_escaped(result.stdout)
    assert CLOSING_TAG.encode() in result.stdout


@pytest.mark.parametrize("colour", [False, True], ids=["pipe", "terminal"])
def test_sweep_prints_names_as_text_with_escapes_written_out(
    hostile: Path, tmp_path: Path, colour: bool
) -> None:
    """`statehub sweep` (table and summary) survives the same repo and escapes it."""
    config = write_config(tmp_path, roots=[hostile.parent])
    result = statehub("sweep", "--all", config=config, colour=colour)
    assert result.returncode == 0, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    _assert_shown_escaped(result.stdout)


def test_json_output_carries_no_raw_control_character(hostile: Path, tmp_path: Path) -> None:
    """`--json` escapes control characters itself and keeps the names exact."""
    config = write_config(tmp_path, roots=[hostile.parent])
    result = statehub("check", str(hostile), "--json", config=config, colour=False)
    assert result.returncode == 0
    assert b"\x1b" not in result.stdout and b"\x07" not in result.stdout
    paths = {finding["path"] for finding in json.loads(result.stdout)["findings"]}
    assert f"{MARKUP}.md" in paths


def test_log_lines_write_control_characters_out() -> None:
    """A log message holding escapes is one line with them written as \\x1b."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter(journal=False))
    logger = logging.getLogger("statehub.test-terminal")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("repo %s: C-00 %s", f"a{TITLE}b", f"{CLEAR}\r{RLO}done")
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue()
    assert line.count("\n") == 1
    assert "\x1b" not in line and "\x07" not in line and "\r" not in line and RLO not in line
    assert "a\\x1b]0;pwned\\x07b" in line
    assert "\\x1b[2J" in line
