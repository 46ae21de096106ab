"""Sweep benchmark: a generated fleet, the first full sweep against a floor, the clean
re-sweep, memory, --help, and the same fleet with hostile repos in it.

    python bench/bench_sweep.py                # 1,000 repos of ~30 files and 3 workplans
    python bench/bench_sweep.py --repos 200    # smaller
    python bench/bench_sweep.py --keep DIR     # build (or reuse) the fleet in DIR
    python bench/bench_sweep.py --hostile      # also: the fleet plus tests/hostilekit.py's repos

Targets (2-core machine): first sweep <= 1.5 x the floor, unchanged re-sweep <= 0.5 s (the
whole command), peak memory of the process tree <= 150 MB, ``statehub --help`` <= 0.3 s;
with the hostile repos: done within max_seconds + 2 s, exactly those repos a C-00, the
process tree under 1.5 GB. Each sweep runs the real CLI in a fresh process (``statehub sweep
--all --json``). The floor is what any reader of the fleet pays, measured in this run: one
process that opens each repo with pygit2, asks for its status and reads every tracked file
(warm cache). Memory is the sum of the RSS of the CLI and its workers, sampled every 20 ms.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import hostilekit
from gitfleet import good_files, make_repo, write, write_config

FLOOR = """
import sys, time
from pathlib import Path
import pygit2
from pygit2.enums import RepositoryOpenFlag
started = time.perf_counter()
for root in sorted(Path(sys.argv[1]).iterdir()):
    if not (root / ".git").exists():
        continue
    repo = pygit2.Repository(str(root), RepositoryOpenFlag.NO_SEARCH)
    repo.status(untracked_files="all", ignored=False)
    for entry in repo.index:
        with open(root / entry.path, "rb") as handle:
            handle.read()
    repo.free()
