"""C-21..C-23: conflict markers, large files and private keys in tracked files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import keykit
from checkkit import context
from gitfleet import commit_all, git, good_files, make_repo
from keykit import PUTTY, begin, pem
from statehub.checks import Finding, content
from statehub.settings import CheckSettings, RepoOverride, RepoSettings, Settings

# Keys are built by keykit at run time, never spelled out, so that this file (scanned by
# statehub itself in tests/test_dogfood.py) holds no private key.
RSA_HEADER = begin("RSA PRIVATE KEY")
RSA_KEY = pem("RSA PRIVATE KEY")


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
        Finding(
            check="C-21", message=f"conflict block at line {line}", path="src/app.py", line=line
        )
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
        Finding(
            check="C-21",
            message=f"conflict block at line {line}",
            path="docs/changes.rst",
            line=line,
        )
    ]


def test_many_blocks_in_one_file_are_one_finding(tmp_path: Path) -> None:
    """Two conflict blocks in one file are one finding that counts them."""
    text = "x\n" + BLOCK + "y\n" + BLOCK
    assert _run(_repo(tmp_path, {"a.txt": text})) == [
        Finding(
            check="C-21",
            message="conflict block at line 2 (2 blocks in all)",
            path="a.txt",
            line=2,
        )
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
        handle.write(RSA_KEY.encode())
        handle.seek(40 * 1024 * 1024)
        handle.write(b"\n<<<<<<< HEAD\n")  # far beyond the bound: never read
        handle.truncate(50 * 1024 * 1024)
    commit_all(root, "add a big file")
    ctx = context(root)
    bytes_read.clear()
    findings = content.run(ctx)
    assert findings == [
        Finding(check="C-22", message="file is 51200 KB, over the 500 KB limit", path="big.img"),
        Finding(
            check="C-23",
            message="holds a private key (RSA PRIVATE KEY) at line 1",
            path="big.img",
            line=1,
        ),
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
    root = _repo(tmp_path, {"a.txt": BLOCK, "k.pem": RSA_KEY})
    settings = Settings(checks=CheckSettings(disable=["C-21", "C-22", "C-23"]))
    ctx = context(root, settings)
    bytes_read.clear()
    assert content.run(ctx) == []
    assert bytes_read == []


# -- C-23 -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", keykit.KINDS)
def test_private_keys(tmp_path: Path, kind: str) -> None:
    """Each kind of armoured key, header to END with its body, is one C-23 at its line."""
    findings = _run(_repo(tmp_path, {"deploy/id_key": "# deploy key\n" + pem(kind)}))
    assert findings == [
        Finding(
            check="C-23",
            message=f"holds a private key ({kind}) at line 2",
            path="deploy/id_key",
            line=2,
        )
    ]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (keykit.encrypted_pem(), "RSA PRIVATE KEY"),
        (pem("ENCRYPTED PRIVATE KEY"), "ENCRYPTED PRIVATE KEY"),
        (keykit.putty(version=2), "PuTTY key file"),
        (keykit.putty(version=3), "PuTTY key file"),
        (
            pem("SSH2 ENCRYPTED PRIVATE KEY")
            .replace("-----", "---- ")
            .replace(" \n", "\n")
            .replace("---- \n", "----\n"),
            "SSH2 ENCRYPTED PRIVATE KEY",
        ),
    ],
)
def test_encrypted_and_putty_keys(tmp_path: Path, text: str, kind: str) -> None:
    """Encrypted keys (Proc-Type, PKCS#8, RFC 4716) and PuTTY key files are keys."""
    findings = _run(_repo(tmp_path, {"keys/k": text}))
    assert [(f.check, f.message, f.line) for f in findings] == [
        ("C-23", f"holds a private key ({kind}) at line 1", 1)
    ]


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (keykit.as_json_string(pem("PRIVATE KEY")).encode(), 1),
        (b"\x00\x01binary\x00\n" + pem("OPENSSH PRIVATE KEY").encode() + b"\x00", 2),
        (("import x\n\n" + keykit.as_python_literal(pem("EC PRIVATE KEY"))).encode(), 4),
        (
            ("class T:\n" + keykit.as_python_literal(pem(), indent="    ")).encode(),
            3,
        ),
        (("config:\n  key: |\n" + "".join(f"    {ln}\n" for ln in pem().splitlines())).encode(), 3),
        (("".join(f"# {ln}\n" for ln in pem().splitlines())).encode(), 1),
        (("KEY=" + pem().replace("\n", " ")).encode(), 1),
        (keykit.putty().replace("\r\n", "\n").encode(), 1),
    ],
)
def test_private_keys_embedded_anywhere(tmp_path: Path, data: bytes, line: int) -> None:
    """A key in JSON, a binary file, a Python literal, YAML, comments or one line is found."""
    findings = _run(_repo(tmp_path, {"secrets.dat": data}))
    assert [(f.check, f.line) for f in findings] == [("C-23", line)]


