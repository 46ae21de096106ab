"""Findings worth reading (issue 15): path excludes, the allow marker, README names."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkkit import context, ids, repo_with
from gitfleet import fleet_settings, good_files, make_repo, write_config
from keykit import begin, pem
from statehub.checks import Finding, assess
from statehub.errors import ConfigError
from statehub.settings import (
    CheckSettings,
    RepoOverride,
    RepoSettings,
    Settings,
    load_settings,
)
from statehub.sweep import run_sweep

RSA_HEADER = begin("RSA PRIVATE KEY")  # assembled: see keykit
RSA_KEY = pem()
BODY = RSA_KEY.split("\n", 1)[1]  # what follows the header: the key's body and END
BLOCK = "<<<<<<< HEAD\nours\n=======\ntheirs\n>>>>>>> feature\n"
ALLOW = "pragma: allowlist" + " secret"  # spelled in two: this file is swept by test_dogfood


def _findings(root: Path, settings: Settings) -> list[Finding]:
    """Every finding of the repo but C-18 (the test repos have no upstream)."""
    return [f for f in assess(context(root, settings)) if f.check != "C-18"]


def _fixture_repo(tmp_path: Path) -> Path:
    return repo_with(
        tmp_path,
        {
            "tests/fixtures/key.pem": RSA_KEY,
            "tests/fixtures/merge.txt": BLOCK,
            "src/leak.pem": RSA_KEY,
            "docs/big.png": b"\x89PNG" + b"\0" * 3000,
        },
    )


def test_fleet_wide_excludes_accept_findings_by_path(tmp_path: Path) -> None:
    """[checks] exclude_paths drops the matching paths' findings of that check only."""
    root = _fixture_repo(tmp_path)
    plain = Settings(checks=CheckSettings(max_file_kb=1))
    assert sorted((f.check, f.path) for f in _findings(root, plain)) == [
        ("C-21", "tests/fixtures/merge.txt"),
        ("C-22", "docs/big.png"),
        ("C-23", "src/leak.pem"),
        ("C-23", "tests/fixtures/key.pem"),
    ]
    excluding = Settings(
        checks=CheckSettings(
            max_file_kb=1,
            exclude_paths={"C-21": ["tests/fixtures/"], "C-22": ["docs/**"], "C-23": ["tests/"]},
        )
    )
    assert [(f.check, f.path) for f in _findings(root, excluding)] == [("C-23", "src/leak.pem")]


def test_per_repo_excludes_add_to_the_fleets(tmp_path: Path) -> None:
    """A repo's exclude_paths add to the fleet's, and only for that repo."""
    root = _fixture_repo(tmp_path)
    settings = Settings(
        checks=CheckSettings(max_file_kb=1, exclude_paths={"C-23": ["tests/fixtures/*.pem"]}),
        repos=RepoSettings(
            overrides={
                "r": RepoOverride(exclude_paths={"C-23": ["/src/leak.pem"], "C-21": ["*.txt"]}),
                "other": RepoOverride(exclude_paths={"C-22": ["*.png"]}),
            }
        ),
    )
    assert [(f.check, f.path) for f in _findings(root, settings)] == [("C-22", "docs/big.png")]


def test_anchored_pattern_matches_only_at_the_root(tmp_path: Path) -> None:
    """'/name' is anchored as in .gitignore: the same name deeper is still judged."""
    root = repo_with(tmp_path, {"k.pem": RSA_KEY, "sub/k.pem": RSA_KEY})
    settings = Settings(checks=CheckSettings(exclude_paths={"C-23": ["/k.pem"]}))
    assert [(f.check, f.path) for f in _findings(root, settings)] == [("C-23", "sub/k.pem")]


