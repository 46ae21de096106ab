"""The git family C-12..C-20 and C-00, on real repos: real commits, origins, merges, fetches."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gitfleet import HangingServer, commit_all, fleet_settings, git, make_repo, write, write_config
from statehub.assess import assess_target
from statehub.checks import EffectiveChecks, Finding, RepoContext
from statehub.checks import git as git_checks
from statehub.gitlayout import index_paths
from statehub.gitstate import read_state
from statehub.outcome import RepoOutcome, Target
from statehub.settings import Settings
from statehub.sweep import run_sweep

CHECKS = Settings().checks_for("demo")
FILES: dict[str, str | bytes] = {
    "README.md": "# demo\n",
    "f.txt": "base\n",
    "src/app.py": "print('hi')\n",
}
GIT_IDS = {f"C-{n:02d}" for n in (0, *range(12, 21))}
CHILD_TIMEOUT = 60  # seconds: a read that hangs fails the test instead of blocking it


# -- helpers ---------------------------------------------------------------------------


def demo(fleet: Path, name: str = "demo", **options: Any) -> Path:
    """A work tree on main with three files, in sync with its bare origin."""
    return make_repo(fleet, name, dict(FILES), **options)


def findings(
    root: Path, *, default_branch: str = "main", checks: EffectiveChecks = CHECKS
) -> list[Finding]:
    """C-13..C-20 of the repo at ``root``, read as a sweep reads it."""
    checks = dataclasses.replace(checks, default_branch=default_branch)
    state = read_state(root, default_branch=default_branch, settings_digest=checks.digest())
    return git_checks.run(RepoContext(name=root.name, root=root, settings=checks, git=state))


def ids(found: list[Finding]) -> list[str]:
    return sorted(finding.check for finding in found)


def message(found: list[Finding], check: str) -> str:
    (only,) = [finding.message for finding in found if finding.check == check]
    return only


def assess(root: Path, *, remote: bool = False, fetch_timeout: float = 30) -> RepoOutcome:
    target = Target(name=root.name, path=root)
    return assess_target(target, CHECKS, remote=remote, fetch_timeout=fetch_timeout)


def git_findings(outcome: RepoOutcome) -> list[Finding]:
    """The C-00 and C-12..C-20 findings of an assessment (docs and content left out)."""
    return [finding for finding in outcome.findings if finding.check in GIT_IDS]


def push_from_elsewhere(root: Path, files: dict[str, str | bytes]) -> None:
    """Another clone of the repo's origin commits ``files`` and pushes them."""
    origin = root.parent / ".origins" / f"{root.name}.git"
    other = root.parent / ".clones" / root.name
    if not other.exists():
        git(root.parent, "clone", "-q", str(origin), str(other))
    write(other, files)
    commit_all(other, "from elsewhere")
    git(other, "push", "-q", "origin", "HEAD")


def commit(root: Path, files: dict[str, str | bytes], note: str = "change") -> None:
    write(root, files)
    commit_all(root, note)


def sweep_detail(tmp_path: Path, fleet: Path, **sections: str) -> dict[str, Any]:
    settings = fleet_settings(tmp_path, roots=[fleet], **sections)
    return run_sweep(settings).detail


def assess_in_child(root: Path, *, prefix: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """The findings of ``assess_target(root)`` computed in a child process, bounded in time.

    For reads that could hang the process (a named pipe) or need other privileges.
    """
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from statehub.settings import Settings\n"
        "from statehub.assess import assess_target\n"
        "from statehub.outcome import Target\n"
        "path = Path(sys.argv[1])\n"
        "outcome = assess_target(Target(name=path.name, path=path),"
        " Settings().checks_for(path.name), remote=False, fetch_timeout=5)\n"
        "print(json.dumps([f.as_dict() for f in outcome.findings]))\n"
    )
    done = subprocess.run(
        [*prefix, sys.executable, "-c", code, str(root)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=True,
    )
    result: list[dict[str, str]] = json.loads(done.stdout)
    return result


def assert_one_line(text: str) -> None:
    assert text
    assert "\n" not in text
    assert "Traceback" not in text


# -- a clean repo ----------------------------------------------------------------------


def test_a_clean_repo_has_no_git_finding(fleet: Path) -> None:
    """On main, in sync with its origin, nothing changed: no C-13..C-20."""
    assert findings(demo(fleet)) == []


def test_a_clean_repo_has_no_git_finding_in_a_sweep(tmp_path: Path, fleet: Path) -> None:
    """A sweep of a clean work tree reports none of C-00 and C-12..C-20."""
    demo(fleet)
    detail = sweep_detail(tmp_path, fleet)
    (item,) = detail["repos_processed"]
    assert [f for f in item["findings"] if f["check"] in GIT_IDS] == []
    assert detail["exit_code"] == 0


# -- C-12 ------------------------------------------------------------------------------


def _bare(parent: Path) -> Path:
    path = parent / "bare.git"
    git(parent, "init", "-q", "--bare", str(path))
    return path


def _plain(parent: Path) -> Path:
    folder = parent / "plain"
    folder.mkdir()
    (folder / "notes.txt").write_text("notes\n")
    return folder


def _subfolder(parent: Path) -> Path:
    return demo(parent, "outer") / "src"


def _file(parent: Path) -> Path:
    path = parent / "file.txt"
    path.write_text("text\n")
    return path


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (_bare, "a bare repository, not a work tree"),
        (_plain, "not the top of a git work tree"),
        (_subfolder, "not the top of a git work tree"),
        (_file, "not a folder"),
    ],
    ids=["bare", "plain-folder", "subfolder-of-a-work-tree", "file"],
)
def test_c12_a_listed_path_that_is_not_a_work_tree(
    tmp_path: Path, fleet: Path, build: Callable[[Path], Path], reason: str
) -> None:
    """A path of [repos] paths that exists but is not the top of a work tree is C-12 alone."""
    extra = tmp_path / "extra"
    extra.mkdir()
    path = build(extra)
    detail = sweep_detail(tmp_path, fleet, repos=f'paths = ["{path}"]')
    (item,) = detail["repos_processed"]
    assert item["repo"] == path.name
    assert item["findings"] == [{"check": "C-12", "message": reason, "path": None, "new": False}]
    assert detail["skipped_missing"] == []
    assert detail["exit_code"] == 0


