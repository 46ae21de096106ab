"""Precision and recall on a generated fleet with planted defects (issue 21).

Each repo plants what real projects hold: keys in every common format, encrypted, in odd
places; header strings that are not keys (a detector's marker list, a regex, a parser's
test strings, documentation); README variants; dependency lock files; workplans indexed in
a table. One sweep must find exactly the planted findings: no false one, none missed.
"""

from __future__ import annotations

from pathlib import Path

from gitfleet import good_files, make_repo, write_config
from keykit import PUTTY, as_json_string, as_python_literal, begin, encrypted_pem, pem, putty
from statehub.settings import load_settings
from statehub.sweep import run_sweep

Planted = set[tuple[str, str, str | None]]

LIMIT_KB = 4
BIG = "x" * (LIMIT_KB * 1024 + 1)


def _keys_repo(fleet: Path) -> Planted:
    """A repo with a key in every common format, each in another odd place."""
    files: dict[str, str | bytes] = {
        "tests/certs/rsa.pem": pem("RSA PRIVATE KEY", seed=1),
        "tests/certs/ec.key": pem("EC PRIVATE KEY", seed=2),
        "deploy/id_dsa": pem("DSA PRIVATE KEY", seed=3),
        "deploy/id_ed25519": pem("OPENSSH PRIVATE KEY", seed=4),
        "config/service.json": as_json_string(pem("PRIVATE KEY", seed=5)),
        "config/vault.p8": pem("ENCRYPTED PRIVATE KEY", seed=6),
        "config/legacy.pem": encrypted_pem(seed=7),
        "release/signing.asc": pem("PGP PRIVATE KEY BLOCK", seed=8),
        "tools/putty.ppk": putty(seed=9),
        "src/app/settings.py": "import os\n\n" + as_python_literal(pem(seed=10), "TEST_KEY"),
        "helm/values.yaml": "tls:\n  key: |\n"
        + "".join(f"    {line}\n" for line in pem(seed=11).splitlines()),
        "assets/blob.bin": b"\x00\x01\x02\n" + pem("EC PRIVATE KEY", seed=12).encode() + b"\x00",
    }
    make_repo(fleet, "keys", {**good_files("keys"), **files})
    return {("keys", "C-23", path) for path in files}


def _not_keys_repo(fleet: Path) -> None:
    """A repo full of key headers that hold no key: no finding at all."""
    rsa = begin("RSA PRIVATE KEY")
    files: dict[str, str | bytes] = {
        "detector/markers.py": "BLOCKLIST = (\n"
        + "".join(
            f"    b'{begin(kind)}',\n"
            for kind in ("RSA PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY")
        )
        + f"    b'{PUTTY}2',\n)\n",
        "detector/patterns.json": '{"pgp": "^(?:' + begin("PGP PRIVATE KEY BLOCK") + ')"}\n',
        "tests/test_parser.py": f'def test_header():\n    assert parse("{rsa}\\n") is None\n',
        "docs/keys.md": f"A key looks like:\n\n```\n{rsa}\nMIIE...\n"
        + "-----END RSA PRIVATE KEY-----\n```\n",
        "src/pem.py": f"if line.strip() == '{rsa}':\n    in_key = True\n",
        "tests/putty_header.txt": f"{PUTTY}3: ssh-ed25519\nEncryption: none\n",
    }
    make_repo(fleet, "headers", {**good_files("headers"), **files})


def _readme_repos(fleet: Path) -> Planted:
    """A repo per README name (all pass C-01, ``Readme.md`` as npm packages name it), one
    with none, one with an empty README."""
    planted: Planted = set()
    for number, name in enumerate(
        ("README.rst", "README.txt", "README", "README.markdown", "README.adoc", "Readme.md")
    ):
        files = {k: v for k, v in good_files(f"doc{number}").items() if k != "README.md"}
        make_repo(fleet, f"doc{number}", {**files, name: "Title\n=====\n\nText.\n"})
    files = {k: v for k, v in good_files("noreadme").items() if k != "README.md"}
    make_repo(fleet, "noreadme", files)
    planted.add(("noreadme", "C-01", "README.md"))
    make_repo(fleet, "emptyreadme", {**good_files("emptyreadme"), "README.md": "\n"})
    planted.add(("emptyreadme", "C-01", "README.md"))
    # C-04 reads a Markdown README only: a broken link in .markdown is found, in .rst not.
    files = {k: v for k, v in good_files("mdlinks").items() if k != "README.md"}
    make_repo(fleet, "mdlinks", {**files, "README.markdown": "[guide](docs/gone.md)\n"})
    planted.add(("mdlinks", "C-04", "README.markdown"))
    files = {k: v for k, v in good_files("rstlinks").items() if k != "README.md"}
    make_repo(fleet, "rstlinks", {**files, "README.rst": "`guide <docs/gone.rst>`_\n"})
    return planted


def _lockfile_repo(fleet: Path) -> Planted:
    """Big lock files of every ecosystem (exempt) beside one big data file (a finding)."""
    locks = (
        "package-lock.json",
        "web/pnpm-lock.yaml",
        "web/yarn.lock",
        "poetry.lock",
        "uv.lock",
        "Pipfile.lock",
        "rust/Cargo.lock",
        "go.sum",
        "Gemfile.lock",
        "composer.lock",
    )
    files: dict[str, str | bytes] = dict.fromkeys(locks, BIG)
    files["data/dump.json"] = BIG
    make_repo(fleet, "locks", {**good_files("locks"), **files})
    return {("locks", "C-22", "data/dump.json")}


def _index_repo(fleet: Path) -> Planted:
    """An index listing plans in a table by file name, by stem, by id; one plan unnamed."""
    files = good_files("plans", plans=5)
    files["workplans/README.md"] = (
        "# Workplans\n\n| plan | status |\n| --- | --- |\n"
        "| `DEMO-WP-0001-plan.md` | active |\n"
        "| `DEMO-WP-0002-plan` | active |\n"
        "| DEMO-WP-0003 | active |\n"
        "| [four](DEMO-WP-0004-plan.md) | active |\n"
        "| DEMO-WP-00050 | (another id) |\n"
    )
    make_repo(fleet, "plans", files)
    return {("plans", "C-11", "workplans/DEMO-WP-0005-plan.md")}


def test_every_planted_defect_is_found_and_nothing_else(tmp_path: Path, fleet: Path) -> None:
    """One sweep of the fleet: precision 1 and recall 1 over the planted findings."""
    planted: Planted = set()
    planted |= _keys_repo(fleet)
    _not_keys_repo(fleet)
    planted |= _readme_repos(fleet)
    planted |= _lockfile_repo(fleet)
    planted |= _index_repo(fleet)
    make_repo(fleet, "clean")
    config = write_config(tmp_path, roots=[fleet], checks=f"max_file_kb = {LIMIT_KB}")

    detail = run_sweep(load_settings(config)).detail

    found = {
        (entry["repo"], finding["check"], finding["path"])
        for entry in detail["repos_processed"]
        for finding in entry["findings"]
    }
    true_positives = found & planted
    assert detail["automation_errors"] == []
    assert sorted(found - planted) == []  # precision: no finding that was not planted
    assert sorted(planted - found) == []  # recall: every planted finding is found
    assert len(true_positives) == len(planted) == 17
    lines = {
        finding["path"]: finding["line"]
        for entry in detail["repos_processed"]
        for finding in entry["findings"]
        if finding["check"] == "C-23"
    }
    assert lines["src/app/settings.py"] == 4
    assert lines["helm/values.yaml"] == 3
    assert lines["assets/blob.bin"] == 2