@pytest.mark.parametrize(
    "text",
    [
        f"{RSA_HEADER}  # {ALLOW}\n{BODY}",
        f"# pragma: allowlist nextline secret\n{RSA_KEY}",
    ],
)
def test_allow_marker_accepts_one_key(tmp_path: Path, text: str) -> None:
    """The detect-secrets marker on the key's line (or 'nextline' above it) accepts it."""
    root = repo_with(tmp_path, {"tests/test_keys.py": text})
    assert ids(_findings(root, Settings())) == []


def test_allow_marker_accepts_only_its_own_line(tmp_path: Path) -> None:
    """A second key without the marker in the same file is still C-23."""
    text = f"{RSA_HEADER}  # {ALLOW}\n{BODY}# {ALLOW}\n{RSA_KEY}"
    root = repo_with(tmp_path, {"keys.txt": text})
    line = len(RSA_KEY.splitlines()) + 2
    assert _findings(root, Settings()) == [
        Finding(
            check="C-23",
            message=f"holds a private key (RSA PRIVATE KEY) at line {line}",
            path="keys.txt",
            line=line,
        )
    ]


@pytest.mark.parametrize("name", ["README.rst", "README"])
def test_readme_names_choose_the_readmes(tmp_path: Path, name: str) -> None:
    """A README.rst or README satisfies C-01 by default; readme_names can narrow it."""
    files = {k: v for k, v in good_files("r").items() if k != "README.md"}
    root = make_repo(tmp_path, "r", {**files, name: "Title\n=======\n\nText.\n"}, with_origin=False)
    assert "C-01" not in ids(_findings(root, Settings()))
    narrowed = Settings(checks=CheckSettings(readme_names=["README.md"]))
    assert "C-01" in ids(_findings(root, narrowed))


def test_readme_names_missing_and_empty(tmp_path: Path) -> None:
    """No accepted name gives one C-01 naming them; an empty one is reported by its name."""
    files = {k: v for k, v in good_files("r").items() if k != "README.md"}
    root = make_repo(tmp_path, "r", files, with_origin=False)
    accepted = Settings(checks=CheckSettings(readme_names=["README.md", "README.rst"]))
    assert [f for f in _findings(root, accepted) if f.check == "C-01"] == [
        Finding(
            check="C-01",
            message="no README at the root (one of README.md, README.rst)",
            path="README.md",
        )
    ]
    (root / "README.rst").write_text("  \n", encoding="utf-8")
    assert [f.message for f in _findings(root, accepted) if f.check == "C-01"] == [
        "README.rst is empty"
    ]


def test_readme_names_per_repo(tmp_path: Path) -> None:
    """A repo override's readme_names replaces the fleet's for that repo."""
    files = {k: v for k, v in good_files("r").items() if k != "README.md"}
    root = make_repo(tmp_path, "r", {**files, "README.rst": "Hello\n"}, with_origin=False)
    settings = Settings(
        repos=RepoSettings(overrides={"r": RepoOverride(readme_names=["README.rst"])})
    )
    assert "C-01" not in ids(_findings(root, settings))


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('[checks]\nexclude_paths = { "C-99" = ["x"] }\n', "checks.exclude_paths", "C-99"),
        ('[checks]\nexclude_paths = { "C-21" = [""] }\n', "checks.exclude_paths", "empty"),
        ("[checks]\nreadme_names = []\n", "checks.readme_names", "at least one"),
        ('[checks]\nreadme_names = ["docs/README.md"]\n', "checks.readme_names", "file name"),
    ],
)
def test_bad_accept_settings_are_one_line(tmp_path: Path, text: str, key: str, reason: str) -> None:
    """A bad exclude or README name is a ConfigError naming the key and the reason."""
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.key.startswith(key)
    assert reason in caught.value.reason