def test_c12_not_reported_for_a_listed_work_tree(tmp_path: Path, fleet: Path) -> None:
    """A path of [repos] paths that is the top of a work tree is assessed, without C-12."""
    root = demo(tmp_path / "extra")
    detail = sweep_detail(tmp_path, fleet, repos=f'paths = ["{root}"]')
    (item,) = detail["repos_processed"]
    assert item["repo"] == "demo"
    assert "C-12" not in {f["check"] for f in item["findings"]}


# -- C-13 ------------------------------------------------------------------------------


def test_c13_names_the_file_a_key_comes_from(fleet: Path, tmp_path: Path) -> None:
    """A key in config.worktree, and one in a git dir outside the work tree: each finding
    names its true file, not .git/config."""
    root = demo(fleet)
    git(root, "config", "extensions.worktreeConfig", "true")
    git(root, "config", "--worktree", "core.fsmonitor", "/opt/fsmonitor")
    (finding,) = findings(root)
    assert finding.path == ".git/config.worktree"
    assert finding.message.startswith(".git/config.worktree sets core.fsmonitor")

    moved = demo(fleet, "moved")
    gitdir = tmp_path / "elsewhere.git"
    (moved / ".git").rename(gitdir)
    (moved / ".git").write_text(f"gitdir: {gitdir}\n")
    git(moved, "config", "core.worktree", str(moved))
    git(moved, "config", "core.pager", "less")
    (far,) = findings(moved)
    assert far.path == f"{gitdir}/config"
    assert far.message.startswith(f"{gitdir}/config sets core.pager")


# Each key the catalogue names (section 3), then the other keys git documents as running
# a command.
CATALOGUE = [
    ("core.fsmonitor", "/opt/hooks/fsmonitor"),
    ("core.hooksPath", "/opt/hooks"),
    ("core.sshCommand", "ssh -i /opt/key"),
    ("core.pager", "less -R"),
    ("core.editor", "vim"),
    ("core.askPass", "/opt/askpass"),
    ("credential.helper", "store"),
    ("credential.https://example.com.helper", "cache"),
    ("include.path", "extra.inc"),
    ("includeIf.gitdir:/nowhere/.path", "/nowhere/extra.inc"),
    ("filter.lfs.clean", "git-lfs clean -- %f"),
    ("filter.lfs.smudge", "git-lfs smudge -- %f"),
    ("filter.lfs.process", "git-lfs filter-process"),
    ("diff.pdf.textconv", "pdftotext"),
    ("diff.pdf.command", "/opt/pdfdiff"),
    ("merge.ours.driver", "true"),
    ("remote.origin.uploadpack", "/opt/upload-pack"),
    ("remote.origin.receivepack", "/opt/receive-pack"),
    ("sequence.editor", "vim"),
    ("gpg.program", "/opt/gpg"),
    ("protocol.ext.allow", "always"),
    ("protocol.allow", "always"),
    ("core.gitProxy", "/opt/proxy"),
    ("core.alternateRefsCommand", "/opt/refs"),
    ("remote.origin.vcs", "hg"),
    ("diff.external", "/opt/diff"),
    ("gpg.ssh.program", "/opt/ssh-keygen"),
    ("gpg.ssh.defaultKeyCommand", "/opt/key-command"),
    ("alias.wipe", "!rm -rf ."),
    ("pager.log", "less -S"),
    ("submodule.lib.update", "!/opt/update"),
    ("uploadpack.packObjectsHook", "/opt/hook"),
    ("hook.lint.command", "/opt/lint"),
    ("mergetool.mine.cmd", "/opt/tool"),
    ("difftool.mine.cmd", "/opt/tool"),
    ("imap.tunnel", "ssh -q imap.example /usr/bin/imapd"),
    ("sendemail.toCmd", "/opt/to"),
    ("sendemail.ccCmd", "/opt/cc"),
    ("sendemail.headerCmd", "/opt/header"),
    ("sendemail.work.toCmd", "/opt/to"),
    ("sendemail.smtpServer", "/usr/sbin/sendmail-alike"),
    ("guitool.run.cmd", "/opt/tool"),
    ("instaweb.httpd", "/opt/httpd"),
]


@pytest.mark.parametrize(("key", "value"), CATALOGUE, ids=[key for key, _ in CATALOGUE])
def test_c13_a_command_running_key_in_the_repo_config(fleet: Path, key: str, value: str) -> None:
    """A key of the catalogue set in .git/config is one C-13, naming the key and the first
    word of its value."""
    root = demo(fleet)
    git(root, "config", key, value)
    (finding,) = findings(root)
    assert finding.check == "C-13"
    assert finding.path == ".git/config"
    first, *more = value.split()
    shown = first + (" ..." if more else "")
    expected = f"the repo's config sets {key} = {shown!r}, a key that can make git run a command"
    # git writes a new section's name as given but reads it case-insensitively.
    assert finding.message.lower() == expected.lower()


BENIGN = [
    ("core.autocrlf", "input"),
    ("core.excludesFile", "/nowhere/ignore"),
    ("pager.log", "false"),
    ("alias.st", "status"),
    ("submodule.lib.update", "checkout"),
    ("user.name", "Someone"),
    ("protocol.version", "2"),
    ("diff.pdf.binary", "true"),
    ("filter.lfs.required", "true"),
    ("credential.useHttpPath", "true"),
    ("url.https://example.com/.insteadOf", "ex:"),
    ("sendemail.smtpServer", "smtp.example.com"),
]


@pytest.mark.parametrize(("key", "value"), BENIGN, ids=[key for key, _ in BENIGN])
def test_c13_not_reported_for_a_key_that_runs_nothing(fleet: Path, key: str, value: str) -> None:
    """A config key that names no command is no finding."""
    root = demo(fleet)
    git(root, "config", key, value)
    assert findings(root) == []


