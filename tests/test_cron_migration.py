"""The runnable shell blocks of docs/cron-migration.md, run against a throwaway config.

A block is runnable when the line right before its ```sh fence is ``<!-- runnable -->``.
Each one runs with ``bash -euo pipefail -c`` in document order, with ``STATEHUB_CONFIG``
naming a config over a one-repo fleet and a fresh database, and must exit 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitfleet import make_repo, write_config

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "cron-migration.md"
RUNNABLE_MARK = "<!-- runnable -->"
BLOCK_TIMEOUT_SECONDS = 120


def runnable_blocks(text: str) -> list[str]:
    """The bodies of the ```sh blocks whose fence line follows the runnable mark."""
    lines = text.splitlines()
    blocks: list[str] = []
    for number, line in enumerate(lines):
        if line.strip() != RUNNABLE_MARK or number + 1 >= len(lines):
            continue
        if lines[number + 1].strip() != "```sh":
            continue
        body: list[str] = []
        for inner in lines[number + 2 :]:
            if inner.strip() == "```":
                break
            body.append(inner)
        else:
            raise AssertionError(f"unclosed runnable block after line {number + 1}")
        blocks.append("\n".join(body) + "\n")
    return blocks


BLOCKS = runnable_blocks(GUIDE.read_text(encoding="utf-8"))


def block_ids(blocks: list[str]) -> list[str]:
    """``<n>:<first line>``: a readable and unique test id for each block."""
    return [f"{n}:{block.strip().splitlines()[0][:60]}" for n, block in enumerate(blocks, 1)]


@pytest.fixture(scope="module")
def guide_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One config for all blocks, so they share a database as the procedure's steps do."""
    folder = tmp_path_factory.mktemp("cron-migration")
    fleet = folder / "fleet"
    fleet.mkdir()
    make_repo(fleet, "demo")
    return write_config(folder, roots=[fleet], schedule='mode = "active"')


def test_guide_has_the_procedure_blocks() -> None:
    """The guide marks at least four runnable blocks, covering show, a tagged sweep, compare."""
    assert len(BLOCKS) >= 4
    joined = "\n".join(BLOCKS)
    assert "statehub schedule show" in joined
    assert "statehub sweep --all --source local-timer" in joined
    assert "statehub compare --since-hours 24" in joined
    assert "retired_sources_seen" in joined


def test_runnable_blocks_use_only_allowed_commands() -> None:
    """Every command line of a runnable block starts with statehub, sqlite3, grep, test or echo."""
    allowed = ("statehub", "sqlite3", "grep", "test", "echo")
    for block in BLOCKS:
        for line in block.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            for command in line.replace("&&", "|").replace("||", "|").split("|"):
                assert command.split()[0] in allowed, line


@pytest.mark.parametrize("block", BLOCKS, ids=block_ids(BLOCKS))
def test_runnable_block_succeeds(block: str, guide_config: Path) -> None:
    """The block exits 0 under bash -euo pipefail with STATEHUB_CONFIG set."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("STATEHUB_", "GIT_"))
    }
    env.update(
        STATEHUB_CONFIG=str(guide_config),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
    )
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=guide_config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, (
        f"exit {result.returncode}\n--- block\n{block}--- stdout\n{result.stdout[-3000:]}"
        f"--- stderr\n{result.stderr[-3000:]}"
    )
