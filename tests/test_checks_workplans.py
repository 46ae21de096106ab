"""C-05..C-11: workplan front matter, ids, statuses, file names and the index."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkkit import context, ids, repo_with
from gitfleet import make_repo, workplan
from statehub.checks import Finding, workplans
from statehub.settings import CheckSettings, RepoOverride, RepoSettings, Settings

PLAN = "workplans/DEMO-WP-0001-plan.md"
OTHER = "workplans/DEMO-WP-0002-plan.md"


def _run(root: Path, settings: Settings | None = None) -> list[Finding]:
    """The workplans family's findings for the repo at ``root``."""
    return workplans.run(context(root, settings))


def _index(*names: str) -> str:
    return "# Workplans\n\n" + "".join(f"- [{name}](<{name}>)\n" for name in names)


def test_good_repo_has_no_findings(tmp_path: Path) -> None:
    """The builders' good repo passes C-05..C-11."""
    assert _run(repo_with(tmp_path)) == []


def test_no_folder_and_not_required_means_nothing_applies(tmp_path: Path) -> None:
    """Without workplans/ and with require_workplans = false no workplan check runs."""
    root = make_repo(tmp_path, "r", {"README.md": "# r\n"}, with_origin=False)
    settings = Settings(repos=RepoSettings(require_workplans=False))
    assert _run(root, settings) == []
    assert _run(root) == []  # C-03 (the docs family) covers the missing folder


# -- C-05 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("# A free-form plan\n\nNo front matter at all.\n", "does not open with"),
        ("", "is empty"),
        (" \n\n", "is empty"),
        ("\n---\nid: DEMO-WP-0001\n---\n", "does not open with"),
        ("--- \nid: DEMO-WP-0001\n", "never closed"),
        ("---\nid: DEMO-WP-0001\ntitle: t\nstatus: active\n", "never closed"),
        ("----\nid: DEMO-WP-0001\n----\n", "does not open with"),
        ("---\nid: [DEMO\n---\n", "not valid YAML"),
        ("---\nid: DEMO-WP-0001\n\tbad: tab\n---\n", "not valid YAML"),
        ("---\ndate: 2024-13-45\n---\n", "not valid YAML"),
        ("---\nx: !!python/object/apply:os.system [ls]\n---\n", "not valid YAML"),
        ("---\n" + "[" * 3000 + "\n---\n", "nested too deeply"),
        ("---\na: " + "[" * 65 + "]" * 65 + "\n---\n", "nested too deeply"),
        ("---\n" + "- " * 3000 + "x\n---\n", "nested too deeply"),
        ("---\n- id\n- title\n---\n", "not a mapping (it is list)"),
        ("---\njust a sentence\n---\n", "not a mapping (it is str)"),
        ("---\n42\n---\n", "not a mapping (it is int)"),
        ("---\n---\n# empty front matter\n", "not a mapping (it is nothing)"),
        (b"---\nid: DEMO-WP-0001\ntitle: \xff\xfe\n---\n", "not valid UTF-8"),
        (b"\xff\xfe-\x00-\x00-\x00\n\x00", "does not open with"),
        (b"\xef\xbb\xbf\xef\xbb\xbf---\nid: X\n---\n", "does not open with"),
    ],
)
def test_front_matter_that_does_not_parse(tmp_path: Path, content: str | bytes, words: str) -> None:
    """Every malformed or absent front matter is one C-05 finding, never an exception."""
    findings = _run(repo_with(tmp_path, {PLAN: content}))
    assert ids(findings) == ["C-05"]
    assert findings[0].path == PLAN
    assert findings[0].message.startswith("workplan ")
    assert words in findings[0].message


