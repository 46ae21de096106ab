"""The catalogue's words: what each check looks for, why it matters, how to fix or accept it.

One text per check serves ``statehub explain C-NN`` and the README's table of checks
(:func:`markdown_table`; ``tests/test_explain.py`` checks that the README holds it as is).
Nothing here imports the checks themselves: ``explain`` answers without loading them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class CheckText:
    """What a person needs to know of one check."""

    id: str
    summary: str  # one line: "finding when", as the README's table says it
    why: str
    fix: str
    accept: str = ""  # how to accept a finding that is meant; the generic ways follow it


_BY_PATH = (
    'for some paths: `[checks] exclude_paths = {{"{id}" = ["{glob}"]}}` (gitignore-style '
    'globs; also per repo under `[repos.overrides."name"]`).'
)

CATALOGUE: tuple[CheckText, ...] = (
    CheckText(
        id="C-00",
        summary="automation error: the repo (or the sweep) could not be assessed",
        why="a repo that cannot be read is a repo nobody is watching; the sweep exits 1.",
        fix="read the message: a corrupt or unreadable `.git`, a dubious owner "
        "(`safe.directory`), a bound (`repo_timeout_seconds`, `repo_memory_mb`), a failed "
        "`--remote` fetch, or the database. Fix the cause and sweep again.",
        accept="it cannot be accepted: leave the repo out with `[repos] exclude` instead.",
    ),
    CheckText(
        id="C-01",
        summary="no README at the root (any of `readme_names`, in any case: README.md, .rst, "
        ".txt, .markdown, .adoc or plain), or it is empty",
        why="a repo without a README cannot be picked up by the next person.",
        fix="add a README.md that says what the repo is and how to run it.",
        accept="a repo with a README of another name: add it to `[checks] readme_names` "
        "(or per repo).",
    ),
    CheckText(
        id="C-02",
        summary="`AGENTS.md` missing at the root, or empty",
        why="AGENTS.md tells anyone who changes the repo how to build and test it.",
        fix="add AGENTS.md with the build and test commands and the rules of the house.",
    ),
    CheckText(
        id="C-03",
        summary="`workplans/` missing, or no index `workplans/README.md`",
        why="plans kept in the repo, with an index, are how work is found and followed.",
        fix="create `workplans/` with a README.md that links each plan.",
        accept="a repo that keeps no plans: `require_workplans = false` (fleet-wide under "
        '`[repos]`, or in `[repos.overrides."name"]`).',
    ),
    CheckText(
        id="C-04",
        summary="a relative link in the README, AGENTS.md or the workplans index points to no file",
        why="a broken link sends the reader nowhere, usually after a rename.",
        fix="point the link at the file's new place, or remove it (the finding names its "
        "line). Only Markdown is read: the links of a README.rst or README.adoc are not "
        "checked.",
    ),
    CheckText(
        id="C-05",
        summary="a workplan does not open with a `---` YAML front matter block that parses to "
        "a mapping",
        why="the hub reads a plan's id, title and status from its front matter.",
        fix="open the file with `---`, the `id`, `title` and `status` keys, and `---`.",
    ),
    CheckText(
        id="C-06",
        summary="a workplan's front matter lacks a non-empty `id`, `title` or `status`",
        why="a plan without an id, title or status cannot be listed or tracked.",
        fix="add the missing key to the front matter.",
    ),
    CheckText(
        id="C-07",
        summary="a workplan's `id` does not match `workplan_id_pattern`",
        why="ids of one shape can be searched and linked across the fleet.",
        fix="rename the id (and the file) to the pattern, e.g. `STATE-WP-0064`.",
        accept="a repo with its own scheme: `workplan_id_pattern` in its override.",
    ),
    CheckText(
        id="C-08",
        summary="two workplans in the repo share an `id`",
        why="an id names one plan; two plans with one id make every link ambiguous.",
        fix="give one of them the next free id.",
    ),
    CheckText(
        id="C-09",
        summary="a workplan's `status` is not in `workplan_statuses`",
        why="a status outside the list falls out of every view that filters by status.",
        fix="use one of the configured statuses (default draft, active, blocked, finished, "
        "abandoned).",
        accept="a repo with its own statuses: `workplan_statuses` in its override.",
    ),
    CheckText(
        id="C-10",
        summary="a workplan's file name does not start with its `id`",
        why="the file name is how a person finds a plan from its id.",
        fix="rename the file to start with the id: `git mv old.md STATE-WP-0064-title.md`.",
    ),
    CheckText(
        id="C-11",
        summary="`workplans/README.md` does not name every workplan (a link, its file name or "
        "its id)",
        why="a plan the index does not name is a plan nobody reads.",
        fix="name the plan in `workplans/README.md`: a link to it, or its file name (with or "
        "without `.md`) or its `id` anywhere in the text (a table row, a code span).",
    ),
    CheckText(
        id="C-12",
        summary="the path is not the top of a non-bare git work tree",
        why="the hub can only assess a work tree; a bare repo or a plain folder is a "
        "configuration mistake.",
        fix="point `[repos] paths` (or the root) at the work tree's top folder.",
        accept="leave the folder out with `[repos] exclude`.",
    ),
    CheckText(
        id="C-13",
        summary="the repo's own git config sets a key that runs a command (`core.fsmonitor`, "
        "`core.hooksPath`, `credential.helper`, filters, ...)",
        why="such a key runs a program whenever git touches the repo: the way a hostile "
        "clone takes over a machine.",
        fix="remove the key from the file the finding names (`.git/config`, "
        "`.git/config.worktree`, a git dir elsewhere, or the file it includes): "
        "`git config --unset core.fsmonitor`.",
        accept="a key you set yourself on purpose: disable C-13 for that repo only.",
    ),
    CheckText(
        id="C-14",
        summary="tracked files are modified or staged",
        why="work that is not committed is work that can be lost.",
        fix="commit it, or `git stash` / `git restore` it.",
    ),
    CheckText(
        id="C-15",
        summary="untracked files that are not ignored",
        why="a stray file is either work not yet added or a build output missing from .gitignore.",
        fix="`git add` it, or add its pattern to `.gitignore`.",
    ),
    CheckText(
        id="C-16",
        summary="a merge, rebase, cherry-pick, revert or bisect is in progress, or paths are "
        "unmerged",
        why="a repo left mid-operation confuses the next command run in it.",
        fix="finish it (`git merge --continue`, `git rebase --continue`) or abort it (`--abort`).",
    ),
    CheckText(
        id="C-17",
        summary="HEAD is detached, or not on the default branch (`origin/HEAD`, else "
        "`default_branch`)",
        why="a checkout off the default branch is what the fleet's tools do not expect.",
        fix="`git switch main` (after committing or pushing the branch's work).",
    ),
    CheckText(
        id="C-18",
        summary="the current branch has no upstream",
        why="a branch without an upstream is never pushed by a plain `git push`.",
        fix="`git push -u origin HEAD`.",
    ),
    CheckText(
        id="C-19",
        summary="the current branch is ahead of its upstream (unpushed commits)",
        why="commits only on this disk are lost with it.",
        fix="`git push`.",
    ),
    CheckText(
        id="C-20",
        summary="the current branch is behind its upstream (as of the last fetch; `--remote` "
        "fetches first)",
        why="work done on a stale checkout conflicts later.",
        fix="`git pull --ff-only`.",
    ),
    CheckText(
        id="C-21",
        summary="a tracked text file holds a conflict block: `<<<<<<<`, then `=======`, then "
        "`>>>>>>>` lines, in that order",
        why="a committed conflict block breaks the file (code that does not parse, a page "
        "with both versions in it).",
        fix="resolve the conflict: keep the right side, delete the three marker lines. A lone "
        "`=======` (a reStructuredText heading's underline) is never a finding.",
        accept="test fixtures that hold conflicts on purpose: "
        + _BY_PATH.format(id="C-21", glob="tests/fixtures/**"),
    ),
    CheckText(
        id="C-22",
        summary="a tracked file is larger than `max_file_kb` (Git LFS pointers and lock files "
        "are exempt)",
        why="big files bloat every clone for ever, even after they are deleted.",
        fix="remove it from history, or track it with Git LFS. Dependency lock files (npm, "
        "pnpm, yarn, Poetry, uv, Pipenv, Cargo, Go, Bundler, Composer) are exempt: "
        "`[checks] lockfiles` lists their names.",
        accept="big images in documentation, say: " + _BY_PATH.format(id="C-22", glob="docs/**"),
    ),
    CheckText(
        id="C-23",
        summary="a tracked file holds a private key: a `BEGIN ... PRIVATE KEY` line with key "
        "material up to its END line, or a PuTTY key file",
        why="a key in a repo is a key anyone with a clone holds: treat it as leaked.",
        fix="revoke the key, remove the file, and rewrite history if the repo was shared. "
        "The finding names the key's line. A key is its header followed by base64 key "
        "material (encrypted keys too); a header line alone (a detector's pattern, a parser, "
        "documentation) is not one.",
        accept="a test key: `pragma: allowlist secret` on the key's first line (or "
        "`pragma: allowlist nextline secret` on the line above it, the detect-secrets "
        "convention), or " + _BY_PATH.format(id="C-23", glob="tests/fixtures/**"),
    ),
)

BY_ID = {text.id: text for text in CATALOGUE}


def accept_text(text: CheckText) -> str:
    """How a finding of this check is accepted, the check's own way first."""
    generic = (
        f'for one repo: `[repos.overrides."name"] disable = ["{text.id}"]`; fleet-wide: '
        f'`[checks] disable = ["{text.id}"]`.'
    )
    if text.id == "C-00":
        return text.accept
    baseline = (
        f"The findings standing today: `statehub accept --check {text.id}` records them in the "
        "baseline file (`[checks] baseline`); only new ones are reported."
    )
    if text.accept:
        return f"{text.accept} Or switch the check off {generic} {baseline}"
    by_path = _BY_PATH.format(id=text.id, glob="vendor/**")
    return f"switch the check off {generic} Or, {by_path} {baseline}"


def explain(check_id: str) -> str:
    """The text ``statehub explain`` prints for one check (KeyError for an unknown id)."""
    text = BY_ID[check_id]
    return "\n".join(
        (
            f"{text.id}: {text.summary}",
            "",
            f"Why it matters: {text.why}",
            f"To fix: {text.fix}",
            f"To accept: {accept_text(text)}",
        )
    )


def markdown_table() -> str:
    """The README's table of checks, one row a check."""
    rows = ["| id | finding when |", "| --- | --- |"]
    rows += [f"| {text.id} | {text.summary} |" for text in CATALOGUE]
    return "\n".join(rows)