print(time.perf_counter() - started)
"""


def build_fleet(fleet: Path, count: int) -> None:
    """``count`` repos: a template with ~30 files and 3 workplans, copied (real repos all)."""
    template_parent = fleet.parent / "template"
    files = good_files("template", plans=3)
    for n in range(24):
        files[f"src/module_{n:02d}.py"] = f'"""Module {n}."""\n\nVALUE = {n}\n' * 20
    files["docs/guide.md"] = "# Guide\n\nSee the [readme](../README.md).\n"
    make_repo(template_parent, "template", files, with_origin=True)
    origin = template_parent / ".origins" / "template.git"
    for n in range(count):
        target = fleet / f"repo-{n:04d}"
        shutil.copytree(template_parent / "template", target, symlinks=True)
        if n % 10 == 0:  # a tenth have an untracked file: a C-15 finding each
            write(target, {"notes.txt": f"repo {n}\n"})
    # Every copy's origin URL still names the template's bare origin: fine for local sweeps.
    assert origin.exists()


class TreeMemory:
    """Samples the summed RSS of a process and its children until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                        ppid = int(f.read().rpartition(")")[2].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        tree, pending = [], [self.pid]
        while pending:
            pid = pending.pop()
            tree.append(pid)
            pending.extend(children.get(pid, []))
        return tree

    def _rss(self, pid: int) -> int:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kib = max(self.peak_kib, sum(self._rss(pid) for pid in self._tree()))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kib


def run_cli(config: Path, *args: str, sample: bool = False) -> tuple[float, int, dict[str, object]]:
    """(wall seconds, peak RSS of the process tree in KiB, the JSON printed) of one CLI run.

    The memory sampler walks /proc every 20 ms, which costs CPU: runs that are timed
    leave it off (``sample`` False, peak 0).
    """
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "statehub", *args, "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    memory = TreeMemory(process.pid) if sample else None
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    peak = memory.stop() if memory is not None else 0
    if process.returncode not in (0, 1):
        raise SystemExit(f"statehub failed ({process.returncode}): {stderr}")
    return wall, peak, json.loads(stdout) if stdout else {}


def floor_time(fleet: Path) -> tuple[float, float]:
    """(whole process, the loop alone) in seconds: pygit2 open + status + read every file."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", FLOOR, str(fleet)], capture_output=True, text=True, check=True
    )
    return time.perf_counter() - started, float(done.stdout)


def help_time(runs: int = 10) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "statehub", "--help"], capture_output=True, check=True
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def hostile_run(work: Path, fleet: Path) -> list[tuple[str, str, str]]:
    """The fleet plus every hostile repo of tests/hostilekit.py, swept once."""
    hostile_fleet = work / "hostile-fleet"
    if not hostile_fleet.exists():
        hostile_fleet.mkdir()
        for repo in sorted(fleet.iterdir()):
            os.symlink(repo, hostile_fleet / repo.name)
        scratch = work / "hostile-scratch"
        for build in (*hostilekit.STALLS, hostilekit.huge_head, hostilekit.huge_text):
            build(hostile_fleet, scratch)
        hostilekit.long_quote_readme(hostile_fleet, scratch)
    folder = work / "hostile"
    folder.mkdir(exist_ok=True)
    max_seconds, repo_timeout = 60, 10
    config = write_config(
        folder,
        roots=[hostile_fleet],
        sweep=f"max_seconds = {max_seconds}\nrepo_timeout_seconds = {repo_timeout}",
    )
    for suffix in ("", "-wal", "-shm"):
        Path(f"{folder / 'statehub.db'}{suffix}").unlink(missing_ok=True)
    wall, peak, event = run_cli(config, "sweep", "--all", "--json", sample=True)
    detail = event["detail"]
    assert isinstance(detail, dict)
    errored = sorted(str(error["repo"]) for error in detail["automation_errors"])
    return [
        (
            f"hostile fleet (max_seconds {max_seconds}, repo bound {repo_timeout} s)",
            f"{wall:.2f} s",
            f"{len(detail['repos_processed']) + len(detail['skipped_clean'])} assessed, "
            f"{len(detail['skipped_budget'])} not reached",
        ),
        ("  C-00", str(len(errored)), ", ".join(errored)),
        ("  peak memory of the process tree", f"{peak / 1024:.0f} MB", ""),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="build or reuse the fleet in this folder")
    parser.add_argument("--rounds", type=int, default=3, help="rounds to take medians of")
    parser.add_argument("--hostile", action="store_true", help="also sweep the hostile fleet")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="statehub-bench-"))
    fleet = work / "fleet"
    if not fleet.exists():
        fleet.mkdir(parents=True)
        started = time.perf_counter()
        build_fleet(fleet, args.repos)
        print(f"built {args.repos} repos in {time.perf_counter() - started:.1f} s", flush=True)
    # Byte-compiled, as an installed package is: a checkout run with PYTHONDONTWRITEBYTECODE
    # would otherwise compile statehub's sources again in every timed process.
    import statehub

    compileall.compile_dir(Path(statehub.__file__).parent, quiet=1)
    database = work / "statehub.db"
    config = write_config(work, roots=[fleet], sweep="max_seconds = 3600")
    floors: list[float] = []
    loops: list[float] = []
    firsts: list[float] = []
    seconds: list[float] = []
    peak = 0
    for _ in range(args.rounds):  # floor and sweep side by side, so load hits both alike
        floor_wall, floor_loop = floor_time(fleet)
        floors.append(floor_wall)
        loops.append(floor_loop)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        first_wall, _, first = run_cli(config, "sweep", "--all", "--json")
        second_wall, _, second = run_cli(config, "sweep", "--all", "--json")
        firsts.append(first_wall)
        seconds.append(second_wall)
    for suffix in ("", "-wal", "-shm"):  # once more, untimed, for the memory of the tree
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    for _ in range(2):
        peak = max(peak, run_cli(config, "sweep", "--all", "--json", sample=True)[1])
    floor_wall, floor_loop = statistics.median(floors), statistics.median(loops)
    first_wall, second_wall = statistics.median(firsts), statistics.median(seconds)
    first_detail = first["detail"]
    second_detail = second["detail"]
    assert isinstance(first_detail, dict) and isinstance(second_detail, dict)
    rows = [
        ("repos", str(args.repos), ""),
        (
            f"floor, median of {args.rounds}",
            f"{floor_wall:.2f} s",
            f"whole process; the loop alone {floor_loop:.2f} s",
        ),
        (
            f"first sweep, median of {args.rounds}",
            f"{first_wall:.2f} s",
            f"{first_wall / floor_wall:.2f} x the floor; "
            f"{first_detail.get('repos_reassessed', len(first_detail['repos_processed']))} read",
        ),
        (
            "re-sweep, nothing changed",
            f"{second_wall:.2f} s",
            f"{second_detail.get('repos_reassessed', 0)} read again",
        ),
        ("peak memory of the process tree", f"{peak / 1024:.0f} MB", ""),
        ("statehub --help (median of 10)", f"{help_time():.3f} s", ""),
        ("cores", str(os.cpu_count()), ""),
    ]
    if args.hostile:
        rows.extend(hostile_run(work, fleet))
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>10}  {note}")
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