def test_c13_reports_an_include_and_every_key_behind_it(fleet: Path) -> None:
    """include.path, includeIf and each key in the files they include are each one C-13;
    a file outside the repo is named, its values are not shown."""
    # Nested includes are followed, and an includeIf whatever its condition (false here).
    root = demo(fleet)
    write(
        root,
        {
            ".git/extra.inc": (
                "[core]\n\tfsmonitor = /opt/fsmonitor\n[include]\n\tpath = more.inc\n"
            ),
            ".git/more.inc": "[gpg]\n\tprogram = /opt/gpg\n",
        },
    )
    outside = fleet.parent / "outside.inc"
    outside.write_text("[core]\n\tpager = /opt/pager\n")
    git(root, "config", "include.path", "extra.inc")
    git(root, "config", "includeIf.gitdir:/nowhere/.path", str(outside))
    tail = "a key that can make git run a command"
    assert [(f.check, f.path, f.message) for f in findings(root)] == [
        ("C-13", ".git/config", f"the repo's config sets include.path = 'extra.inc', {tail}"),
        (
            "C-13",
            ".git/extra.inc",
            f".git/extra.inc, included by the repo's config, sets core.fsmonitor = "
            f"'/opt/fsmonitor', {tail}",
        ),
        (
            "C-13",
            ".git/extra.inc",
            f".git/extra.inc, included by the repo's config, sets include.path = "
            f"'more.inc', {tail}",
        ),
        (
            "C-13",
            ".git/more.inc",
            f".git/more.inc, included by the repo's config, sets gpg.program = '/opt/gpg', {tail}",
        ),
        (
            "C-13",
            ".git/config",
            f"the repo's config sets includeif.gitdir:/nowhere/.path = '{outside}', {tail}",
        ),
        (
            "C-13",
            str(outside),
            f"{outside}, included by the repo's config, sets core.pager, {tail}",
        ),
    ]


SECRET = "ghp_T0kenT0kenT0kenT0kenT0kenT0kenT0ken00"


def test_c13_never_copies_a_value_from_a_file_outside_the_repo(
    fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A helper holding a token in ~/.gitconfig, included by the repo: the key and the file
    are named, nothing of the value."""
    home = tmp_path / "home"
    home.mkdir()
    user_config = home / ".gitconfig"
    user_config.write_text(
        f'[credential]\n\thelper = "!f() {{ echo password={SECRET}; }}; f"\n'
        f"[core]\n\tsshCommand = ssh -i /home/me/.ssh/{SECRET}\n"
        f'[remote "origin"]\n\tuploadpack = {SECRET}\n'
    )
    monkeypatch.setenv("HOME", str(home))
    root = demo(fleet)
    git(root, "config", "include.path", "~/.gitconfig")
    found = findings(root)
    assert [(f.path, f.message.split(", included")[0]) for f in found[1:]] == [
        (str(user_config), str(user_config))
    ] * 3
    assert [f.message.split(" sets ")[1].split(",")[0] for f in found[1:]] == [
        "credential.helper",
        "core.sshCommand",
        "remote.origin.uploadpack",
    ]
    assert all(SECRET not in f.message and "echo" not in f.message for f in found)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (f"store --file=/x/{SECRET}", "credential.helper = 'store ...'"),
        (SECRET, "sets credential.helper,"),
        (f"https://me:{SECRET}@example.com/helper", "sets credential.helper,"),
        (f"token={SECRET}", "sets credential.helper,"),
    ],
)
def test_c13_quotes_at_most_a_command_word_of_the_repo_config(
    fleet: Path, value: str, shown: str
) -> None:
    """From the repo's own config only the first word, and not even that when it may be a
    token (long, or holding '=', '@', ':')."""
    root = demo(fleet)
    git(root, "config", "credential.helper", value)
    (finding,) = findings(root)
    assert shown in finding.message
    assert SECRET not in finding.message


def test_an_include_cycle_is_c00_not_a_loop(fleet: Path) -> None:
    """A config file that includes itself is C-00, as git refuses it too; reading stops."""
    root = demo(fleet)
    write(root, {".git/loop.inc": "[include]\n\tpath = loop.inc\n[core]\n\teditor = vi\n"})
    git(root, "config", "include.path", "loop.inc")
    found = git_findings(assess(root))
    assert [f.check for f in found] == ["C-00"]
    assert found[0].message == "maximum config include depth reached"


def test_c13_only_the_repo_config_counts(
    fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Command-running keys of the user's global config are not the repo's: no C-13."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[core]\n\tpager = less\n\teditor = vim\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    assert findings(demo(fleet)) == []


def test_c13_a_multi_line_value_gives_a_one_line_message(fleet: Path) -> None:
    """A value holding a newline is cut to its first word, so the message stays one line."""
    root = demo(fleet)
    git(root, "config", "core.editor", "vim\n-c evil")
    (finding,) = findings(root)
    assert_one_line(finding.message)
    assert "core.editor = 'vim ...'" in finding.message
    assert "evil" not in finding.message


def test_c13_change_in_an_included_file_changes_the_fingerprint(fleet: Path) -> None:
    """Editing an included config file changes the fingerprint, so no stale clean skip."""
    root = demo(fleet)
    write(root, {".git/extra.inc": "[user]\n\tname = someone\n"})
    git(root, "config", "include.path", "extra.inc")
    before = read_state(root, default_branch="main").fingerprint
    write(root, {".git/extra.inc": "[core]\n\tfsmonitor = /opt/fsmonitor\n"})
    after = read_state(root, default_branch="main")
    assert after.fingerprint != before
    assert [key.key for key in after.risky_config] == ["include.path", "core.fsmonitor"]


def test_c13_reads_config_syntax_as_git_does(fleet: Path) -> None:
    """C-13 reads the keys and values git reads, whatever the config file's syntax."""
    # Quotes, escapes, comments, continued lines, CRLF, legacy and same-line headers.
    root = demo(fleet)
    with (root / ".git" / "config").open("a", newline="") as config:
        config.write(
            "[core]\n"
            '\teditor = "vim -c \\"set ft=gitcommit\\"" ; a comment\n'
            "\tpager = less \\\n  -R\n"
            "[core]\tsshCommand=ssh   -v\t# a comment\n"
            '\tgitProxy = "a\\tb"\n'
            '[diff "x"] textconv = "a;b" #c\n'
            "[filter.Legacy]\n\tclean = cat\n"
            '[merge "m"]\r\n\tdriver = drv\r\n'
        )
    state = read_state(root, default_branch="main")
    seen = {key.key.lower(): key.value for key in state.risky_config}
    keys = [
        "core.editor",
        "core.pager",
        "core.sshcommand",
        "core.gitproxy",
        "diff.x.textconv",
        "filter.legacy.clean",
        "merge.m.driver",
    ]
    assert sorted(seen) == sorted(keys)
    for key in keys:
        assert seen[key] == git(root, "config", "--get", key).stdout.removesuffix("\n"), key


@pytest.mark.parametrize("version", [2, 3, 4])
def test_tracked_files_read_from_every_index_version(fleet: Path, version: int) -> None:
    """tracked_files is every regular file of the index, in git's order, in versions 2-4."""
    files: dict[str, str | bytes] = {
        f"deep/er/folder/a_rather_long_file_name_{n}.txt": f"{n}\n" for n in range(12)
    }
    root = make_repo(fleet, "demo", {**FILES, **files})
    (root / "link").symlink_to("f.txt")
    git(root, "add", "link")
    if version == 3:
        write(root, {"intended.txt": "later\n"})
        git(root, "add", "--intent-to-add", "intended.txt")  # an extended entry: version 3
    git(root, "update-index", "--index-version", str(version))
    index = (root / ".git" / "index").read_bytes()
    assert int.from_bytes(index[4:8], "big") == version
    listed = [
        line.split("\t", 1)[1]
        for line in git(root, "ls-files", "--stage").stdout.splitlines()
        if line.startswith(("100644", "100755"))
    ]
    assert list(read_state(root, default_branch="main").tracked_files) == listed
    # statehub's own parser read it (libgit2 is only for what the parser leaves), a name
    # that is not UTF-8 kept as its bytes.
    odd = os.fsdecode(b"odd-\xff.txt")
    (root / odd).write_text("odd\n")
    git(root, "add", odd)
    git(root, "update-index", "--index-version", str(version))

    def no_libgit2() -> list[tuple[str, int]]:
        raise AssertionError("the index was left to libgit2")

    regular, folders = index_paths(root / ".git", no_libgit2)
    assert regular == sorted([*listed, odd], key=os.fsencode)
    every = git(root, "ls-files").stdout.splitlines()
    assert folders == {
        path.rsplit("/", n)[0] for path in every for n in range(1, path.count("/") + 1)
    }


# -- C-14, C-15 ------------------------------------------------------------------------


def _modify(root: Path) -> None:
    (root / "f.txt").write_text("changed\n")


def _stage(root: Path) -> None:
    _modify(root)
    git(root, "add", "f.txt")


def _stage_new(root: Path) -> None:
    write(root, {"f.txt": "base\n", "new.txt": "new\n"})
    git(root, "add", "new.txt")


def _delete(root: Path) -> None:
    (root / "f.txt").unlink()


def _stage_delete(root: Path) -> None:
    git(root, "rm", "-q", "f.txt")


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (_modify, "f.txt"),
        (_stage, "f.txt"),
        (_stage_new, "new.txt"),
        (_delete, "f.txt"),
        (_stage_delete, "f.txt"),
    ],
    ids=["unstaged", "staged", "staged-new-file", "deleted", "staged-deletion"],
)
def test_c14_a_change_to_tracked_files(
    fleet: Path, change: Callable[[Path], None], path: str
) -> None:
    """Staged, unstaged, a staged new file and a deleted tracked file are one C-14."""
    root = demo(fleet)
    change(root)
    found = findings(root)
    assert ids(found) == ["C-14"]
    assert message(found, "C-14") == f"1 tracked file modified or staged: {path}"


