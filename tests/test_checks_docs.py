"""C-01..C-04: README.md, AGENTS.md, the workplans folder and relative links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from checkkit import context, ids, repo_with
from gitfleet import good_files, make_repo
from statehub.checks import Finding, docs
from statehub.settings import CheckSettings, RepoOverride, RepoSettings, Settings


def _run(root: Path, settings: Settings | None = None) -> list[Finding]:
    """The docs family's findings for the repo at ``root``."""
    return docs.run(context(root, settings))


def _readme_links(tmp_path: Path, body: str, extra: dict[str, str] | None = None) -> list[Finding]:
    """C-04 findings of a good repo whose README.md is ``body``."""
    files: dict[str, str | bytes | None] = {"README.md": body, **(extra or {})}
    return [f for f in _run(repo_with(tmp_path, files)) if f.check == "C-04"]


def test_good_repo_has_no_findings(tmp_path: Path) -> None:
    """The builders' good repo passes C-01..C-04."""
    assert _run(repo_with(tmp_path)) == []


# -- C-01 / C-02 ------------------------------------------------------------------------


@pytest.mark.parametrize(("check", "name"), [("C-01", "README.md"), ("C-02", "AGENTS.md")])
@pytest.mark.parametrize(
    ("content", "word"),
    [("", "empty"), ("  \n\t\n", "empty"), (b"\xef\xbb\xbf\n", "empty")],
)
def test_root_doc_empty(
    tmp_path: Path, check: str, name: str, content: str | bytes | None, word: str
) -> None:
    """An empty file, whitespace only or a bare BOM is one finding."""
    findings = _run(repo_with(tmp_path, {name: content}))
    assert findings == [Finding(check=check, message=f"{name} is {word}", path=name)]


def test_root_docs_missing(tmp_path: Path) -> None:
    """No README of any accepted name is one C-01 naming them; no AGENTS.md is one C-02."""
    findings = _run(repo_with(tmp_path, {"README.md": None, "AGENTS.md": None}))
    names = "README.md, README.rst, README.txt, README, README.markdown, README.adoc"
    assert findings == [
        Finding(check="C-01", message=f"no README at the root (one of {names})", path="README.md"),
        Finding(check="C-02", message="AGENTS.md is missing", path="AGENTS.md"),
    ]


@pytest.mark.parametrize(
    "name", ["README.rst", "README.txt", "README", "README.markdown", "README.adoc"]
)
def test_readme_names_by_default(tmp_path: Path, name: str) -> None:
    """Any README name projects use passes C-01 by default (issue 21)."""
    assert _run(repo_with(tmp_path, {"README.md": None, name: "Title\n=====\n"})) == []


def test_links_of_a_restructuredtext_readme_are_not_read(tmp_path: Path) -> None:
    """C-04 reads Markdown READMEs only: a README.rst's links are not judged; .markdown's are."""
    rst = {"README.md": None, "README.rst": "See `guide <gone.rst>`_ and [a](gone.md).\n"}
    assert _run(repo_with(tmp_path / "rst", rst)) == []
    markdown = {"README.md": None, "README.markdown": "[a](gone.md)\n"}
    assert [(f.check, f.path, f.line) for f in _run(repo_with(tmp_path / "md", markdown))] == [
        ("C-04", "README.markdown", 1)
    ]


@pytest.mark.parametrize("name", ["README.md", "AGENTS.md"])
def test_root_doc_with_a_single_character_passes(tmp_path: Path, name: str) -> None:
    """Any non-blank content is enough."""
    assert _run(repo_with(tmp_path, {name: "x"})) == []


@pytest.mark.parametrize("name", ["readme.md", "Readme.md", "readme", "ReadMe.rst"])
def test_readme_in_another_case_counts(tmp_path: Path, name: str) -> None:
    """A Readme.md or readme.md is a README, as npm and GitHub read it (issue 21)."""
    assert _run(repo_with(tmp_path, {"README.md": None, name: "# r\n"})) == []