@pytest.mark.parametrize(
    "content",
    [
        workplan("DEMO-WP-0001"),
        "\ufeff" + workplan("DEMO-WP-0001"),
        workplan("DEMO-WP-0001").replace("\n", "\r\n"),
        "---\nid: DEMO-WP-0001\ntitle: t\nstatus: active\n...\nbody\n",
        "---  \nid: DEMO-WP-0001\ntitle: t\nstatus: active\n---\t\n",
        "---\nid: DEMO-WP-0001\ntitle: t\nstatus: active\n---",
        "---\nid: 'DEMO-WP-0001'\ntitle: \"t\"\nstatus: active\nextra: [1, 2]\n---\n",
        workplan("DEMO-WP-0001").replace("status", "deep: " + "[" * 64 + "]" * 64 + "\nstatus"),
        "---\n{id: DEMO-WP-0001, title: t, status: active}\n---\n",
        b"---\nid: DEMO-WP-0001\ntitle: t\nstatus: active\n---\n\xff\xfe binary body\x00",
        "---\nid: DEMO-WP-0001\ntitle: t\nstatus: active\n---\n" + "body\n" * 50_000,
    ],
)
def test_front_matter_that_parses(tmp_path: Path, content: str | bytes) -> None:
    """BOM, CRLF, a '...' end, trailing blanks, flow style and odd bodies all parse."""
    assert _run(repo_with(tmp_path, {PLAN: content})) == []