def test_real_keys_written_by_ssh_keygen(tmp_path: Path) -> None:
    """Keys that ssh-keygen writes (PEM, PKCS#8, OpenSSH, encrypted) are each a C-23."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed")
    folder = tmp_path / "made"
    folder.mkdir()
    keys = {
        "rsa.pem": keykit.ssh_keygen(folder, "rsa", fmt="PEM"),
        "ec.pem": keykit.ssh_keygen(folder, "ecdsa", fmt="PEM"),
        "ec.p8": keykit.ssh_keygen(folder, "ecdsa", fmt="PKCS8"),
        "id_ed25519": keykit.ssh_keygen(folder, "ed25519"),
        "locked_rsa.pem": keykit.ssh_keygen(folder, "rsa", fmt="PEM", passphrase="secret"),
        "locked_ed25519": keykit.ssh_keygen(folder, "ed25519", passphrase="secret"),
    }
    findings = _run(_repo(tmp_path, {f"certs/{name}": text for name, text in keys.items()}))
    assert sorted((f.check, f.path) for f in findings) == [
        ("C-23", f"certs/{name}") for name in sorted(keys)
    ]


HEADER_ONLY = [
    # a detector's marker list, its tests' header strings, a regex of a header
    f"MARKERS = [b'{PUTTY}2', b'{RSA_HEADER}']\n",
    f'assert is_key("{RSA_HEADER}")\n',
    '{"pgp": "^(?:' + begin("PGP PRIVATE KEY BLOCK") + ')"}\n',
    f"{begin('PRIVATE KEY')}\nMIIE...\n{keykit.end('PRIVATE KEY')}\n",  # documentation
    f"{RSA_HEADER}\n",  # a header line alone
    f"{RSA_HEADER}\n" + "\n".join(keykit.body_lines(5)) + "\n",  # never closed
    f"if line == '{RSA_HEADER}':\n    start = True\nelif line == 'END':\n    pass\n",
    f"{PUTTY}3: ssh-ed25519\r\nEncryption: none\r\n",  # a PuTTY header without a key
    f"{PUTTY}2: ssh-rsa\nPrivate-Lines: 2\nnot base64 at all\n",
    "-----BEGIN PUBLIC KEY-----\nMIIB\n",
    "-----BEGIN RSA PUBLIC KEY-----\n",
    "-----BEGIN CERTIFICATE-----\nMIID\n",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI user@host\n",
    "a PRIVATE KEY is secret\n",
    pem().replace("RSA PRIVATE", "rsa PRIVATE"),
]


@pytest.mark.parametrize("text", HEADER_ONLY)
def test_not_private_keys(tmp_path: Path, text: str) -> None:
    """Marker lines without key material, public keys, certificates and prose are not C-23."""
    assert _run(_repo(tmp_path, {"keys.txt": text})) == []


def test_one_finding_per_file_per_check(tmp_path: Path) -> None:
    """Two keys and two conflicts in one file give one C-21 and one C-23 counting them."""
    text = f"{RSA_KEY}{BLOCK}{pem(seed=9)}{BLOCK}"
    findings = _run(_repo(tmp_path, {"k.txt": text}))
    assert [(f.check, f.message) for f in findings] == [
        ("C-21", f"conflict block at line {len(RSA_KEY.splitlines()) + 1} (2 blocks in all)"),
        ("C-23", "holds a private key (RSA PRIVATE KEY) at line 1 (2 keys in all)"),
    ]


def test_line_hash_follows_the_key(tmp_path: Path) -> None:
    """The key's hash is the same wherever it sits and changes when its body changes."""
    moved = _run(_repo(tmp_path / "a", {"k.pem": "x\n\n" + RSA_KEY}))
    same = _run(_repo(tmp_path / "b", {"k.pem": RSA_KEY}))
    edited = _run(_repo(tmp_path / "c", {"k.pem": RSA_KEY.replace("\n", "\nAAAA", 1)}))
    assert moved[0].line_hash == same[0].line_hash
    assert edited[0].line_hash != same[0].line_hash