def test_new_findings_are_marked(tmp_path: Path, fleet: Path) -> None:
    """A finding absent from the repo's previous assessment is new in event, store and API form."""
    root = make_repo(fleet, "alpha")
    settings = fleet_settings(tmp_path, roots=[fleet])

    first = run_sweep(settings)
    (root / "notes.txt").write_text("stray\n", encoding="utf-8")  # C-15 appears
    second = run_sweep(settings)
    third = run_sweep(settings)  # unchanged

    assert first.detail["new_findings"] == 0
    [entry] = second.detail["repos_processed"]
    assert [(f["check"], f["new"]) for f in entry["findings"]] == [("C-15", True)]
    assert second.detail["new_findings"] == 1
    assert third.detail["new_findings"] == 0

    from statehub.store import Store

    with Store.open(settings.database_path) as store:
        [finding] = store.assessments()["alpha"].findings
    assert finding["new"] is True
    assert second.detail["started_at"] <= finding["first_seen"] <= second.detail["finished_at"]


def test_a_repo_seen_first_has_nothing_new(tmp_path: Path, fleet: Path) -> None:
    """The first assessment of a repo marks none of its findings new."""
    root = make_repo(fleet, "alpha")
    (root / "stray.txt").write_text("x\n", encoding="utf-8")
    settings = fleet_settings(tmp_path, roots=[fleet])
    event = run_sweep(settings)
    [entry] = event.detail["repos_processed"]
    assert [(f["check"], f["new"]) for f in entry["findings"]] == [("C-15", False)]


def test_sweep_warns_of_a_missing_or_empty_root(tmp_path: Path, fleet: Path) -> None:
    """Roots that do not exist or hold no repo are named in detail.warnings, every sweep."""
    gone = tmp_path / "nowhere"
    settings = fleet_settings(tmp_path, roots=[gone, fleet])
    for _ in range(2):
        event = run_sweep(settings)
        assert event.detail["warnings"] == [
            f"repos.roots: {gone} does not exist",
            f"repos.roots: {fleet} holds no git repo (none of its folders has .git)",
        ]


def test_a_new_exclude_takes_effect_at_the_next_sweep(tmp_path: Path, fleet: Path) -> None:
    """Adding an exclude changes the repo's fingerprint: the next sweep drops the finding."""
    make_repo(fleet, "alpha", {**good_files("alpha"), "tests/fixtures/key.pem": RSA_KEY})
    config = write_config(tmp_path, roots=[fleet])
    first = run_sweep(load_settings(config))
    [entry] = first.detail["repos_processed"]
    assert [f["check"] for f in entry["findings"]] == ["C-23"]

    config.write_text(
        config.read_text(encoding="utf-8")
        + '[checks]\nexclude_paths = { "C-23" = ["tests/fixtures/"] }\n',
        encoding="utf-8",
    )
    second = run_sweep(load_settings(config))

    assert second.detail["assessment_failures"] == 0
    assert [e["findings"] for e in second.detail["repos_processed"]] in ([], [[]])


def test_mark_new_tells_findings_apart_by_message_and_place() -> None:
    """A second broken link in one file is new; a count in a message changing is not."""
    from statehub.findings import mark_new
    from statehub.store import Assessment

    def finding(check: str, message: str, path: str | None) -> dict[str, object]:
        return {"check": check, "message": message, "path": path}

    earlier = Assessment(
        repo="r",
        path="/r",
        head=None,
        fingerprint=None,
        assessed_at="2026-12-01T00:00:00.000Z",
        findings=[
            {**finding("C-04", "link 'a.md' points to no file", "README.md"), "first_seen": "T0"},
            finding("C-21", "conflict block at line 3", "x.txt"),
        ],
    )
    now = [
        finding("C-04", "link 'a.md' points to no file", "README.md"),
        finding("C-04", "link 'b.md' points to no file", "README.md"),
        finding("C-21", "conflict block at line 3 (2 blocks in all)", "x.txt"),
    ]
    marked = mark_new(now, earlier, "T2")
    assert [(item["new"], item["first_seen"]) for item in marked] == [
        (False, "T0"),
        (True, "T2"),
        (False, "2026-12-01T00:00:00.000Z"),
    ]
    assert [item["new"] for item in mark_new(now, None, "T2")] == [False, False, False]