def test_front_matter_beyond_the_read_bound_is_unclosed(tmp_path: Path) -> None:
    """Only the first 16 KiB are read: a block that closes later is reported unclosed."""
    padding = "".join(f"k{n}: {'v' * 60}\n" for n in range(workplans.FRONT_MATTER_LIMIT // 60))
    content = f"---\nid: DEMO-WP-0001\ntitle: t\nstatus: active\n{padding}---\n"
    findings = _run(repo_with(tmp_path, {PLAN: content}))
    assert ids(findings) == ["C-05"]
    assert "never closed" in findings[0].message


def test_readme_in_any_case_is_never_a_workplan(tmp_path: Path) -> None:
    """README.md, readme.md and Readme.md in workplans/ are not read as workplans."""
    free_form = "# Index\n\nNo front matter.\n"
    changes: dict[str, str | bytes | None] = {
        "workplans/readme.md": free_form,
        "workplans/Readme.md": free_form,
        "workplans/README.md": _index("DEMO-WP-0001-plan.md", "DEMO-WP-0002-plan.md"),
    }
    assert _run(repo_with(tmp_path, changes)) == []


def test_only_markdown_files_directly_in_the_folder_are_workplans(tmp_path: Path) -> None:
    """Sub-folders, other extensions and folders named *.md are not workplans."""
    changes: dict[str, str | bytes | None] = {
        "workplans/archive/old.md": "free form\n",
        "workplans/notes.txt": "free form\n",
        "workplans/NOTES.MD": "free form\n",
        "workplans/folder.md/inner.txt": "x\n",
    }
    assert _run(repo_with(tmp_path, changes)) == []


def test_workplan_symlink_out_of_the_repo_is_not_read(tmp_path: Path) -> None:
    """A workplan that is a link out of the repo is never read: it gets C-05."""
    outside = tmp_path / "outside.md"
    outside.write_text(workplan("DEMO-WP-0003"), encoding="utf-8")
    root = repo_with(tmp_path)
    (root / "workplans" / "DEMO-WP-0003-plan.md").symlink_to(outside)
    findings = _run(root)
    assert findings[0] == Finding(
        check="C-05",
        message="workplan cannot be read (not a regular file inside the repo)",
        path="workplans/DEMO-WP-0003-plan.md",
    )
    assert ids(findings) == ["C-05", "C-11"]


def test_unparsed_workplan_gets_no_other_front_matter_check(tmp_path: Path) -> None:
    """A free-form workplan with a bad name and no id gets C-05 only (and C-11 if unlinked)."""
    findings = _run(repo_with(tmp_path, {"workplans/notes.md": "# just notes\n"}))
    assert ids(findings) == ["C-05", "C-11"]
    assert {finding.path for finding in findings} == {"workplans/notes.md"}


# -- C-06 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("front", "lacking"),
    [
        ("title: t\nstatus: active", "id"),
        ("id: DEMO-WP-0001\nstatus: active", "title"),
        ("id: DEMO-WP-0001\ntitle: t", "status"),
        ("id: DEMO-WP-0001\ntitle: ''\nstatus: active", "title"),
        ("id: DEMO-WP-0001\ntitle: '   '\nstatus: active", "title"),
        ("id: DEMO-WP-0001\ntitle: t\nstatus:", "status"),
        ("id: DEMO-WP-0001\ntitle: t\nstatus: null", "status"),
        ("id: DEMO-WP-0001\ntitle: t\nstatus: ~", "status"),
        ("other: x", "id, title, status"),
        ("id: [DEMO-WP-0001]\ntitle: t\nstatus: active", "id (a list, not a single value)"),
        ("id: DEMO-WP-0001\ntitle: {a: b}\nstatus: active", "title (a dict, not a single value)"),
        ("ID: DEMO-WP-0001\nTitle: t\nstatus: active", "id, title"),
    ],
)
def test_missing_or_empty_fields(tmp_path: Path, front: str, lacking: str) -> None:
    """Every unusable required field is named in one C-06 finding, and nothing else fires."""
    findings = _run(repo_with(tmp_path, {PLAN: f"---\n{front}\n---\n"}))
    assert findings == [Finding(check="C-06", message=f"front matter lacks {lacking}", path=PLAN)]


@pytest.mark.parametrize(
    "front",
    [
        "id: DEMO-WP-0001\ntitle: 0\nstatus: active",
        "id: DEMO-WP-0001\ntitle: false\nstatus: active",
        "id: DEMO-WP-0001\ntitle: 2024-01-01\nstatus: active",
        "id: DEMO-WP-0001\ntitle: 1.5\nstatus: active",
    ],
)
def test_typed_values_are_present(tmp_path: Path, front: str) -> None:
    """Numbers, booleans and dates are values, not missing ones."""
    assert _run(repo_with(tmp_path, {PLAN: f"---\n{front}\n---\n"})) == []


def test_alias_bomb_is_not_expanded(tmp_path: Path) -> None:
    """A billion-laughs id is judged as a list, never turned into text."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 9)]
    front = "\n".join([*lines, "id: *a8", "title: t", "status: active"])
    findings = _run(repo_with(tmp_path, {PLAN: f"---\n{front}\n---\n"}))
    assert findings == [
        Finding(
            check="C-06", message="front matter lacks id (a list, not a single value)", path=PLAN
        )
    ]


# -- C-07 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wp_id", "file_name"),
    [
        ("demo-wp-0001", "demo-wp-0001-plan.md"),
        ("DEMO-WP-001", "DEMO-WP-001-plan.md"),
        ("DEMO-WP-00001", "DEMO-WP-00001-plan.md"),
        ("'DEMO-WP-0001 '", "DEMO-WP-0001 -plan.md"),
        ("42", "42-plan.md"),
        ("2024-01-01", "2024-01-01-plan.md"),
    ],
)
def test_id_not_matching_the_pattern(tmp_path: Path, wp_id: str, file_name: str) -> None:
    """An id that does not match workplan_id_pattern is C-07, typed ids included."""
    path = f"workplans/{file_name}"
    changes: dict[str, str | bytes | None] = {
        PLAN: None,
        path: f"---\nid: {wp_id}\ntitle: t\nstatus: active\n---\n",
        "workplans/README.md": _index(file_name, "DEMO-WP-0002-plan.md"),
    }
    findings = _run(repo_with(tmp_path, changes))
    assert ids(findings) == ["C-07"]
    assert findings[0].path == path
    assert "does not match the pattern" in findings[0].message


def test_id_pattern_from_override(tmp_path: Path) -> None:
    """A repo's own workplan_id_pattern replaces the fleet's."""
    root = repo_with(tmp_path)
    override = RepoOverride(workplan_id_pattern=r"^OPS-[0-9]+$")
    findings = _run(root, Settings(repos=RepoSettings(overrides={"r": override})))
    assert ids(findings) == ["C-07", "C-07"]
    assert "'^OPS-[0-9]+$'" in findings[0].message


# -- C-08 -------------------------------------------------------------------------------


def test_shared_id_is_one_finding_naming_every_file(tmp_path: Path) -> None:
    """Three workplans with one id give one C-08 that names all three."""
    names = ["DEMO-WP-0001-a.md", "DEMO-WP-0001-b.md", "DEMO-WP-0001-c.md"]
    changes: dict[str, str | bytes | None] = {PLAN: None, OTHER: None}
    changes |= {f"workplans/{name}": workplan("DEMO-WP-0001") for name in names}
    changes["workplans/README.md"] = _index(*names)
    findings = _run(repo_with(tmp_path, changes))
    assert findings == [
        Finding(
            check="C-08",
            message="id 'DEMO-WP-0001' is shared by workplans/DEMO-WP-0001-a.md, "
            "workplans/DEMO-WP-0001-b.md, workplans/DEMO-WP-0001-c.md",
            path="workplans/DEMO-WP-0001-a.md",
        )
    ]


def test_two_shared_ids_give_two_findings(tmp_path: Path) -> None:
    """Each duplicated id is reported once."""
    names = ["DEMO-WP-0001-a.md", "DEMO-WP-0001-b.md", "DEMO-WP-0002-a.md", "DEMO-WP-0002-b.md"]
    changes: dict[str, str | bytes | None] = {PLAN: None, OTHER: None}
    changes |= {f"workplans/{name}": workplan(name[:12]) for name in names}
    changes["workplans/README.md"] = _index(*names)
    findings = _run(repo_with(tmp_path, changes))
    assert ids(findings) == ["C-08", "C-08"]
    assert "'DEMO-WP-0001'" in findings[0].message
    assert "'DEMO-WP-0002'" in findings[1].message


def test_unparsed_and_idless_workplans_do_not_shareids(tmp_path: Path) -> None:
    """Workplans without a usable id are not duplicates of each other."""
    changes: dict[str, str | bytes | None] = {
        PLAN: "---\ntitle: t\nstatus: active\n---\n",
        OTHER: "---\ntitle: t\nstatus: active\n---\n",
    }
    assert ids(_run(repo_with(tmp_path, changes))) == ["C-06", "C-06"]


# -- C-09 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "shown"), [("done", "done"), ("Active", "Active"), ("yes", "true"), ("3", "3")]
)
def test_status_not_allowed(tmp_path: Path, status: str, shown: str) -> None:
    """A status outside workplan_statuses is C-09, with the contract's wording."""
    findings = _run(repo_with(tmp_path, {PLAN: workplan("DEMO-WP-0001", status=status)}))
    assert findings == [
        Finding(check="C-09", message=f"status {shown!r} is not allowed", path=PLAN)
    ]


def test_statuses_from_settings(tmp_path: Path) -> None:
    """Fleet-wide workplan_statuses decide which statuses are allowed."""
    root = repo_with(tmp_path, {PLAN: workplan("DEMO-WP-0001", status="done")})
    settings = Settings(checks=CheckSettings(workplan_statuses=["done", "active"]))
    assert _run(root, settings) == []


# -- C-10 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "fits"),
    [
        ("DEMO-WP-0001-plan.md", True),
        ("DEMO-WP-0001.md", True),
        ("DEMO-WP-0001_plan.md", True),
        ("DEMO-WP-0001 plan.md", True),
        ("plan.md", False),
        ("demo-wp-0001-plan.md", False),
        ("DEMO-WP-00012-plan.md", False),
        ("DEMO-WP-0001x.md", False),
        ("x-DEMO-WP-0001.md", False),
    ],
)
def test_file_name_starts_with_id(tmp_path: Path, file_name: str, fits: bool) -> None:
    """The file name must start with the id, followed by a non-alphanumeric character."""
    changes: dict[str, str | bytes | None] = {
        PLAN: None,
        f"workplans/{file_name}": workplan("DEMO-WP-0001"),
        "workplans/README.md": _index(file_name, "DEMO-WP-0002-plan.md"),
    }
    findings = _run(repo_with(tmp_path, changes))
    expected = (
        []
        if fits
        else [
            Finding(
                check="C-10",
                message=f"file name {file_name!r} does not start with its id 'DEMO-WP-0001'",
                path=f"workplans/{file_name}",
            )
        ]
    )
    assert findings == expected


