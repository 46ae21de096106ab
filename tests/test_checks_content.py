"""C-21..C-23: conflict markers, large files and private keys in tracked files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from checkkit import context
from gitfleet import commit_all, git, good_files, make_repo
from statehub.checks import Finding, content
from statehub.settings import CheckSettings, RepoOverride, RepoSettings, Settings

# Key headers are assembled, never spelled out, so that this file (scanned by statehub
# itself in tests/test_dogfood.py) holds no private-key marker.
DASHES = "-----"
RSA_HEADER = f"{DASHES}BEGIN RSA PRIVATE KEY{DASHES}"
PUTTY = "PuTTY-User-Key" + "-File-"
KEY_BODY = "\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"


def _run(root: Path, settings: Settings | None = None) -> list[Finding]:
    """The content family's findings for the repo at ``root``."""
    return content.run(context(root, settings))


def _repo(tmp_path: Path, extra: dict[str, str | bytes]) -> Path:
    return make_repo(tmp_path, "r", {**good_files("r"), **extra}, with_origin=False)


def _ids(findings: list[Finding]) -> list[str]:
    return [finding.check for finding in findings]


def _tiny_limit() -> Settings:
    """Settings with C-22's limit at its minimum, 1 KB."""
    return Settings(checks=CheckSettings(max_file_kb=1))


@pytest.fixture
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every os.read made while the test runs: the sizes returned."""
    sizes: list[int] = []
    real_read: Callable[[int, int], bytes] = os.read

    def counting_read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        sizes.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counting_read)
    return sizes


def test_good_repo_has_no_findings(tmp_path: Path) -> None:
    """The builders' good repo passes C-21..C-23."""
    assert _run(make_repo(tmp_path, "r", with_origin=False)) == []


# -- C-21 -------------------------------------------------------------------------------


BLOCK = "<<<<<<< HEAD\nours\n=======\ntheirs\n>>>>>>> feature\n"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (BLOCK, 1),
        ("a\n" + BLOCK, 2),
        ("<<<<<<<\nx\n=======\ny\n>>>>>>>", 1),
        ("a\r\n<<<<<<< HEAD\r\nx\r\n=======\r\ny\r\n>>>>>>> b\r\n", 2),
        ("\ufeffx\n<<<<<<< ours\n=======\n>>>>>>> theirs\n", 2),
        # diff3 style: the base section between opener and separator
        ("<<<<<<< ours\na\n||||||| base\nb\n=======\nc\n>>>>>>> theirs\n", 1),
        # an opener never closed, then a whole block: the block is found where it opens
        ("<<<<<<< stale\nx\n<<<<<<< HEAD\n=======\n>>>>>>> b\n", 3),
    ],
)
def test_conflict_blocks(tmp_path: Path, text: str, line: int) -> None:
    """An opener, a separator and a closer, in that order, make one conflict block."""
    findings = _run(_repo(tmp_path, {"src/app.py": text}))
    assert findings == [
        Finding(check="C-21", message=f"conflict block at line {line}", path="src/app.py")
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Title\n==========\n",
        "Title\n=======\n",  # a seven-letter reStructuredText heading
        "=======\nTitle\n=======\n",  # an overlined heading
        "a\n======= \n",
        "a\n<<<<<<< HEAD\nb\n",  # prose about git: an opener alone
        "a\nb\n>>>>>>> feature\n",
        "<<<<<<< HEAD\nx\n>>>>>>> b\n",  # no separator
        ">>>>>>> b\n=======\n<<<<<<< a\n",  # out of order
        "=======\n<<<<<<< a\n>>>>>>> b\n",
        "<<<<<<<< HEAD\n========\n>>>>>>>>\n",
        " <<<<<<< HEAD\n =======\n >>>>>>> b\n",
        "<<<<<<<HEAD\n=======x\n>>>>>>>b\n",
        "x = '<<<<<<< HEAD'\ny = '======='\nz = '>>>>>>> b'\n",
        "|||||||\n",
    ],
)
def test_not_conflict_blocks(tmp_path: Path, text: str) -> None:
    """Underlines, lone or disordered markers, longer or embedded runs are not a block."""
    assert _run(_repo(tmp_path, {"doc.md": text})) == []