# -- what is not read --------------------------------------------------------------------


def test_deleted_tracked_file_is_skipped(tmp_path: Path) -> None:
    """A tracked file deleted from the work tree is not an error and not a finding."""
    root = _repo(tmp_path, {"k.pem": RSA_KEY})
    (root / "k.pem").unlink()
    assert _run(root) == []


def test_tracked_file_replaced_by_symlink_is_not_followed(tmp_path: Path) -> None:
    """A tracked file now a link to a key elsewhere is skipped, never read."""
    outside = tmp_path / "outside.pem"
    outside.write_text(RSA_KEY, encoding="utf-8")
    root = _repo(tmp_path, {"k.pem": "fine\n"})
    (root / "k.pem").unlink()
    (root / "k.pem").symlink_to(outside)
    assert _run(root) == []


def test_folder_replaced_by_symlink_is_not_followed(tmp_path: Path) -> None:
    """A tracked file under a folder that became a link out of the repo is skipped."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "k.pem").write_text(RSA_KEY, encoding="utf-8")
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
    outside.write_text(RSA_KEY, encoding="utf-8")
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
    root = _repo(tmp_path, {"all.txt": f"{RSA_KEY}{BLOCK}" + "x" * 2048})
    assert _ids(_run(root, _tiny_limit())) == ["C-21", "C-22", "C-23"]
    fleet = Settings(checks=CheckSettings(max_file_kb=1, disable=["C-21", "C-23"]))
    assert _ids(_run(root, fleet)) == ["C-22"]
    override = RepoOverride(disable=["C-22"])
    per_repo = Settings(
        repos=RepoSettings(overrides={"r": override}), checks=CheckSettings(max_file_kb=1)
    )
    assert _ids(_run(root, per_repo)) == ["C-21", "C-23"]


@pytest.mark.parametrize(
    "name",
    [
        "package-lock.json",
        "web/pnpm-lock.yaml",
        "yarn.lock",
        "poetry.lock",
        "uv.lock",
        "Pipfile.lock",
        "Cargo.lock",
        "go.sum",
        "Gemfile.lock",
        "composer.lock",
    ],
)
def test_lock_files_are_exempt_by_default(tmp_path: Path, name: str) -> None:
    """A dependency lock file over the limit is no C-22, wherever it is (issue 21)."""
    root = _repo(tmp_path, {name: "x" * 3000, "data.json": "x" * 3000})
    assert [(f.check, f.path) for f in _run(root, _tiny_limit())] == [("C-22", "data.json")]


def test_lock_files_are_configurable(tmp_path: Path) -> None:
    """[checks] lockfiles replaces the list: [] judges lock files like any file."""
    root = _repo(tmp_path, {"yarn.lock": "x" * 3000, "deps.lock": "x" * 3000})
    judged = Settings(checks=CheckSettings(max_file_kb=1, lockfiles=["deps.lock"]))
    assert [f.path for f in _run(root, judged)] == ["yarn.lock"]
    none = Settings(checks=CheckSettings(max_file_kb=1, lockfiles=[]))
    assert sorted(f.path or "" for f in _run(root, none)) == ["deps.lock", "yarn.lock"]


# -- nothing unread is clean (issue 20) ---------------------------------------------------


def _without_dac() -> tuple[str, ...]:
    """A command prefix under which root may not read a file of mode 000."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv is missing: cannot drop CAP_DAC_OVERRIDE")
    return (setpriv, "--bounding-set", "-dac_override,-dac_read_search")


def test_a_file_that_cannot_be_read_is_a_c00_naming_it(tmp_path: Path) -> None:
    """A tracked key of mode 000 is a C-00 naming the file, not a silent pass."""
    from test_checks_git import assess_in_child

    root = _repo(tmp_path, {"deploy/id_rsa": RSA_KEY})
    key = root / "deploy" / "id_rsa"
    key.chmod(0)
    os.utime(key, (key.stat().st_mtime - 60,) * 2)  # not racily clean: git trusts its stat
    git(root, "update-index", "--refresh")  # as its owner would have committed it: 0600
    found = assess_in_child(root, prefix=_without_dac())
    unread = [f for f in found if f["check"] in ("C-00", "C-23")]
    assert unread == [
        {
            "check": "C-00",
            "message": "deploy/id_rsa: cannot be read for C-21..C-23 (permission denied); "
            "its content is not judged",
            "path": "deploy/id_rsa",
            "line": None,
            "line_hash": None,
        }
    ]