# -- C-11 -------------------------------------------------------------------------------


UNNAMED = "not named in workplans/README.md (no link to it, nor its file name or id)"


def test_unlinked_workplans_are_one_finding_each(tmp_path: Path) -> None:
    """Each workplan the index does not link is one C-11 on that workplan."""
    findings = _run(repo_with(tmp_path, {"workplans/README.md": "# Workplans\n\nNothing yet.\n"}))
    assert findings == [
        Finding(check="C-11", message=UNNAMED, path=PLAN),
        Finding(check="C-11", message=UNNAMED, path=OTHER),
    ]


@pytest.mark.parametrize(
    "link",
    [
        "[a](DEMO-WP-0001-plan.md)",
        "[a](./DEMO-WP-0001-plan.md)",
        "[a](DEMO-WP-0001-plan.md#status)",
        '[a](DEMO-WP-0001-plan.md "the plan")',
        "[a](<DEMO-WP-0001-plan.md>)",
        "[a](DEMO%2DWP%2D0001-plan.md)",
        "[a](../workplans/DEMO-WP-0001-plan.md)",
        "[a](/workplans/DEMO-WP-0001-plan.md)",
        "[a][one]\n\n[one]: DEMO-WP-0001-plan.md",
        "[one]: <DEMO-WP-0001-plan.md> 'title'",
        "- item\n  - [a](DEMO-WP-0001-plan.md)",
        "| id | plan |\n| --- | --- |\n| 1 | [a](DEMO-WP-0001-plan.md) |",
    ],
)
def test_index_link_forms(tmp_path: Path, link: str) -> None:
    """Inline, angle, encoded, root-relative and reference-style links all count."""
    index = f"# Workplans\n\n{link}\n\n[b](DEMO-WP-0002-plan.md)\n"
    assert _run(repo_with(tmp_path, {"workplans/README.md": index})) == []