def test_readme_in_another_case_is_read_for_links(tmp_path: Path) -> None:
    """The links of a Readme.md are C-04's to read like README.md's."""
    findings = _run(repo_with(tmp_path, {"README.md": None, "Readme.md": "[a](gone.md)\n"}))
    assert [(f.check, f.path) for f in findings] == [("C-04", "Readme.md")]


def test_agents_in_another_case_is_missing_but_named(tmp_path: Path) -> None:
    """An agents.md is not AGENTS.md; the message names what was found."""
    findings = _run(repo_with(tmp_path, {"AGENTS.md": None, "agents.md": "# a\n"}))
    assert ids(findings) == ["C-02"]
    assert "AGENTS.md is missing" in findings[0].message
    assert "'agents.md'" in findings[0].message


def test_readme_that_is_a_folder_is_not_a_file(tmp_path: Path) -> None:
    """A folder named README.md is a C-01 finding, not an error."""
    root = repo_with(tmp_path, {"README.md": None, "README.md/x.txt": "x"})
    findings = _run(root)
    assert findings == [
        Finding(check="C-01", message="README.md is not a readable file", path="README.md")
    ]


def test_agents_symlink_inside_repo_is_followed(tmp_path: Path) -> None:
    """AGENTS.md as a link to CONTRIBUTING.md in the repo counts as present."""
    root = repo_with(tmp_path, {"AGENTS.md": None, "CONTRIBUTING.md": "# Agents\n"})
    (root / "AGENTS.md").symlink_to("CONTRIBUTING.md")
    assert _run(root) == []


def test_agents_symlink_leaving_repo_is_not_read(tmp_path: Path) -> None:
    """A link to a file outside the repo is never read: it is not a file of the repo."""
    outside = tmp_path / "outside.md"
    outside.write_text("# secret\n", encoding="utf-8")
    root = repo_with(tmp_path, {"AGENTS.md": None})
    (root / "AGENTS.md").symlink_to(outside)
    assert ids(_run(root)) == ["C-02"]


# -- C-03 -------------------------------------------------------------------------------


def test_missing_workplans_folder_when_required(tmp_path: Path) -> None:
    """require_workplans = true and no workplans/: one C-03 finding."""
    files = {"README.md": "# r\n", "AGENTS.md": "# a\n"}
    root = make_repo(tmp_path, "r", dict(files), with_origin=False)
    assert _run(root) == [
        Finding(check="C-03", message="workplans/ folder is missing", path="workplans")
    ]


def test_missing_workplans_folder_not_required(tmp_path: Path) -> None:
    """require_workplans = false and no workplans/: the check does not apply."""
    root = make_repo(tmp_path, "r", {"README.md": "# r\n", "AGENTS.md": "# a\n"}, with_origin=False)
    settings = Settings(repos=RepoSettings(require_workplans=False))
    assert _run(root, settings) == []


def test_existing_folder_without_index_when_not_required(tmp_path: Path) -> None:
    """A workplans/ folder makes C-03 apply even when workplans are not required."""
    root = repo_with(tmp_path, {"workplans/README.md": None})
    settings = Settings(repos=RepoSettings(require_workplans=False))
    assert _run(root, settings) == [
        Finding(
            check="C-03", message="workplans/ has no index README.md", path="workplans/README.md"
        )
    ]


def test_empty_workplans_folder_has_no_index(tmp_path: Path) -> None:
    """An empty workplans/ folder (not tracked, but there) lacks its index."""
    root = make_repo(tmp_path, "r", {"README.md": "# r\n", "AGENTS.md": "# a\n"}, with_origin=False)
    (root / "workplans").mkdir()
    assert ids(_run(root)) == ["C-03"]
    assert "no index" in _run(root)[0].message


@pytest.mark.parametrize("index", ["README.md", "readme.md", "Readme.md", "README.MD"])
def test_index_in_any_case(tmp_path: Path, index: str) -> None:
    """The index is README.md in any letter case."""
    files: dict[str, str | bytes | None] = {
        "README.md": f"# r\n\n[plans](workplans/{index})\n",
        "workplans/README.md": None,
        f"workplans/{index}": "# Plans\n",
    }
    assert _run(repo_with(tmp_path, files)) == []