def test_c14_lists_a_few_files_and_counts_the_rest(fleet: Path) -> None:
    """Five changed files: the count, the first three names, 'and 2 more'."""
    root = make_repo(fleet, "demo", {f"{n}.txt": "x\n" for n in "abcde"})
    for name in "abcde":
        (root / f"{name}.txt").write_text("y\n")
    found = findings(root)
    expected = "5 tracked files modified or staged: a.txt, b.txt, c.txt and 2 more"
    assert message(found, "C-14") == expected


def test_c14_not_reported_for_a_touched_file(fleet: Path) -> None:
    """A tracked file whose mtime changed but whose content did not is no finding."""
    root = demo(fleet)
    later = time.time() + 120
    os.utime(root / "f.txt", (later, later))
    assert findings(root) == []


def test_c15_an_untracked_file(fleet: Path) -> None:
    """An untracked file that is not ignored is C-15, named with its folder."""
    root = demo(fleet)
    write(root, {"notes/todo.txt": "later\n"})
    found = findings(root)
    assert ids(found) == ["C-15"]
    assert message(found, "C-15") == "1 untracked file not ignored: notes/todo.txt"


def test_c15_not_reported_for_an_ignored_file(fleet: Path) -> None:
    """An ignored file is no finding; an untracked one beside it is."""
    root = make_repo(fleet, "demo", {**FILES, ".gitignore": "*.log\nbuild/\n"})
    write(root, {"debug.log": "noise\n", "build/out.bin": b"\0"})
    assert findings(root) == []
    write(root, {"draft.md": "draft\n"})
    assert message(findings(root), "C-15") == "1 untracked file not ignored: draft.md"


# -- C-16 ------------------------------------------------------------------------------


def _diverge(root: Path) -> None:
    """Branch 'other' and main both change f.txt; main is pushed."""
    git(root, "switch", "-q", "-c", "other")
    commit(root, {"f.txt": "theirs\n"}, "theirs")
    git(root, "switch", "-q", "main")
    commit(root, {"f.txt": "ours\n"}, "ours")
    git(root, "push", "-q", "origin", "main")


def _merge(root: Path) -> None:
    _diverge(root)
    git(root, "merge", "-q", "other", check=False)


def _cherry_pick(root: Path) -> None:
    _diverge(root)
    git(root, "cherry-pick", "other", check=False)