# A page of real documentation: reStructuredText headings underlined (and overlined) with
# seven '=' under seven-letter titles, as Sphinx projects write them, and a section that
# talks about conflict markers in a literal block without holding a whole block.
RST_PAGE = """\
=======
Changes
=======

Release
=======

Version 2.1 fixes the parser. See :ref:`install` for how to upgrade.

Upgrade
-------

When git stops a merge it writes these lines into the file::

    <<<<<<< HEAD

and the separator line made of seven equal signs. Resolve the conflict, then commit.

Credits
=======

* Everyone who reported a bug.
"""


def test_restructuredtext_headings_are_not_conflicts(tmp_path: Path) -> None:
    """A Sphinx-style page with seven-'=' headings is no C-21 (issue 15)."""
    root = _repo(tmp_path, {"docs/changes.rst": RST_PAGE, "CHANGES.rst": RST_PAGE})
    assert _run(root) == []


def test_a_real_conflict_in_a_real_page_is_found(tmp_path: Path) -> None:
    """The same page with a conflict block left in it is one C-21 at the block."""
    conflicted = RST_PAGE.replace(
        "* Everyone who reported a bug.\n",
        "<<<<<<< HEAD\n* Everyone who reported a bug.\n=======\n* Every reporter.\n>>>>>>> docs\n",
    )
    line = conflicted.splitlines().index("<<<<<<< HEAD") + 1
    assert _run(_repo(tmp_path, {"docs/changes.rst": conflicted})) == [
        Finding(check="C-21", message=f"conflict block at line {line}", path="docs/changes.rst")
    ]


def test_many_blocks_in_one_file_are_one_finding(tmp_path: Path) -> None:
    """Two conflict blocks in one file are one finding that counts them."""
    text = "x\n" + BLOCK + "y\n" + BLOCK
    assert _run(_repo(tmp_path, {"a.txt": text})) == [
        Finding(check="C-21", message="conflict block at line 2 (2 blocks in all)", path="a.txt")
    ]


@pytest.mark.parametrize(
    "data",
    [
        BLOCK.encode() + b"\x00\x01\x02",
        b"\xff\xd8\xff\xe0\n" + BLOCK.encode(),
        b"ok\n" + BLOCK.encode() + b"\xc3\x28\n",
    ],
)
def test_binary_files_are_not_read_for_markers(tmp_path: Path, data: bytes) -> None:
    """A NUL byte or invalid UTF-8 makes a file binary: no C-21."""
    assert _run(_repo(tmp_path, {"blob.bin": data})) == []


def test_multibyte_character_cut_by_the_bound_is_still_text(tmp_path: Path) -> None:
    """A UTF-8 character split by the read bound does not make the file binary."""
    block = BLOCK.encode()
    data = block + b"x" * (content.CONTENT_READ_LIMIT - len(block) - 1) + "é".encode() + b"\n"
    assert len(data) == content.CONTENT_READ_LIMIT + 2
    assert _ids(_run(_repo(tmp_path, {"long.txt": data}))) == ["C-21", "C-22"]


def test_untracked_and_ignored_files_are_not_read(tmp_path: Path) -> None:
    """Only tracked files are read: untracked or ignored conflicts are not C-21."""
    root = _repo(tmp_path, {".gitignore": "ignored.txt\n"})
    (root / "ignored.txt").write_text(BLOCK, encoding="utf-8")
    (root / "untracked.txt").write_text(BLOCK, encoding="utf-8")
    assert _run(root) == []


def test_work_tree_copy_is_what_is_read(tmp_path: Path) -> None:
    """A conflict written into the work tree after the commit is found."""
    root = _repo(tmp_path, {"a.txt": "fine\n"})
    (root / "a.txt").write_text(BLOCK, encoding="utf-8")
    assert _ids(_run(root)) == ["C-21"]


# -- C-22 -------------------------------------------------------------------------------


def test_large_file(tmp_path: Path) -> None:
    """A file over max_file_kb is C-22 with its size, rounded up."""
    root = _repo(tmp_path, {"data.csv": "x" * 1025, "small.csv": "x" * 1024})
    assert _run(root, _tiny_limit()) == [
        Finding(check="C-22", message="file is 2 KB, over the 1 KB limit", path="data.csv")
    ]


def test_limit_from_repo_override(tmp_path: Path) -> None:
    """A repo's max_file_kb replaces the fleet's."""
    root = _repo(tmp_path, {"data.csv": "x" * 3000})
    override = RepoOverride(max_file_kb=2)
    assert _ids(_run(root, Settings(repos=RepoSettings(overrides={"r": override})))) == ["C-22"]
    assert _run(root) == []