def test_workplans_that_is_a_file(tmp_path: Path) -> None:
    """A file named workplans is not a folder: one C-03 finding."""
    root = make_repo(
        tmp_path,
        "r",
        {"README.md": "# r\n", "AGENTS.md": "# a\n", "workplans": "not a folder\n"},
        with_origin=False,
    )
    assert _run(root) == [
        Finding(check="C-03", message="workplans is not a folder", path="workplans")
    ]


# -- C-04 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[a](AGENTS.md)",
        "[a](./AGENTS.md)",
        "[a](AGENTS.md#running-tests)",
        '[a](AGENTS.md "the guide")',
        "[a](AGENTS.md 'the guide')",
        "[a](AGENTS.md (the guide))",
        "[a](<AGENTS.md>)",
        "[a](/AGENTS.md)",
        "[a](AGENTS.md?plain=1)",
        "[a](workplans/)",
        "[a](workplans)",
        "[a](.)",
        "[a](docs/my%20file.md)",
        "[a](<docs/my file.md>)",
        "[a](docs/paren\\(1\\).md)",
        "[a](docs/paren(1).md)",
        "![logo](docs/logo.png)",
        "[a]: AGENTS.md",
        '[a]: <docs/my file.md> "title"',
        "[a](https://example.com/missing.md)",
        "[a](mailto:someone@example.com)",
        "[a](ftp:gone.md)",
        "[a](//example.com/gone.md)",
        "[a](#gone)",
        "[a]()",
        "[^1]: gone.md is a footnote, not a link",
        "<https://example.com/gone.md>",
        "\\[a](gone.md)",
        "`[a](gone.md)`",
        "``[a](`gone.md`)``",
        "```\n[a](gone.md)\n```",
        "~~~markdown\n[a](gone.md)\n~~~",
        "````\n```\n[a](gone.md)\n```\n````",
        "para\n\n    [a](gone.md)",
        "> ```\n> [a](gone.md)\n> ```",
        "<!-- [a](gone.md) -->",
        "<!--\n\n[a](gone.md)\n\n-->",
        "[a] (gone.md)",
    ],
)
def test_links_that_are_fine_or_not_checked(tmp_path: Path, body: str) -> None:
    """Existing targets, external links, anchors and links inside code give no C-04."""
    extra = {
        "docs/my file.md": "x",
        "docs/logo.png": "x",
        "docs/paren(1).md": "x",
    }
    assert _readme_links(tmp_path, f"# r\n\n{body}\n", extra) == []


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ("[a](docs/gone.md)", "docs/gone.md"),
        ("[a](gone.md#part)", "gone.md#part"),
        ('[a](gone.md "title")', "gone.md"),
        ("[a](<gone file.md>)", "gone file.md"),
        ("[a](/gone.md)", "/gone.md"),
        ("[a](gone%20file.md)", "gone%20file.md"),
        ("![logo](img/logo.png)", "img/logo.png"),
        ("[![badge](img/badge.svg)](https://ci.example.com)", "img/badge.svg"),
        ("[a]: docs/gone.md", "docs/gone.md"),
        ('  [Label Two]: <docs/gone.md> "t"', "docs/gone.md"),
        ("See [the long\nlink text](gone.md).", "gone.md"),
        ("- item\n\n  [a](gone.md)", "gone.md"),
        ("- item\n\n    [a](gone.md)", "gone.md"),
        ("> quoted [a](gone.md)", "gone.md"),
        ("`code` then [a](gone.md) then `more`", "gone.md"),
        ("text ``` not a fence [a](gone.md)", "gone.md"),
        ("<!-- x --> [a](gone.md)", "gone.md"),
        ("```\ncode\n```\n[a](gone.md)", "gone.md"),
        ("[a](a%00b.md)", "a%00b.md"),
    ],
)
def test_broken_relative_links(tmp_path: Path, body: str, target: str) -> None:
    """A relative link to nothing is one C-04 finding naming the link."""
    text = f"# r\n\n{body}\n"
    line = next(n for n, row in enumerate(text.splitlines(), 1) if target in row)
    findings = _readme_links(tmp_path, text)
    assert findings == [
        Finding(
            check="C-04",
            message=f"link {target!r} points to no file (line {line})",
            path="README.md",
            line=line,
        )
    ]


