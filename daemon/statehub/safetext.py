"""Text from a repository made safe to show: control characters written out, not sent.

A file name or a message may hold an escape sequence (set the terminal's title, clear the
screen) or a bidirectional override that reorders what a line shows. Wherever such text
reaches a person (a table, a log line, an error line) it goes through :func:`visible`
first; JSON output escapes control characters by itself. No dependency: the command line
uses it before anything heavy is imported.
"""

from __future__ import annotations

import re

# C0 controls (ESC, BEL, CR, newline, tab ...), DEL, C1 controls, and the bidirectional
# overrides and isolates ("Trojan Source", CVE-2021-42574).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with every control character written out: ESC as ``\\x1b``, U+202E as
    ``\\u202e``. A backslash already in the text is left as it is."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
