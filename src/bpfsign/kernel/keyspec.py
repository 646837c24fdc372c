"""Keyring specs: the one parser for what a user writes after ``--keyring``.

A signed load names a keyring in ``keyring_id`` (docs/kernel.md §5): 0/1/2
for the system keyrings, a ``KEY_SPEC_*`` special id (-3 the session
keyring, …), or a keyring's serial. Users also write names (``session``,
``builtin``, keyctl's ``@s``) and, for ``bpfsign keyring``, the NAME of a
keyring of their own below the session keyring. Every command parses its
``--keyring`` here, and nowhere else.

Pure: no syscalls, nothing heavy (``bpfsign verify`` parses its option on its
start-up path). :func:`bpfsign.kernel.keyring.resolve_keyring` turns a spec
into a serial on a running kernel.
"""

from __future__ import annotations

__all__ = ["NAMES", "keyring_id", "parse"]

#: spellings of the system keyrings and KEY_SPEC_* ids (docs/kernel.md §5)
NAMES: dict[str, int] = {
    "builtin": 0, "secondary": 1, "platform": 2,
    "thread": -1, "@t": -1, "process": -2, "@p": -2, "session": -3, "@s": -3,
    "user": -4, "@u": -4, "user-session": -5, "@us": -5, "bpf": -9, ".bpf": -9,
}  # fmt: skip


def parse(spec: str | int) -> int | str:
    """``spec`` as a keyring_id (int), or as a keyring NAME (str) to look up on the kernel.

    Numbers are read in any base Python reads (``-3``, ``0x3ffffff0``); an
    empty spec, or one with whitespace or a comma, is an InputError.
    """
    if isinstance(spec, int):
        return spec
    text = spec.strip()
    if text.lower() in NAMES:
        return NAMES[text.lower()]
    try:
        return int(text, 0)
    except ValueError:
        pass
    if not text or any(c.isspace() or c == "," for c in text):
        from ..errors import InputError

        raise InputError(
            f"keyring {spec!r}: expected session, user, user-session, builtin, secondary, "
            "platform, bpf, a number (-3, a keyring serial) or a keyring name"
        )
    return text


def keyring_id(spec: str | int) -> int:
    """``spec`` as a keyring_id; a NAME needs a running kernel, so it is an InputError here."""
    parsed = parse(spec)
    if isinstance(parsed, str):
        from ..errors import InputError

        raise InputError(
            f"keyring {parsed!r}: a keyring name is looked up on the running kernel; offline, "
            "pass session, user, builtin, secondary, platform, bpf or a number"
        )
    return parsed