@pytest.mark.parametrize("target", ["../x.md", "../../x", "workplans/../../r/AGENTS.md"])
def test_link_leaving_the_repo(tmp_path: Path, target: str) -> None:
    """A link that climbs above the root is a finding, even if the file exists out there."""
    (tmp_path / "x.md").write_text("x", encoding="utf-8")
    findings = _readme_links(tmp_path, f"[a]({target})\n")
    assert findings == [
        Finding(
            check="C-04",
            message=f"link {target!r} points outside the repo (line 1)",
            path="README.md",
            line=1,
        )
    ]


def test_link_through_symlink_leaving_the_repo(tmp_path: Path) -> None:
    """A link through a symlinked folder that leads out of the repo points to no file."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.md").write_text("x", encoding="utf-8")
    root = repo_with(tmp_path, {"README.md": "[a](shared/secret.md)\n"})
    (root / "shared").symlink_to(outside)
    assert ids(_run(root)) == ["C-04"]


def test_same_broken_link_twice_is_one_finding(tmp_path: Path) -> None:
    """One broken target repeated in a file is one defect."""
    body = "[a](gone.md) and [b](./gone.md#x)\n\n[c]: gone.md\n"
    assert _readme_links(tmp_path, body) == [
        Finding(
            check="C-04",
            message="link 'gone.md' points to no file (line 1)",
            path="README.md",
            line=1,
        )
    ]


def test_links_in_agents_and_index_resolve_from_their_folder(tmp_path: Path) -> None:
    """Links in workplans/README.md resolve against workplans/, and AGENTS.md is checked."""
    index = "# Plans\n\n[up](../AGENTS.md) [plan](DEMO-WP-0001-plan.md) [bad](AGENTS.md)\n"
    files: dict[str, str | bytes | None] = {
        "workplans/README.md": index,
        "AGENTS.md": "# Agents\n\n[x](missing/dir/)\n",
    }
    findings = _run(repo_with(tmp_path, files))
    assert findings == [
        Finding(
            check="C-04",
            message="link 'missing/dir/' points to no file (line 3)",
            path="AGENTS.md",
            line=3,
        ),
        Finding(
            check="C-04",
            message="link 'AGENTS.md' points to no file (line 3)",
            path="workplans/README.md",
            line=3,
        ),
    ]


def test_lower_case_index_is_checked_for_links(tmp_path: Path) -> None:
    """The index spelled readme.md is the one whose links C-04 checks."""
    files: dict[str, str | bytes | None] = {
        "README.md": "# r\n",
        "workplans/README.md": None,
        "workplans/readme.md": "[bad](gone.md)\n",
    }
    findings = _run(repo_with(tmp_path, files))
    assert findings == [
        Finding(
            check="C-04",
            message="link 'gone.md' points to no file (line 1)",
            path="workplans/readme.md",
            line=1,
        )
    ]


def test_links_of_other_documents_are_not_checked(tmp_path: Path) -> None:
    """Only README.md, AGENTS.md and the workplans index are read for C-04."""
    files: dict[str, str | bytes | None] = {
        "docs/guide.md": "[a](gone.md)\n",
        "workplans/DEMO-WP-0001-plan.md": "[a](gone.md)\n",
    }
    assert _run(repo_with(tmp_path, files)) == []


def test_binary_and_odd_readme_gives_no_exception(tmp_path: Path) -> None:
    """Bytes that are not UTF-8, CRLF and a BOM are read; links still found."""
    body = b"\xef\xbb\xbf# r\r\n\r\n\xff\xfe [a](gone.md)\r\n"
    findings = _run(repo_with(tmp_path, {"README.md": body}))
    assert ids(findings) == ["C-04"]


def test_pathological_markdown_is_handled(tmp_path: Path) -> None:
    """Unclosed brackets, backticks and comments in bulk neither hang nor raise."""
    body = "[" * 5000 + "`" * 3 + " `` " * 2000 + "<!--" * 3000 + "\n\n[a](gone.md)\n"
    findings = _readme_links(tmp_path, body)
    assert findings == []  # the open comment swallows the rest of the file


# -- disabling --------------------------------------------------------------------------


def test_fleet_wide_disable(tmp_path: Path) -> None:
    """Checks in [checks] disable are not reported."""
    root = make_repo(tmp_path, "r", {"README.md": "[a](gone.md)\n"}, with_origin=False)
    assert sorted(ids(_run(root))) == ["C-02", "C-03", "C-04"]
    settings = Settings(checks=CheckSettings(disable=["C-02", "C-03", "C-04"]))
    assert _run(root, settings) == []


def test_per_repo_disable(tmp_path: Path) -> None:
    """A repo's override disables checks for that repo only."""
    root = make_repo(tmp_path, "r", {}, with_origin=False)
    override = RepoOverride(disable=["C-01", "C-03"])
    settings = Settings(repos=RepoSettings(overrides={"r": override}))
    assert ids(_run(root, settings)) == ["C-02"]
    other = Settings(repos=RepoSettings(overrides={"other": override}))
    assert ids(_run(root, other)) == ["C-01", "C-02", "C-03"]


