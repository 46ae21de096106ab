"""A newcomer's first run: from a fresh clone to the findings of their repos on screen.

    python bench/bench_first_run.py               # 3 repos in ~/src: about 1 to 2 minutes
    python bench/bench_first_run.py --repos 30

The checkout's committed HEAD is cloned into a temporary folder, ``HOME`` is a temporary
folder whose ``src/`` holds ``--repos`` repos (each with a finding), and ``./dev run`` runs
there from nothing: it creates ``.venv``, installs statehub (pip, from its configured index
and cache), writes the configuration, sweeps, and starts the daemon. Measured, from the
start of ``./dev run`` (target: the findings within 120 s on the 2-core machine):

- setup: until ``dev: installed``;
- findings: until the sweep's table is printed (``dev: the status page`` follows it).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from gitfleet import git, make_repo

CHECKOUT = Path(__file__).resolve().parents[1]
DEADLINE = 600.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-first-run-") as folder:
        base = Path(folder)
        clone = base / "statehub"
        git(base, "clone", "--quiet", "--no-hardlinks", str(CHECKOUT), str(clone))
        home = base / "home"
        for n in range(args.repos):
            make_repo(home / "src", f"repo-{n:03d}", with_origin=False)  # C-18 each
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STATEHUB_", "XDG_"))}
        env["HOME"] = str(home)
        log = base / "dev.log"
        start = time.monotonic()
        marks: dict[str, float] = {}
        with log.open("wb") as sink:
            process = subprocess.Popen(
                ["./dev", "run"],
                cwd=clone,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            while "findings" not in marks and time.monotonic() - start < DEADLINE:
                text = log.read_text(errors="replace")
                if "dev: installed" in text and "setup" not in marks:
                    marks["setup"] = time.monotonic() - start
                if "dev: the status page" in text:
                    marks["findings"] = time.monotonic() - start
                if process.poll() is not None:
                    break
                time.sleep(0.1)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        text = log.read_text(errors="replace")
        shown = sum(f"repo-{n:03d}" in text for n in range(args.repos))
    print(f"{'what':<34} {'seconds':>8}")
    print(f"{'setup (.venv, pip install)':<34} {marks.get('setup', float('nan')):>8.1f}")
    print(f"{'findings on screen':<34} {marks.get('findings', float('nan')):>8.1f}")
    print(f"repos shown: {shown} of {args.repos}")
    return 0 if "findings" in marks and shown == args.repos else 1


if __name__ == "__main__":
    raise SystemExit(main())
