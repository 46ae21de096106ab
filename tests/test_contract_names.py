"""The modules that read an event's detail for every surface spell its keys through
statehub.contract.Detail (in their SQL too), never as string literals of their own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import statehub
from statehub.contract import Detail

PACKAGE = Path(statehub.__file__).parent
KEYS = frozenset(value for name, value in vars(Detail).items() if name.isupper())


def _spelled_keys(source: str) -> list[str]:
    """The detail keys a module spells itself: a string literal that is one, or a SQL
    JSON path to one (``'$.repos_truncated'``), f-strings' literal parts included."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            found += [text] if text in KEYS else []
            found += [f"$.{key}" for key in sorted(KEYS) if f"$.{key}'" in text]
    return found


@pytest.mark.parametrize(
    "module",
    [
        "store/reports.py",
        "store/events.py",
        "store/compact.py",
        "sweepsummary.py",
        "eventsize.py",
    ],
)
def test_a_reader_of_the_detail_spells_its_keys_through_the_contract(module: str) -> None:
    """No string literal of the module is a detail key: each comes from contract.Detail."""
    assert _spelled_keys((PACKAGE / module).read_text(encoding="utf-8")) == []


def test_the_check_finds_a_key_spelled_as_a_literal() -> None:
    """The check sees a key as a literal and as a JSON path inside SQL."""
    source = (
        'detail.get("repos_truncated")\n'
        "sql = f\"SELECT json_extract(detail, '$.source') FROM {table}\"\n"
    )
    assert _spelled_keys(source) == ["repos_truncated", "$.source"]