# -- helpers shared with the workplans family ------------------------------------------


@pytest.mark.parametrize(
    ("target", "base", "expected"),
    [
        ("x.md", "", "x.md"),
        ("x.md", "workplans", "workplans/x.md"),
        ("./a/../x.md#frag", "workplans", "workplans/x.md"),
        ("/x.md", "workplans", "x.md"),
        ("a%2Fb.md", "", "a/b.md"),
        ("../x.md", "", "../x.md"),
        ("https://x", "", None),
        ("HTTP://x", "", None),
        ("#anchor", "", None),
        ("?q=1", "", None),
        ("", "", None),
    ],
)
def test_link_path(target: str, base: str, expected: str | None) -> None:
    """Links resolve relative to their document's folder; external ones to None."""
    assert docs.link_path(target, base) == expected


def test_markdown_links_order_and_titles() -> None:
    """Inline links, images and definitions come out in order, titles dropped."""
    text = '[a](one.md "t") ![i](two.png)\n\n[r]: <three four.md> "t"\n\n    [c](code.md)\n'
    assert docs.markdown_links(text) == ("one.md", "two.png", "three four.md")


def test_read_inside_is_bounded(tmp_path: Path) -> None:
    """read_inside returns at most the bytes asked for, and None outside the repo."""
    root = make_repo(tmp_path, "r", {"big.md": "x" * 10_000}, with_origin=False)
    assert docs.read_inside(root, "big.md", 100) == b"x" * 100
    assert docs.read_inside(root, "../r/big.md", 100) == b"x" * 100
    assert docs.read_inside(root, "../outside", 100) is None
    assert docs.read_inside(root, ".git", 100) is None
    os.mkfifo(root / "fifo.md")
    assert docs.read_inside(root, "fifo.md", 100) is None


def test_link_to_a_missing_required_file_is_left_to_its_check(tmp_path: Path) -> None:
    """README.md linking a missing AGENTS.md and workplans/ gives C-02 and C-03, no C-04."""
    root = make_repo(tmp_path, "r", {"README.md": good_files("r")["README.md"]}, with_origin=False)
    assert ids(_run(root)) == ["C-02", "C-03"]


def test_link_to_a_missing_file_whose_check_is_disabled_is_reported(tmp_path: Path) -> None:
    """With C-02 disabled nothing else reports AGENTS.md missing, so C-04 does."""
    root = make_repo(tmp_path, "r", {"README.md": "[a](AGENTS.md)\n"}, with_origin=False)
    settings = Settings(checks=CheckSettings(disable=["C-02", "C-03"]))
    assert _run(root, settings) == [
        Finding(
            check="C-04",
            message="link 'AGENTS.md' points to no file (line 1)",
            path="README.md",
            line=1,
        )
    ]
