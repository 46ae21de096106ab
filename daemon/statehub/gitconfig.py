"""git config files parsed as git's own config.c parses them: text in, entries out.

libgit2 follows ``include.path`` but only the ``includeIf`` whose condition holds where it
runs, and it does not say which file set a key; C-13 must report both the include and the
keys behind it, whatever the condition. So :mod:`statehub.gitstate` reads the repo's config
files itself and parses them here. Nothing here opens a file or runs anything.

A value can hold a secret (a ``credential.helper`` with a token, a URL with a password), so
:func:`quotable` decides what of it a C-13 message may show: at most the first word of a
value from the repo's own config, nothing of a file from outside the repo (issue 12).
"""

from __future__ import annotations

from pathlib import Path

QUOTED_WORD_MAX = 40
"""A longer first word is not quoted: it may be a token rather than a command's name."""


def quotable(value: str, *, from_repo: bool) -> str | None:
    """What of a config value a message may quote, or None for nothing.

    Only for a value of the repo's own config (``from_repo``), and then its first word,
    followed by `` ...`` when there is more: ``ssh -i key`` -> ``ssh ...``. A first word
    holding ``=``, ``@`` or ``:`` (an assignment, a password in a URL) is not quoted, nor
    one longer than :data:`QUOTED_WORD_MAX` unless it is a path (``/``, ``~``, ``.``):
    it may be a token rather than a command's name.
    """
    if not from_repo:
        return None
    words = value.split()
    if not words:
        return ""
    word = words[0]
    if any(char in word for char in "=@:"):
        return None
    if len(word) > QUOTED_WORD_MAX and not word.startswith(("/", "~", ".")):
        return None
    return word + (" ..." if len(words) > 1 else "")


def expand_user(value: str) -> Path:
    """``~/x`` and ``~user/x`` expanded as git does; unchanged when there is no such home."""
    try:
        return Path(value).expanduser()
    except RuntimeError:
        return Path(value)


def lower_name(name: str) -> str:
    """Section and key lower-cased; a subsection keeps its case."""
    section, _, rest = name.partition(".")
    subsection, dot, key = rest.rpartition(".")
    if not dot:
        return name.lower()
    return f"{section.lower()}.{subsection}.{key.lower()}"


_SPACE = " \t\r\n"
_ESCAPES = {"t": "\t", "b": "\b", "n": "\n", "\\": "\\", '"': '"'}


class _ConfigSyntaxError(Exception):
    pass


class _Chars:
    """git's get_next_char: CRLF reads as LF, the end of the text as a final LF."""

    def __init__(self, text: str) -> None:
        self.text = text.removeprefix("\ufeff")
        self.pos = 0
        self.eof = False

    def next(self) -> str:
        if self.pos >= len(self.text):
            self.eof = True
            return "\n"
        char = self.text[self.pos]
        self.pos += 1
        if char == "\r" and self.text.startswith("\n", self.pos):
            self.pos += 1
            return "\n"
        return char


def parse_config(text: str) -> list[tuple[str, str | None]]:
    """``(name, value)`` of every entry of a git config file, in order.

    Names are ``section.key`` or ``section.subsection.key`` as written (legacy
    ``[section.sub]`` headers lower-cased, as git does). Parsing stops at a syntax error, where
    git would refuse the file.
    """
    entries: list[tuple[str, str | None]] = []
    chars = _Chars(text)
    section = ""
    comment = False
    try:
        while True:
            char = chars.next()
            if char == "\n":
                if chars.eof:
                    return entries
                comment = False
            elif comment or char in _SPACE:
                continue
            elif char in "#;":
                comment = True
            elif char == "[":
                section = _section_header(chars)
            elif char.isascii() and char.isalpha() and section:
                key, char = _key(chars, char)
                value = None if char == "\n" else _value(chars)
                entries.append((f"{section}.{key}", value))
            else:
                return entries
    except _ConfigSyntaxError:
        return entries


def _is_key_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "-")


def _section_header(chars: _Chars) -> str:
    """After '[': ``section`` or ``section.subsection`` (get_base_var)."""
    name = ""
    while True:
        char = chars.next()
        if chars.eof:
            raise _ConfigSyntaxError
        if char == "]":
            if not name:
                raise _ConfigSyntaxError
            return name
        if char in _SPACE:
            return name + "." + _subsection(chars, char)
        if not (_is_key_char(char) or char == "."):
            raise _ConfigSyntaxError
        name += char.lower()


def _subsection(chars: _Chars, char: str) -> str:
    """After '[section ': ``"subsection"]`` with backslash escapes (get_extended_base_var)."""
    while char in _SPACE:
        if char == "\n":
            raise _ConfigSyntaxError
        char = chars.next()
    if char != '"':
        raise _ConfigSyntaxError
    name = ""
    while True:
        char = chars.next()
        if char == "\n":
            raise _ConfigSyntaxError
        if char == '"':
            break
        if char == "\\":
            char = chars.next()
            if char == "\n":
                raise _ConfigSyntaxError
        name += char
    if chars.next() != "]":
        raise _ConfigSyntaxError
    return name


def _key(chars: _Chars, first: str) -> tuple[str, str]:
    """A key, and the character after it and its blanks: '=' or a newline (get_value)."""
    key = first
    while True:
        char = chars.next()
        if chars.eof or not _is_key_char(char):
            break
        key += char
    while char in " \t":
        char = chars.next()
    if char not in "=\n":
        raise _ConfigSyntaxError
    return key, char


def _value(chars: _Chars) -> str:
    """After '=': the value up to the end of the line, unquoted and unescaped (parse_value)."""
    value: list[str] = []
    quote = comment = False
    spaces = 0
    while True:
        char = chars.next()
        if char == "\n":
            if quote:
                raise _ConfigSyntaxError
            return "".join(value)
        if comment:
            continue
        if char in _SPACE and not quote:
            spaces += 1 if value else 0
        elif char in ";#" and not quote:
            comment = True
        elif char == "\\":
            value.extend(" " * spaces)
            spaces = 0
            char = chars.next()
            if char != "\n":  # a backslash at the end of a line continues the value
                if char not in _ESCAPES:
                    raise _ConfigSyntaxError
                value.append(_ESCAPES[char])
        else:
            value.extend(" " * spaces)
            spaces = 0
            if char == '"':
                quote = not quote
            else:
                value.append(char)
