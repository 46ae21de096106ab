"""Something held by another process for the length of a ``with`` block.

The sweep lock, an exclusive SQLite transaction: the holder is a child Python process that
takes it, prints ``held``, and waits; it is killed when the block ends, and what it held
dies with it (a flock, an open transaction), as it would with a crashed process.
"""

from __future__ import annotations

import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

READY_SECONDS = 20.0  # a bound on a hang, not a speed target


@contextmanager
def held_by_another_process(code: str, *args: str) -> Iterator[None]:
    """Run ``code`` (``python -c``, with ``args`` as ``sys.argv[1:]``) until the block ends.

    ``code`` prints ``held`` once it holds what it takes, then sleeps; AssertionError when
    it does not say so within :data:`READY_SECONDS`.
    """
    holder = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        ready, _, _ = select.select([holder.stdout], [], [], READY_SECONDS)
        assert ready, f"the holder did not say 'held' within {READY_SECONDS:g} s"
        assert holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.kill()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