def _revert(root: Path) -> None:
    commit(root, {"f.txt": "one\n"}, "one")
    commit(root, {"f.txt": "two\n"}, "two")
    git(root, "push", "-q", "origin", "main")
    git(root, "revert", "--no-edit", "HEAD~1", check=False)


def _rebase(root: Path) -> None:
    push_from_elsewhere(root, {"f.txt": "theirs\n"})
    commit(root, {"f.txt": "ours\n"}, "ours")
    git(root, "fetch", "-q")
    git(root, "rebase", "origin/main", check=False)


def _bisect(root: Path) -> None:
    for n in range(3):
        commit(root, {"f.txt": f"{n}\n"}, f"step {n}")
    git(root, "push", "-q", "origin", "main")
    git(root, "bisect", "start", "HEAD", "HEAD~3")


def _stash_pop(root: Path) -> None:
    (root / "f.txt").write_text("stashed\n")
    git(root, "stash", "-q")
    commit(root, {"f.txt": "committed\n"}, "committed")
    git(root, "push", "-q", "origin", "main")
    git(root, "stash", "pop", check=False)


@pytest.mark.parametrize(
    ("operation", "expected_ids", "expected"),
    [
        (_merge, ["C-16"], "a merge is in progress (1 unmerged path: f.txt)"),
        (_cherry_pick, ["C-16"], "a cherry-pick is in progress (1 unmerged path: f.txt)"),
        (_revert, ["C-16"], "a revert is in progress (1 unmerged path: f.txt)"),
        # The rebase detaches HEAD: judged on main, which has diverged (C-19, C-20), not C-17.
        (
            _rebase,
            ["C-16", "C-19", "C-20"],
            "a rebase of branch 'main' is in progress (1 unmerged path: f.txt)",
        ),
        (_bisect, ["C-16"], "a bisect is in progress"),
        (_stash_pop, ["C-16"], "1 unmerged path: f.txt"),
    ],
    ids=["merge", "cherry-pick", "revert", "rebase", "bisect", "unmerged-after-stash-pop"],
)
def test_c16_an_operation_in_progress_or_unmerged_paths(
    fleet: Path, operation: Callable[[Path], None], expected_ids: list[str], expected: str
) -> None:
    """An operation stopped half-way, or unmerged paths, is one C-16 (not C-14, not C-17)."""
    root = demo(fleet)
    operation(root)
    found = findings(root)
    assert ids(found) == expected_ids
    assert message(found, "C-16") == expected
    state = read_state(root, default_branch="main")
    # C-21 does not read a conflicted file either: its markers are this C-16.
    assert ("f.txt" in state.tracked_files) == ("unmerged" not in expected)


# -- C-17 ------------------------------------------------------------------------------


@pytest.mark.parametrize("with_origin", [True, False], ids=["with-upstream", "no-upstream"])
def test_c17_a_detached_head_alone(fleet: Path, with_origin: bool) -> None:
    """A detached HEAD (with an unpushed commit) is C-17 alone: C-18..C-20 judge a branch."""
    root = demo(fleet, with_origin=with_origin)
    git(root, "switch", "-q", "--detach")
    commit(root, {"f.txt": "detached\n"}, "detached")
    found = findings(root)
    assert ids(found) == ["C-17"]
    head = git(root, "rev-parse", "--short=7", "HEAD").stdout.strip()
    assert message(found, "C-17") == f"HEAD is detached at {head}"


def test_c17_on_another_branch(fleet: Path) -> None:
    """A branch other than the default, pushed and tracked, is C-17 alone."""
    root = demo(fleet)
    git(root, "switch", "-q", "-c", "feature")
    git(root, "push", "-q", "-u", "origin", "feature")
    found = findings(root)
    assert ids(found) == ["C-17"]
    assert message(found, "C-17") == "on branch 'feature', not the default branch 'main'"


def test_c17_origin_head_names_the_default_branch(fleet: Path) -> None:
    """origin/HEAD -> trunk makes trunk the default, whatever default_branch says."""
    root = demo(fleet)
    git(root, "push", "-q", "origin", "main:trunk")
    git(root, "remote", "set-head", "origin", "trunk")
    found = findings(root, default_branch="main")
    assert ids(found) == ["C-17"]
    assert message(found, "C-17") == "on branch 'main', not the default branch 'trunk'"

    on_trunk = demo(fleet, "on-trunk", branch="trunk")
    assert findings(on_trunk, default_branch="main") == []


@pytest.mark.parametrize("with_origin", [True, False], ids=["origin-head-deleted", "no-origin"])
def test_c17_default_branch_setting_without_origin_head(fleet: Path, with_origin: bool) -> None:
    """Without origin/HEAD, the configured default_branch decides."""
    root = demo(fleet, with_origin=with_origin)
    if with_origin:
        git(root, "remote", "set-head", "origin", "--delete")
    assert "C-17" not in ids(findings(root, default_branch="main"))
    found = findings(root, default_branch="develop")
    assert message(found, "C-17") == "on branch 'main', not the default branch 'develop'"


def test_a_linked_work_tree_is_read_as_a_work_tree(fleet: Path) -> None:
    """A work tree made by 'git worktree add' (a .git file) is read: its own branch counts."""
    root = demo(fleet)
    linked = fleet / "linked"
    git(root, "worktree", "add", "-q", "-b", "feature", str(linked))
    write(linked, {"scratch.txt": "new\n"})
    found = findings(linked)
    assert ids(found) == ["C-15", "C-17", "C-18"]
    assert message(found, "C-17") == "on branch 'feature', not the default branch 'main'"
    assert findings(root) == []


# -- C-18, C-19, C-20 ------------------------------------------------------------------


def test_c18_a_branch_without_upstream(fleet: Path) -> None:
    """The current branch tracks nothing: C-18 alone (no C-19, whatever its commits)."""
    root = demo(fleet, with_origin=False)
    commit(root, {"f.txt": "more\n"})
    found = findings(root)
    assert ids(found) == ["C-18"]
    assert message(found, "C-18") == "branch 'main' has no upstream"


def test_c18_an_upstream_that_is_gone(fleet: Path) -> None:
    """An upstream configured but whose remote-tracking branch is gone is C-18, saying so."""
    root = demo(fleet)
    git(root, "update-ref", "-d", "refs/remotes/origin/main")
    found = findings(root)
    assert ids(found) == ["C-18"]
    assert message(found, "C-18") == (
        "branch 'main' has no upstream: origin/main is gone (or never fetched)"
    )


