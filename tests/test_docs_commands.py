"""Every statehub command line shown in the operator documents is one the CLI accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from statehub.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [
    "README.md",
    "docs/runbook.md",
    "docs/install.md",
    "docs/cron-migration.md",
    "docs/temporal.md",
    "docs/baseline.md",
    "docs/configuration.md",
    "docs/commands.md",
    "docs/checks.md",
    "docs/daemon.md",
    "docs/http-api.md",
    "docs/status-page.md",
    "docs/alerts.md",
    "docs/performance.md",
    "docs/testing.md",
    "docs/reliability.md",
    "docs/workplans.md",
    "infra/README.md",
    "infra/systemd/archived/README.md",
    "infra/k8s/README.md",
]
# A statehub invocation inside a shell block, up to the end of the line or a shell operator:
# at the start of a command (a line, after sudo, a pipe, &&, ;, --, $( or python's -m) or as
# an installed binary (.../bin/statehub). 'kubectl -n statehub' or '/path/to/statehub' are not.
INVOCATION = re.compile(
    r"(?:^|sudo\s|bin/|&&\s|\|\s|;\s|--\s|\$\(|-m\s)\s*statehub\s+([a-z][^\n;&|)`'\"#>]*)",
    re.M,
)


def shown_commands() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name in DOCUMENTS:
        text = (REPO / name).read_text(encoding="utf-8")
        for block in re.findall(r"^```(?:sh|bash|console)\n(.*?)^```", text, re.M | re.S):
            joined = block.replace("\\\n", " ")
            for match in INVOCATION.finditer(joined):
                found.append((name, match.group(1).strip()))
    return found


COMMANDS = shown_commands()


def test_the_documents_show_commands() -> None:
    """The documents do show statehub commands (the extraction finds them)."""
    assert len(COMMANDS) >= 20
    assert {name for name, _ in COMMANDS} >= {"docs/runbook.md", "docs/install.md"}


@pytest.mark.parametrize(("document", "command"), COMMANDS, ids=[f"{d}: {c}" for d, c in COMMANDS])
def test_documented_command_parses(document: str, command: str) -> None:
    """The command line is accepted by the real parser (no unknown command or option)."""
    arguments = shlex.split(command)
    if arguments[0] == "install-units":  # its options are the installer's own parser's
        from statehub.install import build_parser as installer_parser

        installer_parser().parse_args(arguments[1:])
    else:
        build_parser().parse_args(arguments)
