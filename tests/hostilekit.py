"""Repositories that stall or bloat libgit2, for the isolation tests and bench/.

Each builder makes a real repo with the real ``git`` and then plants one hostile object:

- a named pipe where git reads an object: a loose object (HEAD's commit), the
  commit-graph of a repo ahead of its upstream (read by the ahead/behind walk), or a pack
  index reached through ``objects/info/alternates``. libgit2 opens them with a blocking
  ``open()`` and waits for a writer that never comes;
- a 1 GiB sparse ``.git/HEAD``, which libgit2 reads whole;
- a tracked file of 4 GiB + 6 bytes under ``* text`` whose index entry records 6 bytes:
  the index keeps sizes modulo 2**32, so only the content can tell whether it changed;
- a README that is one line of a million ``>``.

Every hole is sparse: the fleet costs a few kilobytes of disk.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from gitfleet import commit_all, git, good_files, make_repo, write

Builder = Callable[[Path, Path], Path]


def fifo_object(fleet: Path, _scratch: Path) -> Path:
    """HEAD's commit is a named pipe among the loose objects."""
    repo = make_repo(fleet, "fifo-object")
    head = git(repo, "rev-parse", "HEAD").stdout.strip()
    loose = repo / ".git" / "objects" / head[:2] / head[2:]
    loose.unlink()
    os.mkfifo(loose)
    return repo


def fifo_commit_graph(fleet: Path, _scratch: Path) -> Path:
    """One commit ahead of its upstream, with a named pipe as the commit-graph."""
    repo = make_repo(fleet, "fifo-commit-graph")
    write(repo, {"more.txt": "one more\n"})
    commit_all(repo, "ahead by one")
    git(repo, "commit-graph", "write", "--reachable")
    graph = repo / ".git" / "objects" / "info" / "commit-graph"
    graph.unlink()
    os.mkfifo(graph)
    return repo


def fifo_alternate_index(fleet: Path, scratch: Path) -> Path:
    """Its objects borrowed from another repo whose pack index is a named pipe."""
    lender = make_repo(scratch, "lender")
    git(lender, "repack", "-a", "-d", "-q")
    repo = make_repo(fleet, "fifo-alternate-index")
    (repo / ".git" / "objects" / "info" / "alternates").write_text(
        f"{lender / '.git' / 'objects'}\n", encoding="utf-8"
    )
    (index,) = (lender / ".git" / "objects" / "pack").glob("*.idx")
    index.unlink()
    os.mkfifo(index)
    return repo


def huge_head(fleet: Path, _scratch: Path) -> Path:
    """``.git/HEAD`` is a 1 GiB sparse file."""
    repo = make_repo(fleet, "huge-head")
    with (repo / ".git" / "HEAD").open("r+b") as handle:
        handle.truncate(1 << 30)
    return repo


def huge_text(fleet: Path, _scratch: Path) -> Path:
    """A 4 GiB + 6 byte sparse tracked file under ``* text``, recorded as 6 bytes."""
    files = {**good_files("huge-text"), ".gitattributes": "* text\n", "big.txt": "small\n"}
    repo = make_repo(fleet, "huge-text", files)
    with (repo / "big.txt").open("r+b") as handle:
        handle.truncate((4 << 30) + len("small\n"))
    return repo


def long_quote_readme(fleet: Path, _scratch: Path) -> Path:
    """A README of one line of 1 MiB of ``>`` (block-quote markers)."""
    files = {**good_files("long-quote"), "README.md": ">" * (1 << 20)}
    return make_repo(fleet, "long-quote", files)


STALLS: tuple[Builder, ...] = (fifo_object, fifo_commit_graph, fifo_alternate_index)
"""Repos whose read blocks for ever: only the time bound ends it."""