@pytest.mark.parametrize(("count", "text"), [(1, "1 commit"), (2, "2 commits")])
def test_c19_unpushed_commits(fleet: Path, count: int, text: str) -> None:
    """Commits not pushed to the upstream are C-19 with their number."""
    root = demo(fleet)
    for n in range(count):
        commit(root, {"f.txt": f"local {n}\n"})
    found = findings(root)
    assert ids(found) == ["C-19"]
    assert message(found, "C-19") == f"{text} not pushed to origin/main"


def test_c20_behind_after_a_fetch(fleet: Path) -> None:
    """Another clone pushes: nothing is known until the repo fetches, then C-20."""
    root = demo(fleet)
    push_from_elsewhere(root, {"g.txt": "theirs\n"})
    assert findings(root) == []
    git(root, "fetch", "-q")
    found = findings(root)
    assert ids(found) == ["C-20"]
    assert message(found, "C-20") == "1 commit behind origin/main (as of the last fetch)"


def test_c19_and_c20_when_diverged(fleet: Path) -> None:
    """Local and remote commits each side: C-19 and C-20 together."""
    root = demo(fleet)
    push_from_elsewhere(root, {"g.txt": "theirs\n"})
    commit(root, {"h.txt": "ours\n"})
    git(root, "fetch", "-q")
    assert ids(findings(root)) == ["C-19", "C-20"]


def test_c20_with_remote_fetches_first(fleet: Path) -> None:
    """Without --remote a push elsewhere is unseen; assess_target(remote=True) fetches: C-20."""
    root = demo(fleet)
    push_from_elsewhere(root, {"g.txt": "theirs\n"})
    assert git_findings(assess(root)) == []
    found = git_findings(assess(root, remote=True))
    assert [(f.check, f.message) for f in found] == [
        ("C-20", "1 commit behind origin/main (as of the last fetch)")
    ]


# -- C-00 ------------------------------------------------------------------------------


def _gitdir_nowhere(fleet: Path) -> tuple[Path, str]:
    root = fleet / "linked"
    root.mkdir()
    (root / ".git").write_text("gitdir: ../nowhere/.git\n")
    return root, f".git points to {root}/../nowhere/.git, which does not exist"


def _gitdir_fifo(fleet: Path) -> tuple[Path, str]:
    root = fleet / "piped"
    root.mkdir()
    os.mkfifo(fleet / "pipe.git")
    (root / ".git").write_text("gitdir: ../pipe.git\n")
    return root, f".git points to {root}/../pipe.git, which is a named pipe, not a git dir"


def _corrupt_head(fleet: Path) -> tuple[Path, str]:
    root = demo(fleet)
    (root / ".git" / "HEAD").write_text("garbage\n")
    return root, "corrupted loose reference file: HEAD"


def _truncated_index(fleet: Path) -> tuple[Path, str]:
    root = demo(fleet)
    (root / ".git" / "index").write_bytes(b"DIRC")
    return root, f"cannot read {root}/.git/index: it is truncated or corrupt"


def _corrupt_config(fleet: Path) -> tuple[Path, str]:
    root = demo(fleet)
    with (root / ".git" / "config").open("a") as config:
        config.write("[core\n")
    return root, "failed to parse config file: missing ']' in section header (in "


@pytest.mark.parametrize(
    "build",
    [_gitdir_nowhere, _gitdir_fifo, _corrupt_head, _truncated_index, _corrupt_config],
    ids=[
        "gitdir-file-pointing-nowhere",
        "gitdir-file-pointing-at-a-fifo",
        "corrupt-HEAD",
        "truncated-index",
        "corrupt-config",
    ],
)
def test_c00_an_unreadable_git_dir(fleet: Path, build: Callable[[Path], tuple[Path, str]]) -> None:
    """A .git that cannot be read is one C-00 with a readable one-line message."""
    root, expected = build(fleet)
    outcome = assess(root)
    assert [f.check for f in outcome.findings] == ["C-00"]
    assert_one_line(outcome.findings[0].message)
    assert outcome.findings[0].message.startswith(expected)


def test_c00_no_permission_on_the_git_dir(fleet: Path) -> None:
    """A .git the sweep may not read is C-00 saying 'permission denied'."""
    # Root reads anything: as root, the read runs in a child without the capabilities that
    # bypass file permissions (setpriv).
    root = demo(fleet)
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv is missing: cannot drop CAP_DAC_OVERRIDE")
        prefix = (setpriv, "--bounding-set", "-dac_override,-dac_read_search")
    (root / ".git").chmod(0)
    try:
        found = assess_in_child(root, prefix=prefix)
    finally:
        (root / ".git").chmod(0o755)
    assert [f["check"] for f in found] == ["C-00"]
    assert_one_line(found[0]["message"])
    assert "permission denied" in found[0]["message"]


def test_c00_a_repo_owned_by_another_user(fleet: Path) -> None:
    """A repo of another uid is C-00 'dubious ownership' naming the way out, no traceback."""
    if os.geteuid() != 0:
        pytest.skip("only root can give a repo to another owner")
    root = demo(fleet)
    for path in (root, *root.rglob("*")):
        os.lchown(path, 65534, 65534)
    outcome = assess(root)
    assert [f.check for f in outcome.findings] == ["C-00"]
    text = outcome.findings[0].message
    assert_one_line(text)
    assert text.startswith(f"dubious ownership: {root} belongs to uid 65534, not to uid 0")
    assert f"safe.directory {root}" in text


def test_c00_a_symlink_loop_as_a_configured_path(tmp_path: Path, fleet: Path) -> None:
    """A configured path that is a symlink loop is C-00, and the sweep says so in its event."""
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    detail = sweep_detail(tmp_path, fleet, repos=f'paths = ["{loop}"]')
    (item,) = detail["repos_processed"]
    (finding,) = item["findings"]
    assert finding["check"] == "C-00"
    assert "too many levels of symbolic links" in finding["message"]
    assert detail["exit_code"] == 1
    assert detail["automation_errors"] == [
        {"repo": "loop", "check": "C-00", "message": finding["message"]}
    ]


