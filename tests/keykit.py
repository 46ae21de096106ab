"""Private keys for the C-23 tests, built at run time in every common format.

Nothing here spells a key's armour line or holds a key: the markers are assembled from
parts and the bodies drawn from a seeded generator, so that this checkout, which statehub
sweeps in tests/test_dogfood.py, holds no private key.
"""

from __future__ import annotations

import base64
import random
import shutil
import subprocess
from pathlib import Path

DASHES = "-" * 5
PUTTY = "PuTTY-User-Key" + "-File-"
KINDS = (
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "DSA PRIVATE KEY",
    "OPENSSH PRIVATE KEY",
    "PRIVATE KEY",  # PKCS#8
    "ENCRYPTED PRIVATE KEY",  # PKCS#8, encrypted
    "PGP PRIVATE KEY BLOCK",
)


def begin(kind: str) -> str:
    """The armour line that opens a key of ``kind``."""
    return f"{DASHES}BEGIN {kind}{DASHES}"


def end(kind: str) -> str:
    """The armour line that closes a key of ``kind``."""
    return f"{DASHES}END {kind}{DASHES}"


def body_lines(seed: int, size: int = 600) -> list[str]:
    """``size`` random bytes as base64 lines of 64 characters, as PEM writes them."""
    data = random.Random(seed).randbytes(size)
    text = base64.b64encode(data).decode("ascii")
    return [text[i : i + 64] for i in range(0, len(text), 64)]


def pem(kind: str = "RSA PRIVATE KEY", *, seed: int = 1, size: int = 600) -> str:
    """A whole armoured key of ``kind``: its headers where the format has some, its body."""
    lines = [begin(kind)]
    if kind == "PGP PRIVATE KEY BLOCK":
        lines += ["Version: GnuPG v2", "", *body_lines(seed, size), "=Xq2b", end(kind)]
    else:
        lines += [*body_lines(seed, size), end(kind)]
    return "\n".join(lines) + "\n"


def encrypted_pem(*, seed: int = 2) -> str:
    """A traditional encrypted PEM key (``Proc-Type: 4,ENCRYPTED`` and ``DEK-Info``)."""
    kind = "RSA PRIVATE KEY"
    head = [begin(kind), "Proc-Type: 4,ENCRYPTED", "DEK-Info: AES-128-CBC,3F1D2C3B4A59687766", ""]
    return "\n".join([*head, *body_lines(seed), end(kind)]) + "\n"


def putty(*, version: int = 2, seed: int = 3) -> str:
    """A PuTTY key file: header, public lines, private lines, MAC."""
    public = body_lines(seed, 270)
    private = body_lines(seed + 1, 600)
    lines = [
        f"{PUTTY}{version}: ssh-rsa",
        "Encryption: none",
        "Comment: rsa-key-20240101",
        f"Public-Lines: {len(public)}",
        *public,
        f"Private-Lines: {len(private)}",
        *private,
        "Private-MAC: 0c6b1a2f3e4d5c6b7a8990a1b2c3d4e5f6a7b8c9",
    ]
    return "\r\n".join(lines) + "\r\n"


def as_python_literal(key: str, name: str = "KEY", *, indent: str = "") -> str:
    """``key`` as a Python constant of concatenated string pieces, one line each."""
    pieces = [f'{indent}    "{line}\\n"' for line in key.splitlines()]
    return f"{indent}{name} = (\n" + "\n".join(pieces) + f"\n{indent})\n"


def as_json_string(key: str) -> str:
    """``key`` as one JSON string with ``\\n`` escapes, as a credentials file holds it."""
    return '{"type": "service_account", "private_key": "' + key.replace("\n", "\\n") + '"}\n'


def ssh_keygen(folder: Path, kind: str, *, fmt: str | None = None, passphrase: str = "") -> str:
    """A real key written by ssh-keygen (``kind`` rsa, ecdsa, ed25519), as text."""
    tool = shutil.which("ssh-keygen")
    assert tool is not None
    path = folder / f"id_{kind}_{fmt or 'default'}_{bool(passphrase)}"
    command = [tool, "-q", "-t", kind, "-N", passphrase, "-C", "", "-f", str(path)]
    if kind == "rsa":
        command += ["-b", "1024"]
    if fmt is not None:
        command += ["-m", fmt]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return path.read_text(encoding="ascii")
