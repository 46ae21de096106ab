"""The suite's one wait: poll a condition until it holds or a deadline passes.

Every wait in a test is on a condition with a deadline, never a fixed sleep standing in for
one. The deadline is a bound on a hang, not a speed target: a test that needs it fails with
what it waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | None], timeout: float, what: str = "a condition", step: float = 0.05
) -> T:
    """Poll ``condition`` every ``step`` seconds until it returns something truthy, and
    return that; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)
