"""Reading a configuration safely: every expected mistake is one :class:`ConfigError`.

:mod:`statehub.settings` holds the model; this module reads what feeds it, the way a
careless operator or a hostile file would try it (issue 12):

- :func:`read_regular_file` opens a file without blocking and refuses anything but a
  regular file (a FIFO would hang the reader, ``/dev/zero`` never ends) and anything larger
  than a limit.
- :func:`parse_toml` decodes strict UTF-8 and parses TOML, naming the line and column of a
  mistake; a file nested too deeply for the parser is refused, not a crash.
- :func:`check_file_types` validates the file's values strictly, before the environment is
  merged: in the file ``"300"`` is not a number and ``"yes"`` not a boolean, as in the API.
  Environment variables are text by nature and keep the usual conversions.
- :func:`prepare_environment` reads ``STATEHUB_<SECTION>__<KEY>`` overrides: a value for a
  list or a table must be JSON, except that a list of paths also takes one plain path
  (``STATEHUB_REPOS__ROOTS=/srv/git``).
- :func:`unknown_variables` names each ``STATEHUB_*`` variable that sets nothing (one
  underscore where two are needed, a misspelt key), with the closest variable that would.
- :func:`describe` turns a validation error into ``key`` and a reason a person reads:
  ``unknown key; did you mean repos.roots?``, the value given, no library prefix.
"""

from __future__ import annotations

import difflib
import errno
import json
import os
import stat
import tomllib
import types
import typing
from collections.abc import Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, create_model

from statehub.errors import ConfigError

MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""A configuration file larger than this is refused (a real one is a few KiB)."""
MAX_TOKEN_BYTES = 64 * 1024
"""A token file larger than this is refused."""

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_regular_file(path: Path, *, shown: str, key: str, limit: int) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``limit`` bytes.

    The file is opened without blocking (a FIFO with no writer does not hang the open) and
    checked before a byte is read. Raises ConfigError naming ``shown`` and ``key``.
    """

    def refuse(reason: str) -> ConfigError:
        return ConfigError(shown, key, reason if shown == str(path) else f"{path}: {reason}")

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise refuse("file not found") from None
    except PermissionError:
        raise refuse("permission denied") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise refuse(reason) from None
    try:
        info = os.fstat(fd)
        for is_kind, kind in _KINDS:
            if is_kind(info.st_mode):
                raise refuse(f"is {kind}, not a regular file")
        if info.st_size > limit:
            raise refuse(f"is larger than {limit} bytes ({info.st_size}): not a configuration")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # grew since the stat
                raise refuse(f"is larger than {limit} bytes: not a configuration")
        return b"".join(chunks)
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise refuse("is a directory, not a regular file") from None
        raise refuse(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)


def parse_toml(raw: bytes, *, shown: str) -> dict[str, Any]:
    """The TOML document of ``raw``; ConfigError for bytes that are not UTF-8 or not TOML."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            shown,
            "",
            f"not UTF-8: byte 0x{raw[exc.start]:02x} at line {line}, column {column}",
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(shown, "", f"not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(shown, "", "not valid TOML: nested too deeply") from None


def find_nul(data: Any, loc: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where the first string (or key) holding a NUL byte is in ``data``, or None."""
    if isinstance(data, str):
        return loc if "\x00" in data else None
    if isinstance(data, Mapping):
        for key, value in data.items():
            if "\x00" in str(key):
                return (*loc, str(key))
            found = find_nul(value, (*loc, str(key)))
            if found is not None:
                return found
    if isinstance(data, list):
        for index, value in enumerate(data):
            found = find_nul(value, (*loc, index))
            if found is not None:
                return found
    return None


def _not_json(value: object) -> object:
    # A TOML date or time is no value of this model: it stays a non-string so that a
    # string key refuses it.
    if isinstance(value, datetime | date | time):
        return {"TOML date or time": value.isoformat()}
    raise TypeError(type(value).__name__)


def check_file_types(model: type[BaseModel], data: dict[str, Any]) -> None:
    """Validate the file's ``data`` against ``model``'s sections strictly.

    Raises ValidationError (``"300"`` for a number, ``"yes"`` for a boolean), or
    RecursionError for data nested too deeply.
    """
    fields: dict[str, Any] = {
        name: (field.annotation, field.default)
        for name, field in model.model_fields.items()
        if not field.exclude
    }
    strict_file = create_model("StrictFile", __config__=ConfigDict(extra="forbid"), **fields)
    # JSON mode: a path may be written as a string, as in the file (strict Python mode
    # would want Path objects).
    text = json.dumps(data, default=_not_json)
    strict_file.model_validate_json(text, strict=True)


def prepare_environment(
    model: type[BaseModel], environ: Mapping[str, str | None], *, prefix: str
) -> dict[str, str | None]:
    """``environ`` with each override for a list or a table checked as JSON.

    A plain value for a list of paths becomes a one-path list. Raises ConfigError naming the
    variable for any other value that is not JSON where JSON is needed. Keys are compared
    case-insensitively, as pydantic-settings does.
    """
    prepared = dict(environ)
    for name, value in environ.items():
        if value is None or not name.lower().startswith(prefix.lower()):
            continue
        parts = name[len(prefix) :].lower().split("__")
        if len(parts) < 2:
            continue
        annotation = _annotation_at(model, parts)
        if annotation is None or not _is_complex(annotation):
            continue
        try:
            json.loads(value)
        except ValueError:
            if _is_path_list(annotation) and not value.lstrip().startswith("["):
                prepared[name] = json.dumps([value])
                continue
            hint = 'a list as \'["a", "b"]\'' if _is_list(annotation) else "a table as JSON"
            raise ConfigError(
                f"${name.upper()}", ".".join(parts), f"not valid JSON: write {hint}"
            ) from None
    return prepared