@pytest.mark.parametrize(
    "mention",
    [
        "`[a](DEMO-WP-0001-plan.md)`",
        "```\n[a](DEMO-WP-0001-plan.md)\n```",
        "<!-- [a](DEMO-WP-0001-plan.md) -->",
        "DEMO-WP-0001-plan.md",
        "| `DEMO-WP-0001-plan.md` | active |",
        "| `DEMO-WP-0001-plan` | active |",
        "| DEMO-WP-0001 | the first plan |",
        "See plan DEMO-WP-0001.",
    ],
)
def test_index_names_count_as_indexed(tmp_path: Path, mention: str) -> None:
    """A plan the index names by file name (with or without .md) or id is indexed (issue 21)."""
    index = f"# Workplans\n\n{mention}\n\n[b](DEMO-WP-0002-plan.md)\n"
    assert _run(repo_with(tmp_path, {"workplans/README.md": index})) == []


@pytest.mark.parametrize(
    "mention",
    [
        "[a](demo-wp-0001-plan.md)",
        "DEMO-WP-00012 and DEMO-WP-0001x",
        "XDEMO-WP-0001-plan.md",
        "DEMO-WP-0001-plan-v2.md",
    ],
)
def test_index_mentions_that_name_another_plan(tmp_path: Path, mention: str) -> None:
    """A name inside a longer name, another case or another id does not index a plan."""
    index = f"# Workplans\n\n{mention}\n\n[b](DEMO-WP-0002-plan.md)\n"
    findings = _run(repo_with(tmp_path, {"workplans/README.md": index}))
    assert findings == [Finding(check="C-11", message=UNNAMED, path=PLAN)]