def test_lfs_pointer_is_exempt(tmp_path: Path) -> None:
    """A file that is a Git LFS pointer is never too large."""
    pointer = (
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
        "size 12345\n"
    )
    padded = pointer + "ext-0-x " + "y" * 1100 + "\n"  # over 1 KB, still a pointer
    not_pointer = "x" + padded
    root = _repo(tmp_path, {"model.bin": padded, "other.bin": not_pointer})
    assert _run(root, _tiny_limit()) == [
        Finding(check="C-22", message="file is 2 KB, over the 1 KB limit", path="other.bin")
    ]


def test_sparse_50_mb_file_is_read_only_up_to_the_bound(
    tmp_path: Path, bytes_read: list[int]
) -> None:
    """A 50 MB tracked file costs one bounded read: C-22 and C-23 found, the tail unread."""
    root = _repo(tmp_path, {})
    big = root / "big.img"
    with big.open("wb") as handle:
        handle.write(f"{RSA_HEADER}{KEY_BODY}".encode())
        handle.seek(40 * 1024 * 1024)
        handle.write(b"\n<<<<<<< HEAD\n")  # far beyond the bound: never read
        handle.truncate(50 * 1024 * 1024)
    commit_all(root, "add a big file")
    ctx = context(root)
    bytes_read.clear()
    findings = content.run(ctx)
    assert findings == [
        Finding(check="C-22", message="file is 51200 KB, over the 500 KB limit", path="big.img"),
        Finding(check="C-23", message=f"holds a private key ({RSA_HEADER})", path="big.img"),
    ]
    # One bounded read of big.img, plus the small files of the good repo.
    assert sum(bytes_read) <= content.CONTENT_READ_LIMIT + 10 * 1024


def test_only_c22_reads_just_the_pointer_line(tmp_path: Path, bytes_read: list[int]) -> None:
    """With C-21 and C-23 off, only oversized files are opened, for a few bytes."""
    root = _repo(tmp_path, {"data.csv": "x" * 5000})
    settings = Settings(checks=CheckSettings(max_file_kb=1, disable=["C-21", "C-23"]))
    ctx = context(root, settings)
    bytes_read.clear()
    assert _ids(content.run(ctx)) == ["C-22"]
    assert bytes_read == [len(content.LFS_POINTER)]


def test_all_disabled_reads_nothing(tmp_path: Path, bytes_read: list[int]) -> None:
    """With C-21..C-23 all off, no file is read at all."""
    root = _repo(tmp_path, {"a.txt": BLOCK, "k.pem": RSA_HEADER})
    settings = Settings(checks=CheckSettings(disable=["C-21", "C-22", "C-23"]))
    ctx = context(root, settings)
    bytes_read.clear()
    assert content.run(ctx) == []
    assert bytes_read == []


# -- C-23 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        RSA_HEADER,
        f"{DASHES}BEGIN EC PRIVATE KEY{DASHES}",
        f"{DASHES}BEGIN DSA PRIVATE KEY{DASHES}",
        f"{DASHES}BEGIN OPENSSH PRIVATE KEY{DASHES}",
        f"{DASHES}BEGIN ENCRYPTED PRIVATE KEY{DASHES}",
        f"{DASHES}BEGIN PRIVATE KEY{DASHES}",
        f"{DASHES}BEGIN PGP PRIVATE KEY BLOCK{DASHES}",
        PUTTY,
    ],
)
def test_private_keys(tmp_path: Path, header: str) -> None:
    """Each kind of private-key header is one C-23 naming it."""
    findings = _run(_repo(tmp_path, {"deploy/id_key": f"{header}{KEY_BODY}"}))
    assert findings == [
        Finding(check="C-23", message=f"holds a private key ({header})", path="deploy/id_key")
    ]