def test_c00_one_broken_repo_does_not_stop_the_sweep(tmp_path: Path, fleet: Path) -> None:
    """A broken repo is C-00 and the others are assessed as usual."""
    broken = demo(fleet, "broken")
    (broken / ".git" / "HEAD").write_text("garbage\n")
    ahead = demo(fleet, "ahead")
    commit(ahead, {"f.txt": "more\n"})
    detail = sweep_detail(tmp_path, fleet)
    by_repo = {
        item["repo"]: sorted({f["check"] for f in item["findings"] if f["check"] in GIT_IDS})
        for item in detail["repos_processed"]
    }
    assert by_repo == {"broken": ["C-00"], "ahead": ["C-19"]}
    assert detail["exit_code"] == 1


def test_c00_a_failed_fetch_keeps_the_local_findings(fleet: Path) -> None:
    """A --remote fetch from a missing remote is C-00; the local findings still stand."""
    root = demo(fleet)
    commit(root, {"f.txt": "local\n"})
    write(root, {"untracked.txt": "new\n"})
    nowhere = fleet / "nowhere.git"
    git(root, "remote", "set-url", "origin", str(nowhere))
    found = git_findings(assess(root, remote=True))
    assert ids(found) == ["C-00", "C-15", "C-19"]
    text = message(found, "C-00")
    assert_one_line(text)
    assert text == "git fetch origin failed: remote not found"


@pytest.mark.parametrize("scheme", ["git", "http"])
def test_c00_a_fetch_that_hangs_times_out(fleet: Path, scheme: str) -> None:
    """A fetch that never gets an answer is C-00 'timed out' within its timeout."""
    root = demo(fleet)
    write(root, {"untracked.txt": "new\n"})
    with HangingServer() as server:
        git(root, "remote", "set-url", "origin", f"{scheme}://127.0.0.1:{server.port}/x.git")
        started = time.monotonic()
        found = git_findings(assess(root, remote=True, fetch_timeout=2))
        elapsed = time.monotonic() - started
    assert ids(found) == ["C-00", "C-15"]
    assert message(found, "C-00") == "git fetch origin timed out after 2 s"
    assert 2 <= elapsed < 15


# A named pipe where git reads would block libgit2, which holds the GIL: the whole process
# would hang. Each is refused before libgit2 opens anything.
def _fifo_include(root: Path) -> str:
    os.mkfifo(root / ".git" / "pipe.inc")
    git(root, "config", "include.path", "pipe.inc")
    return f"{root}/.git/pipe.inc"


def _fifo_includeif(root: Path) -> str:
    pipe = root.parent / "pipe.inc"
    os.mkfifo(pipe)
    git(root, "config", f"includeIf.gitdir:{root}/.git.path", str(pipe))
    return str(pipe)


def _fifo_index(root: Path) -> str:
    (root / ".git" / "index").unlink()
    os.mkfifo(root / ".git" / "index")
    return f"{root}/.git/index"


def _fifo_config(root: Path) -> str:
    (root / ".git" / "config").unlink()
    os.mkfifo(root / ".git" / "config")
    return f"{root}/.git/config"


def _fifo_exclude(root: Path) -> str:
    (root / ".git" / "info" / "exclude").unlink()
    os.mkfifo(root / ".git" / "info" / "exclude")
    return f"{root}/.git/info/exclude"


def _fifo_excludes_file(root: Path) -> str:
    pipe = root.parent / "ignore-pipe"
    os.mkfifo(pipe)
    git(root, "config", "core.excludesFile", str(pipe))
    return str(pipe)


def _fifo_gitignore_in_untracked_folder(root: Path) -> str:
    write(root, {"new/deeper/file.txt": "new\n"})
    os.mkfifo(root / "new" / "deeper" / ".gitignore")
    return f"{root}/new/deeper/.gitignore"


def _fifo_gitignore_at_the_top(root: Path) -> str:
    write(root, {"new/file.txt": "new\n"})  # an untracked folder: is it ignored?
    os.mkfifo(root / ".gitignore")
    return f"{root}/.gitignore"


def _fifo_gitattributes(root: Path) -> str:
    os.mkfifo(root / "src" / ".gitattributes")
    later = time.time() + 120
    os.utime(root / "src" / "app.py", (later, later))  # to be hashed, with its attributes
    return f"{root}/src/.gitattributes"


def _fifo_loose_ref(root: Path) -> str:
    os.mkfifo(root / ".git" / "refs" / "heads" / "stuck")
    return f"{root}/.git/refs/heads/stuck"


def _fifo_alternates(root: Path) -> str:
    os.mkfifo(root / ".git" / "objects" / "info" / "alternates")
    return f"{root}/.git/objects/info/alternates"


@pytest.mark.parametrize(
    "plant",
    [
        _fifo_include,
        _fifo_includeif,
        _fifo_index,
        _fifo_config,
        _fifo_exclude,
        _fifo_excludes_file,
        _fifo_gitignore_in_untracked_folder,
        _fifo_gitignore_at_the_top,
        _fifo_gitattributes,
        _fifo_loose_ref,
        _fifo_alternates,
    ],
    ids=lambda plant: plant.__name__.removeprefix("_fifo_"),
)
def test_c00_a_named_pipe_where_git_reads(fleet: Path, plant: Callable[[Path], str]) -> None:
    """A named pipe where git would read is C-00 naming it, at once: the read never blocks."""
    root = demo(fleet)
    pipe = plant(root)
    found = assess_in_child(root)
    assert [(f["check"], f["message"]) for f in found] == [
        ("C-00", f"{pipe} is a named pipe, not a file: reading it would block git")
    ]


# -- a sweep writes nothing into a repo --------------------------------------------------

PAST = 1_600_000_000  # a fixed time in the past, so that any write shows as a newer mtime