def test_no_index_no_c11(tmp_path: Path) -> None:
    """Without an index C-11 does not apply (C-03 covers it)."""
    assert _run(repo_with(tmp_path, {"workplans/README.md": None})) == []


def test_lower_case_index_is_read(tmp_path: Path) -> None:
    """An index spelled readme.md is the one C-11 reads and names."""
    changes: dict[str, str | bytes | None] = {
        "workplans/README.md": None,
        "workplans/readme.md": _index("DEMO-WP-0001-plan.md"),
    }
    assert _run(repo_with(tmp_path, changes)) == [
        Finding(
            check="C-11",
            message="not named in workplans/readme.md (no link to it, nor its file name or id)",
            path=OTHER,
        )
    ]


# -- one defect, one finding; disabling ------------------------------------------------


def test_all_checks_at_once(tmp_path: Path) -> None:
    """A repo with one defect of each kind gets exactly one finding per defect."""
    changes: dict[str, str | bytes | None] = {
        PLAN: workplan("DEMO-WP-0001", status="done"),
        OTHER: workplan("DEMO-WP-0001"),
        "workplans/bad-id.md": workplan("nope"),
        "workplans/free.md": "# free form\n",
        "workplans/no-title.md": "---\nid: DEMO-WP-0009\nstatus: active\n---\n",
        "workplans/README.md": _index(
            "DEMO-WP-0001-plan.md", "DEMO-WP-0002-plan.md", "bad-id.md", "no-title.md"
        ),
    }
    findings = _run(repo_with(tmp_path, changes))
    assert sorted((f.check, f.path) for f in findings) == [
        ("C-05", "workplans/free.md"),
        ("C-06", "workplans/no-title.md"),
        ("C-07", "workplans/bad-id.md"),
        ("C-08", PLAN),
        ("C-09", PLAN),
        ("C-10", OTHER),
        ("C-10", "workplans/bad-id.md"),
        ("C-10", "workplans/no-title.md"),
        ("C-11", "workplans/free.md"),
    ]


@pytest.mark.parametrize(
    ("disabled", "left"),
    [
        ([], ["C-05", "C-09", "C-11"]),
        (["C-05"], ["C-09", "C-11"]),
        (["C-09", "C-11"], ["C-05"]),
        (["C-05", "C-06", "C-07", "C-08", "C-09", "C-10"], ["C-11"]),
        (["C-05", "C-06", "C-07", "C-08", "C-09", "C-10", "C-11"], []),
    ],
)
def test_disabled_checks_are_not_reported(
    tmp_path: Path, disabled: list[str], left: list[str]
) -> None:
    """checks.disable switches checks off one by one; C-11 works without parsing."""
    changes: dict[str, str | bytes | None] = {
        PLAN: workplan("DEMO-WP-0001", status="done"),
        "workplans/free.md": "# free form\n",
    }
    root = repo_with(tmp_path, changes)
    findings = _run(root, Settings(checks=CheckSettings(disable=disabled)))
    assert sorted(ids(findings)) == left


def test_per_repo_override_disables_for_that_repo_only(tmp_path: Path) -> None:
    """A repo override's disable list applies to its repo alone."""
    root = repo_with(tmp_path, {PLAN: workplan("DEMO-WP-0001", status="done")})
    mine = Settings(repos=RepoSettings(overrides={"r": RepoOverride(disable=["C-09"])}))
    other = Settings(repos=RepoSettings(overrides={"s": RepoOverride(disable=["C-09"])}))
    assert _run(root, mine) == []
    assert ids(_run(root, other)) == ["C-09"]