@pytest.mark.parametrize(
    "data",
    [
        f'{{"private_key": "{DASHES}BEGIN PRIVATE KEY{DASHES}\\nMIIEv..."}}\n'.encode(),
        f"\x00\x01binary\x00{DASHES}BEGIN OPENSSH PRIVATE KEY{DASHES}\x00".encode(),
        f"{PUTTY}3: ssh-ed25519\r\nEncryption: none\r\n".encode(),
    ],
)
def test_private_keys_embedded_anywhere(tmp_path: Path, data: bytes) -> None:
    """A key inside JSON, a binary file or a PuTTY file is found."""
    assert _ids(_run(_repo(tmp_path, {"secrets.dat": data}))) == ["C-23"]


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN PUBLIC KEY-----\nMIIB\n",
        "-----BEGIN RSA PUBLIC KEY-----\n",
        "-----BEGIN CERTIFICATE-----\nMIID\n",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI user@host\n",
        "a PRIVATE KEY is secret\n",
        f"{DASHES}BEGIN rsa PRIVATE KEY{DASHES}\n",
    ],
)
def test_not_private_keys(tmp_path: Path, text: str) -> None:
    """Public keys, certificates and prose are not C-23."""
    assert _run(_repo(tmp_path, {"keys.txt": text})) == []


def test_one_finding_per_file_per_check(tmp_path: Path) -> None:
    """Two keys and two conflicts in one file give one C-21 and one C-23."""
    text = f"{RSA_HEADER}\n{BLOCK}{RSA_HEADER}\n{BLOCK}"
    assert _ids(_run(_repo(tmp_path, {"k.txt": text}))) == ["C-21", "C-23"]


# -- what is not read --------------------------------------------------------------------


def test_deleted_tracked_file_is_skipped(tmp_path: Path) -> None:
    """A tracked file deleted from the work tree is not an error and not a finding."""
    root = _repo(tmp_path, {"k.pem": RSA_HEADER})
    (root / "k.pem").unlink()
    assert _run(root) == []


def test_tracked_file_replaced_by_symlink_is_not_followed(tmp_path: Path) -> None:
    """A tracked file now a link to a key elsewhere is skipped, never read."""
    outside = tmp_path / "outside.pem"
    outside.write_text(RSA_HEADER, encoding="utf-8")
    root = _repo(tmp_path, {"k.pem": "fine\n"})
    (root / "k.pem").unlink()
    (root / "k.pem").symlink_to(outside)
    assert _run(root) == []


def test_folder_replaced_by_symlink_is_not_followed(tmp_path: Path) -> None:
    """A tracked file under a folder that became a link out of the repo is skipped."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "k.pem").write_text(RSA_HEADER, encoding="utf-8")
    root = _repo(tmp_path, {"keys/k.pem": "fine\n"})
    (root / "keys" / "k.pem").unlink()
    (root / "keys").rmdir()
    (root / "keys").symlink_to(outside)
    assert _run(root) == []


def test_tracked_file_replaced_by_fifo_or_folder_is_skipped(tmp_path: Path) -> None:
    """A FIFO (which would block a read) or a folder in a tracked file's place is skipped."""
    root = _repo(tmp_path, {"pipe": "x\n", "dir": "x\n"})
    (root / "pipe").unlink()
    os.mkfifo(root / "pipe")
    (root / "dir").unlink()
    (root / "dir").mkdir()
    assert _run(root) == []


def test_tracked_symlinks_are_not_read(tmp_path: Path) -> None:
    """A committed symlink is not a regular file of the index: never read."""
    outside = tmp_path / "outside.pem"
    outside.write_text(RSA_HEADER, encoding="utf-8")
    root = _repo(tmp_path, {})
    (root / "link.pem").symlink_to(outside)
    git(root, "add", "link.pem")
    commit_all(root, "add a link")
    assert _run(root) == []


def test_empty_tracked_file(tmp_path: Path) -> None:
    """An empty tracked file is fine."""
    assert _run(_repo(tmp_path, {"empty.txt": ""})) == []


def test_disabling_each_check(tmp_path: Path) -> None:
    """checks.disable and a repo override switch C-21..C-23 off."""
    root = _repo(tmp_path, {"all.txt": f"{RSA_HEADER}\n{BLOCK}" + "x" * 2048})
    assert _ids(_run(root, _tiny_limit())) == ["C-21", "C-22", "C-23"]
    fleet = Settings(checks=CheckSettings(max_file_kb=1, disable=["C-21", "C-23"]))
    assert _ids(_run(root, fleet)) == ["C-22"]
    override = RepoOverride(disable=["C-22"])
    per_repo = Settings(
        repos=RepoSettings(overrides={"r": override}), checks=CheckSettings(max_file_kb=1)
    )
    assert _ids(_run(root, per_repo)) == ["C-21", "C-23"]