def _settle(root: Path) -> None:
    """Old work-tree files, an index that knows them, and old metadata after it."""
    for path in root.rglob("*"):
        if ".git" not in path.relative_to(root).parts:
            os.utime(path, (PAST, PAST), follow_symlinks=False)
    git(root, "status", "--porcelain")  # refreshes the index: nothing stat-dirty, not racy
    for path in [*(root / ".git").rglob("*"), root / ".git", root]:
        os.utime(path, (PAST + 100, PAST + 100), follow_symlinks=False)


def _clean(root: Path) -> None:
    pass


def _dirty(root: Path) -> None:
    (root / "f.txt").write_text("changed\n")
    write(root, {"untracked.txt": "new\n"})


def _stat_dirty(root: Path) -> None:
    """Same content, a new mtime: a status hashes the file and could refresh the index."""
    later = PAST + 500
    os.utime(root / "f.txt", (later, later))
    os.utime(root / "src" / "app.py", (later, later))


def _racy(root: Path) -> None:
    """Index as old as the files: every entry is racily clean and must be hashed."""
    os.utime(root / ".git" / "index", (PAST, PAST))


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root``, .git included, folders too: (mode, size, mtime_ns)."""
    found = {}
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        found[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


@pytest.mark.parametrize(
    "state", [_clean, _dirty, _stat_dirty, _racy], ids=["clean", "dirty", "stat-dirty", "racy"]
)
def test_a_sweep_writes_nothing_into_a_repo(
    tmp_path: Path, fleet: Path, state: Callable[[Path], None]
) -> None:
    """A sweep changes no byte or mtime in the repo and leaves no lock file, even stat-dirty."""
    # Stat-dirty and racy entries are where libgit2 would like to refresh the index.
    root = demo(fleet)
    _settle(root)
    state(root)
    index = (root / ".git" / "index").read_bytes()
    before = snapshot(root)
    detail = sweep_detail(tmp_path, fleet)
    assert [item["repo"] for item in detail["repos_processed"]] == ["demo"]
    assert (root / ".git" / "index").read_bytes() == index
    assert snapshot(root) == before  # a lock file made and removed would change a folder mtime
    assert list(root.rglob("*.lock")) == []


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        (
            "warning: redirecting to https://example.invalid/x.git/\n"
            "fatal: repository 'https://example.invalid/x.git/' not found\n",
            "remote not found",
        ),
        (
            "fatal: unable to access 'https://h.invalid/': Could not resolve host: h.invalid\n",
            "could not connect",
        ),
        (
            "git@h: Permission denied (publickey).\n"
            "fatal: Could not read from remote repository.\n",
            "authentication refused",
        ),
        ("error: key does not contain a section: tok3n\nfatal: x\n", None),
        ("warning: only this tok3n\n", "git exited 1"),
        ("", "git exited 1"),
    ],
)
def test_a_failed_fetch_says_why_in_statehubs_words(stderr: str, reason: str | None) -> None:
    """git's stderr is matched to a fixed vocabulary; none of its text is copied."""
    from statehub.gitfetch import fetch_reason

    said = fetch_reason(stderr, 1)
    assert said == (reason or "the repo's git configuration is invalid")
    assert "tok3n" not in said


def _secret_in_include(root: Path, secret: Path) -> None:
    """An includeIf that git follows for a fetch, naming a one-line token file."""
    git(root, "remote", "set-url", "origin", str(root.parent / "nowhere.git"))
    git(root, "config", "includeIf.hasconfig:remote.*.url:**.path", str(secret))


def _secret_in_alternates(root: Path, secret: Path) -> None:
    """Alternates a symlink to the token file, and an origin whose newest commit is lost."""
    secret.write_text(f"../../../../../../../../../../../../{SECRET_TOKEN}\n")
    origin = root.parent / ".origins" / f"{root.name}.git"
    clone = root.parent / "other"
    git(root.parent, "clone", "-q", str(origin), str(clone))
    commit(clone, {"g.txt": "more\n"})
    git(clone, "push", "-q", "origin", "HEAD:main")
    lost = git(origin, "rev-parse", "main").stdout.strip()
    (origin / "objects" / lost[:2] / lost[2:]).unlink()
    (root / ".git" / "objects" / "info").mkdir(exist_ok=True)
    (root / ".git" / "objects" / "info" / "alternates").symlink_to(secret)


SECRET_TOKEN = "ghs4ecretTokenValue0123456789"


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (_secret_in_include, "the repo's git configuration is invalid"),
        (_secret_in_alternates, "its alternates are invalid"),
    ],
    ids=["includeif-hasconfig", "alternates-symlink"],
)
def test_c00_a_failed_fetch_never_quotes_a_file_git_read(
    fleet: Path, setup: Callable[[Path, Path], None], reason: str
) -> None:
    """A token file git was made to read is not in the C-00: the reason is statehub's own."""
    root = demo(fleet)
    secret = fleet / "token"
    secret.write_text(f"{SECRET_TOKEN}\n")
    setup(root, secret)
    found = assess(root, remote=True)
    assert message(found.findings, "C-00") == f"git fetch origin failed: {reason}"
    assert SECRET_TOKEN.lower() not in json.dumps(found.as_dict()).lower()


@pytest.mark.long(11)
def test_gits_own_lines_go_to_the_local_log_at_debug_level_only(
    tmp_path: Path, fleet: Path
) -> None:
    """With STATEHUB_LOG_LEVEL=debug a worker logs git's line; the event and output have none."""
    from clirun import statehub

    root = demo(fleet)
    secret = fleet / "token"
    secret.write_text(f"{SECRET_TOKEN}\n")
    _secret_in_include(root, secret)
    config = write_config(tmp_path, roots=[fleet])
    quiet = statehub("sweep", "--remote", "--json", config=config)
    loud = statehub("sweep", "--remote", config=config, env={"STATEHUB_LOG_LEVEL": "debug"})
    assert SECRET_TOKEN.lower() not in quiet.stdout.lower() + quiet.stderr.lower()
    assert "git fetch origin failed: the repo's git configuration is invalid" in quiet.stdout
    (line,) = [line for line in loud.stderr.splitlines() if SECRET_TOKEN.lower() in line]
    assert line.endswith(f"DEBUG statehub.gitfetch: git fetch origin in {root}: {SECRET_LINE}")


SECRET_LINE = f"error: key does not contain a section: {SECRET_TOKEN.lower()}"