def unknown_variables(
    model: type[BaseModel],
    environ: Mapping[str, str],
    *,
    prefix: str,
    known: tuple[str, ...] = (),
    private: tuple[str, ...] = (),
) -> list[str]:
    """One warning for each ``prefix*`` variable that names no key of ``model``.

    ``known`` are other variables of the program (``STATEHUB_CONFIG``); names starting with
    one of ``private`` are not the user's and never warned about. A warning names the
    closest variable that sets a key, when one is close.
    """
    candidates = _variable_names(model, prefix)
    warnings: list[str] = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(prefix) or upper in known or upper.startswith(private):
            continue
        # A name that starts with a section is the model's to judge (an unknown key there
        # is an error naming it); any other name would be ignored without a word.
        section = upper[len(prefix) :].lower().split("__")[0]
        if _step(model, section) is not None:
            continue
        close = difflib.get_close_matches(upper, [*candidates, *known], n=1, cutoff=0.6)
        hint = ""
        if close:
            key = close[0][len(prefix) :].lower().replace("__", ".")
            hint = f"; did you mean ${close[0]}" + ("?" if close[0] in known else f" ({key})?")
        warnings.append(f"${name} is not a setting and is ignored{hint}")
    return warnings


def _variable_names(model: type[BaseModel], prefix: str) -> list[str]:
    """``PREFIX_SECTION__KEY`` for every key of ``model`` (sections and their keys)."""
    names: list[str] = []
    for section, field in model.model_fields.items():
        inner = _model_of(field.annotation)
        if field.exclude or inner is None:
            continue
        names.append(f"{prefix}{section.upper()}")
        names.extend(f"{prefix}{section.upper()}__{key.upper()}" for key in inner.model_fields)
    return names


def describe(model: type[BaseModel], error: Mapping[str, Any]) -> tuple[str, str]:
    """The dotted key and a readable reason of one pydantic error."""
    loc = tuple(part for part in error["loc"] if part != "__root__")
    key = ".".join(str(part) for part in loc)
    kind = str(error.get("type", ""))
    given = error.get("input")
    if kind == "extra_forbidden":
        return key, "unknown key" + _did_you_mean(model, loc)
    if kind in ("value_error", "assertion_error") and "error" in error.get("ctx", {}):
        return key, str(error["ctx"]["error"])  # the validator's own words, no prefix
    bounds = error.get("ctx", {})
    if kind in _BOUND_REASONS:
        limit = next(iter(bounds.values()), "?")
        return key, f"{_BOUND_REASONS[kind]} {limit}, not {_shown(given)}"
    if kind == "too_long":
        count = bounds.get("actual_length", "more")
        return key, f"at most {bounds.get('max_length')} entries, not {count}"
    reason = _TYPE_REASONS.get(kind, str(error["msg"]).replace("Input should be", "must be", 1))
    if kind in _TYPE_REASONS or kind.endswith(("_parsing", "_type")) or kind == "literal_error":
        reason += f", not {_shown(given)}"
    return key, reason


_BOUND_REASONS = {
    "less_than_equal": "must be at most",
    "less_than": "must be less than",
    "greater_than_equal": "must be at least",
    "greater_than": "must be more than",
}
_TYPE_REASONS = {
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_parsing": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "float_type": "must be a number",
}


def _shown(value: object) -> str:
    if isinstance(value, str):
        return f"the string {value[:60]!r}" + ("..." if len(value) > 60 else "")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table" if "TOML date or time" not in value else "a date or time"
    if isinstance(value, list):
        return "a list"
    return repr(value)[:60]


def _did_you_mean(model: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    known = _keys_at(model, loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if not close:
        return ""
    where = ".".join(str(part) for part in (*loc[:-1], close[0]))
    return f"; did you mean {where}?"


def _keys_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The keys the model allows at ``loc`` (a section, a per-repo table)."""
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, str(part))
        if annotation is None:
            return []
    inner = _model_of(annotation)
    if inner is None:
        return []
    return [name for name, field in inner.model_fields.items() if not field.exclude]


def _annotation_at(model: type[BaseModel], parts: list[str]) -> Any:
    annotation: Any = model
    for part in parts:
        annotation = _step(annotation, part)
        if annotation is None:
            return None
    return annotation


def _step(annotation: Any, part: str) -> Any:
    """The annotation one key below ``annotation``: a model's field or a table's value."""
    annotation = _unwrap(annotation)
    inner = _model_of(annotation)
    if inner is not None:
        for name, field in inner.model_fields.items():
            if name.lower() == part.lower():
                return field.annotation
        return None
    if typing.get_origin(annotation) is dict:
        return typing.get_args(annotation)[1]
    return None


def _unwrap(annotation: Any) -> Any:
    """``X | None`` as ``X``."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation


def _model_of(annotation: Any) -> type[BaseModel] | None:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(_unwrap(annotation)) in (list, tuple, set, frozenset)


def _is_complex(annotation: Any) -> bool:
    annotation = _unwrap(annotation)
    return (
        _is_list(annotation) or typing.get_origin(annotation) is dict or bool(_model_of(annotation))
    )


def _is_path_list(annotation: Any) -> bool:
    annotation = _unwrap(annotation)
    return _is_list(annotation) and typing.get_args(annotation)[:1] == (Path,)
